"""A run that would find everything as the last one left it is not run again.

`covsweep run` of a project whose files, images, options, environment, covsweep and its dependencies are
all as a finished run found them, with that run's report and log untouched and Prefect's database not written
since (a block saved there changes what a run does), prints that run's report instead of starting Prefect:
its figures are what the same files give. Recorded only where all of that is known before Prefect
starts: a directory measured in place in the Docker sandbox, the temporary server on its SQLite database,
no --changed-since (a moved REF is not in the files). And only for a run that finished every module and
wrote nothing into the target: a failed module is tried again, and written tests make the next run's
baseline another; not when a saved block names the sandbox image, whose tag may point at another build
without a write to the database, nor when a Dask cluster is named (its workers' images and hosts are not
hashed). Removing the report sweeps anyway."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

from tasks.core.log import get_logger
from tasks.core.models import Project, Report
from tasks.core.options import RunOptions
from tasks.core.plan import default_out, directory_report, measured_test_paths
from tasks.core.settings import load
from tasks.project.discover import discover
from tasks.project.source import runs_on_a_clone
from tasks.sandbox.containers import docker_client
from tasks.sandbox.snapshot import content_digest
from tasks.sandbox.target_image import existing_target_image

VERSION = "covsweep.unchanged/1"  # bumped when what a record holds, or how it is keyed, changes
# Read by covsweep, Prefect, the LLM clients, Docker and Python: by prefix, in any case (pydantic-settings
# ignores it); HOME (and whatever else starts so) is where Prefect's home and covsweep's cache are.
ENVIRONMENT = ("COVSWEEP_", "PREFECT_", "OPENAI_", "OPENROUTER_", "OPENHANDS_", "DOCKER_", "PYTHON", "HOME")
PREFECT_FILES = (".env", "prefect.toml", "pyproject.toml")  # Prefect's settings read these in the working directory
PACKAGES = ("covsweep", "flows", "tasks", "blocks")
SQLITE_FILES = ("", "-wal", "-shm", "-journal")


class Record(BaseModel):
    """What a finished run left: its outputs' digests, and the state of Prefect's database files."""

    report: Path
    outputs: dict[str, str | None]
    database: dict[str, tuple[int, int] | None]

    def holds(self) -> bool:
        return self.outputs == _digests(list(self.outputs)) and self.database == _stat(list(self.database))


@dataclass(frozen=True)
class Before:
    """A run's inputs, hashed before Prefect starts."""

    key: str
    content: str  # the target's files alone, compared once the run ends
    options: RunOptions
    project: Project
    outputs: list[Path]  # the report first
    records_dir: Path


_armed: list[tuple[Before, Record]] = []  # written by write_records at exit


def before_run(options: RunOptions, log_name: str) -> Before | None:
    """This run's inputs, hashed before its checks (a run they match passed them), with the log named
    `log_name` beside the report; None where they are not all known before Prefect starts."""
    if options.sandbox != "docker" or options.changed_since or runs_on_a_clone(options.target, options.deliver):
        return None
    if Path(options.target).expanduser().is_file():
        return None  # its project is the folder around it, which may be a home folder: not hashed for a shortcut
    try:
        project = discover(Path(options.target), options.modules, parse=False)  # the files are hashed
        report = directory_report(options, project.target)
        before = _inputs(options, project, report, report.parent / log_name)
    except Exception:  # noqa: BLE001 - the checks say what is wrong; nothing is refused for a shortcut
        get_logger("covsweep").debug("the run's inputs were not hashed", exc_info=True)
        return None
    if before is not None:
        _write_at_exit()
    return before


@cache
def _write_at_exit() -> None:
    atexit.register(write_records)  # before Prefect's server starts, so this runs once it has stopped


