"""What earlier runs finished, by content, kept in Prefect result storage: a module whose source,
the project's own tests and the run's settings are unchanged is not generated again, and a run
killed half-way keeps the modules it finished for the run that resumes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect.results import get_default_result_storage

from tasks.core.markers import is_covsweep_file
from tasks.core.models import Module, ModuleResult

DONE = {"reached_target", "improved", "unchanged", "skipped"}


def _named(file: Path, root: Path | None) -> str:
    """A file by its path, or by its path in `root`: a run's clone is in a folder of its own each time."""
    return file.relative_to(root).as_posix() if root is not None else str(file)


def tests_fingerprint(test_paths: list[Path], root: Path | None = None) -> str:
    """The project's own tests; covsweep's generated ones change with every run that adds to them."""
    digest = hashlib.sha256()
    for path in test_paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            if not is_covsweep_file(file):
                digest.update(_named(file, root).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def module_fingerprint(module: Module, tests: str, settings: dict, root: Path | None = None) -> str:
    """`root`: the files are named by their paths in it (a clone), and `settings` name the repository."""
    payload = json.dumps(
        {"path": _named(module.file, root), "module": module.sha256, "tests": tests, "settings": settings},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _key(fingerprint: str) -> str:
    return f"covsweep-module-{fingerprint[:40]}.json"


def recall(name: str) -> bytes | None:
    """What an earlier run stored under `name` in Prefect's result storage, or None."""
    try:
        return get_default_result_storage().read_path(name)
    except (OSError, ValueError):
        return None


def remember(name: str, data: bytes) -> None:
    get_default_result_storage().write_path(name, data)


def finished_result(fingerprint: str) -> ModuleResult | None:
    """The result a run with this fingerprint finished with, its accepted tests included."""
    stored = recall(_key(fingerprint))
    if stored is None:
        return None
    try:
        return ModuleResult.model_validate(json.loads(stored))
    except ValueError:
        return None


def record_finished(fingerprint: str, result: ModuleResult) -> None:
    if result.status in DONE:
        data = result.model_dump(mode="json") | {"accepted_source": result.accepted_source}
        remember(_key(fingerprint), json.dumps(data).encode())
