"""What earlier runs finished for a target, by content, kept in Prefect result storage: a module
whose source, the project's own tests and the run's settings are unchanged is not generated again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.results import get_default_result_storage

from tasks.models import Module, ModuleResult
from tasks.write import is_covsweep_file

DONE = {"reached_target", "improved", "unchanged", "skipped"}


def tests_fingerprint(test_paths: list[Path]) -> str:
    """The project's own tests; covsweep's generated ones change with every run that adds to them."""
    digest = hashlib.sha256()
    for path in test_paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*.py"))
        for file in files:
            if not is_covsweep_file(file):
                digest.update(str(file).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def module_fingerprint(module: Module, tests: str, settings: dict) -> str:
    payload = json.dumps({"module": module.sha256, "tests": tests, "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _key(target: Path) -> str:
    return f"covsweep-ledger-{hashlib.sha256(str(target).encode()).hexdigest()[:24]}.json"


@task(name="load-ledger")
def load_ledger(target: Path) -> dict[str, str]:
    try:
        return json.loads(get_default_result_storage().read_path(_key(target)))
    except (OSError, ValueError):
        return {}


@task(name="save-ledger")
def save_ledger(target: Path, ledger: dict[str, str], fingerprints: dict[str, str],
                results: list[ModuleResult]) -> dict[str, str]:
    updated = dict(ledger)
    for result in results:
        if result.status in DONE:
            updated[result.module] = fingerprints[result.module]
        else:
            updated.pop(result.module, None)
    get_default_result_storage().write_path(_key(target), json.dumps(updated, indent=1).encode())
    return updated