def _inputs(options: RunOptions, project: Project, report: Path, log_file: Path) -> Before | None:
    settings = load()
    image = existing_target_image(settings, project.target)
    if image is None:
        return None
    content = target_content(options, project)
    inputs = {
        "version": VERSION,
        "covsweep": _code_digest(),
        "dependencies": _dependency_versions(),
        "python": sys.version,
        "image": docker_client().images.get(image).id,
        "options": options.model_dump(mode="json"),
        "environment": {k: v for k, v in os.environ.items() if k.upper().startswith(ENVIRONMENT)},
        "working_directory": str(Path.cwd()),
        "prefect_files": _digests([str(f) for f in _prefect_files()]),
        "content": content,
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    summary = Path(options.summary_md).expanduser().resolve() if options.summary_md else None
    outputs = [report, log_file, *([summary] if summary else [])]
    return Before(key, content, options, project, outputs, settings.cache_dir / "unchanged")


def earlier_report(before: Before | None) -> Report | None:
    """The report of the run these inputs are the same as, when all it left is as it left it."""
    if before is None:
        return None
    try:
        record = Record.model_validate_json(_record_file(before).read_bytes())
        if record.holds():
            return Report.model_validate_json(record.report.read_bytes())
    except (OSError, ValueError):
        pass  # no record, or not one of this layout
    return None


def remember(before: Before | None, report: Report, status: int) -> bool:
    """Record a run that finished every module and left the target's files as it found them; written at
    exit, once the temporary server no longer writes its database. False: not recorded."""
    if before is None or status not in (0, 3) or not all(m.done() for m in report.modules):
        return False
    try:
        database = _temporary_database()
        if database is None or _elsewhere(before.options) or _other_image():
            return False
        if target_content(before.options, before.project) != before.content:
            return False
        written = before.outputs[0].read_bytes()
        if Report.model_validate_json(written).run_id != report.run_id:
            return False  # another run's report
    except Exception:  # noqa: BLE001 - the run itself is done: it only leaves no record
        get_logger("covsweep").debug("the run was not recorded", exc_info=True)
        return False
    files = [str(database.with_name(database.name + suffix)) for suffix in SQLITE_FILES]
    outputs = {str(before.outputs[0]): hashlib.sha256(written).hexdigest()}
    record = Record(report=before.outputs[0], outputs=outputs, database=dict.fromkeys(files))
    _armed.append((before, record))
    return True


def write_records() -> None:
    """The records `remember` made, with the outputs' digests and the database files' state now that the run
    is over; not one whose report changed since (another run's) or is gone."""
    for before, record in _armed:
        report = str(record.report)
        outputs = {report: record.outputs[report]} | _digests([str(p) for p in before.outputs[1:]])
        if _digests([report]) != {report: outputs[report]}:
            continue
        done = record.model_copy(update={"outputs": outputs, "database": _stat(list(record.database))})
        try:
            _write(before, done)
        except OSError:
            get_logger("covsweep").debug("the run's record was not written", exc_info=True)
    _armed.clear()


def _write(before: Before, record: Record) -> None:
    before.records_dir.mkdir(parents=True, exist_ok=True)
    for older in before.records_dir.glob(f"{_report_id(record.report)}-*.json"):
        older.unlink(missing_ok=True)  # its report is not what it recorded any more
    handle, part = tempfile.mkstemp(dir=before.records_dir, suffix=".part")
    with os.fdopen(handle, "w") as file:
        file.write(record.model_dump_json())
    os.replace(part, _record_file(before))


def _elsewhere(options: RunOptions) -> bool:
    """The module tasks may have run on a Dask cluster, whose workers' images and hosts nothing here hashes."""
    from blocks.cluster import CovsweepCluster  # Prefect's: imported once the run is over
    from blocks.saved import load_saved

    if options.cluster or load().cluster:
        return True
    block = load_saved(CovsweepCluster)
    return bool(block and block.address)


def _other_image() -> bool:
    """A saved covsweep-sandbox block names the sandbox image, and the plan builds on it, not on the one
    hashed (whose tag may point at another build next time)."""
    from blocks.sandbox import CovsweepSandbox  # Prefect's: imported once the run is over
    from blocks.saved import load_saved

    block = load_saved(CovsweepSandbox)
    return bool(block and block.image and not load().sandbox_image)


def _record_file(before: Before) -> Path:
    """One record per report file: a newer run's replaces the one before."""
    return before.records_dir / f"{_report_id(before.outputs[0])}-{before.key}.json"


def _report_id(report: Path) -> str:
    return hashlib.sha256(os.fsencode(report)).hexdigest()[:16]


def target_content(options: RunOptions, project: Project) -> str:
    """The digest of the target's files, and of its test folders outside it: what written tests change."""
    digest = hashlib.sha256()
    content_digest(digest, project.target, measured_test_paths(project, default_out(options, project)))
    return digest.hexdigest()


def _code_digest() -> str:
    """covsweep's own source: another version of it may run differently."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for file in sorted(f for name in PACKAGES for f in (root / name).rglob("*.py")):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _dependency_versions() -> dict[str, str]:
    """The versions of what covsweep requires: another Prefect, pydantic or coverage.py may run differently."""
    names = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in metadata.requires("covsweep") or []}
    versions = {}
    for name in sorted(names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""  # an extra's, not installed
    return versions


def _prefect_files() -> list[Path]:
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    return [profiles, *(Path.cwd() / name for name in PREFECT_FILES)]


def _digests(paths: list[str]) -> dict[str, str | None]:
    """Each file's sha256, None for one that is not there."""
    found: dict[str, str | None] = {}
    for path in paths:
        try:
            found[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            found[path] = None
    return found


def _stat(paths: list[str]) -> dict[str, tuple[int, int] | None]:
    """Each file's size and modification time, None for one that is not there."""
    found: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = os.stat(path)
            found[path] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            found[path] = None
    return found


def _temporary_database() -> Path | None:
    """The SQLite file of the temporary server, None for a named server or another database."""
    from prefect.settings import get_current_settings  # imported by the run already

    settings = get_current_settings()
    url = settings.server.database.connection_url
    url = url.get_secret_value() if url is not None else ""
    prefix = "sqlite+aiosqlite:///"
    if settings.api.url or not url.startswith(prefix):
        return None
    return Path(url.removeprefix(prefix)).expanduser().resolve()
