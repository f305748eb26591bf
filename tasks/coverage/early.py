"""The run's baseline, begun before its flow: `covsweep run` starts it once its checks pass and Prefect is
imported, so that the sandboxed measurement runs while the flow is imported and the temporary server boots.
The flow's measure-coverage task adopts it when it measures the very same thing: the same content hash
of every file and setting the run reads (measurement_key), taken once the run's own snapshot of the
target is, which its modules read too. Otherwise the early one is stopped (its container removed), and
the flow measures as it always did.

Begun only where the baseline's inputs are known before the flow plans the run: a directory target
measured in place, in the Docker sandbox, with an image that is there already (nothing is built), and
results stored in the local path (the temporary server, no storage block). Its limits are the defaults:
a saved covsweep-sandbox block with other limits or another image makes the keys differ, and every run
then pays for an early baseline it throws away. It runs in a workspace of its own, removed once it ends.
Its thread asks nothing of Prefect, whose server is not up yet: an earlier run's measurement is looked
for in the local result storage path, and the flow stores the new one.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import requests
from docker.errors import DockerException

from tasks.core.errors import InputError
from tasks.core.log import get_logger
from tasks.core.models import Framework, Project, SandboxConfig
from tasks.core.options import RunOptions
from tasks.core.plan import default_out, measured_test_paths, measurement_timeout
from tasks.core.settings import Settings, load
from tasks.coverage.ledger import local_results
from tasks.coverage.measurement import Measurement, keep, measurement_key, run_measurement, stored_measurement
from tasks.project.framework import resolve_framework
from tasks.project.source import runs_on_a_clone
from tasks.sandbox.containers import docker_client, remove_container
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.snapshot import plan_snapshot, take_snapshot
from tasks.sandbox.target_image import existing_target_image

LABEL = "covsweep.early"  # on the early baseline's container, valued with its token
STOP_POLL_S = 0.5


@dataclass
class EarlyBaseline:
    workspace: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    keyed: threading.Event = field(default_factory=threading.Event)  # set once `key` is known
    key: str | None = None  # None: nothing was begun after all
    stopped: threading.Event = field(default_factory=threading.Event)
    measured: Future = field(default_factory=Future)  # Measurement | None


_pending: EarlyBaseline | None = None
_lock = threading.Lock()


def begin(options: RunOptions, project: Project | None) -> None:
    """Start measuring the baseline of `project` in a thread, where the run's flow will find it."""
    global _pending
    if project is None or options.sandbox != "docker" or runs_on_a_clone(options.target, options.deliver):
        return
    if (results := local_results()) is None:  # an earlier run's measurement is not to be found without a server
        return
    abandon()  # one at a time
    settings = load()
    early = EarlyBaseline(workspace=settings.cache_dir / "runs" / f"early-{uuid.uuid4().hex}")
    with _lock:
        _pending = early
    args = (early, options, project, settings, results)
    threading.Thread(target=_measure, args=args, name="covsweep-early-baseline", daemon=True).start()


def _measure(early: EarlyBaseline, options: RunOptions, project: Project, settings: Settings, results: Path) -> None:
    measured = None
    try:
        image = existing_target_image(settings, project.target)
        if image is not None:
            measured = _measured(early, options, project, SandboxConfig(kind="docker", image=image), results)
    except Exception:  # the flow measures as it always did, and says what is wrong
        get_logger("covsweep").debug("the early baseline failed", exc_info=True)
    finally:
        early.keyed.set()
        remove_tree(early.workspace)
        early.measured.set_result(measured)


def _measured(
    early: EarlyBaseline, options: RunOptions, project: Project, config: SandboxConfig, results: Path
) -> Measurement | None:
    """What the flow's baseline would measure, as its plan would set it up; an earlier run's if stored."""
    out = default_out(options, project)
    reads_again = options.generator != "none"
    config.snapshot = plan_snapshot(project.target, out, early.workspace / "snapshot", reads_again=reads_again)
    test_paths, timeout = measured_test_paths(project, out), measurement_timeout(options)
    framework = resolve_framework(options.framework, project)
    early.key = measurement_key(config, project, test_paths, timeout, framework)
    early.keyed.set()
    try:
        if (stored := stored_measurement((results / early.key).read_bytes())) is not None:
            return stored
    except OSError:
        pass  # none stored
    if early.stopped.is_set():
        return None
    workspace = early.workspace / "baseline"
    return run_measurement(config, project, test_paths, workspace, timeout, framework, {LABEL: early.token})


def adopt(
    config: SandboxConfig, project: Project, test_paths: list[Path], timeout: float, framework: Framework
) -> Measurement | None:
    """The early baseline, waited for, when it measures what these arguments name; else None (and the
    early one, if any, is stopped)."""
    early = _take()
    if early is None:
        return None
    try:
        early.keyed.wait()
        if config.snapshot:
            take_snapshot(config.snapshot)  # the run's view of the files: the key must hold for it too
        if early.key is None or early.key != measurement_key(config, project, test_paths, timeout, framework):
            _stop(early)
            return None
        measured = early.measured.result()
    except BaseException:
        _stop(early)  # Ctrl-C while waiting: its container goes, as the flow's own would
        raise
    if measured is not None and not measured.reused:
        # Stored here, not in its thread: the flow's settings say where results go.
        keep(early.key, measured, config, project, test_paths, timeout, framework)
        get_logger("covsweep").info("the baseline was measured while Prefect started")
    return measured


def abandon() -> None:
    """Stop an early baseline no flow adopted (the run ended before its baseline), and wait for its end."""
    early = _take()
    if early is not None:
        _stop(early)


def _take() -> EarlyBaseline | None:
    global _pending
    with _lock:
        early, _pending = _pending, None
    return early


def _stop(early: EarlyBaseline) -> None:
    """Remove its container until its thread has ended: the container may be created after a look."""
    early.stopped.set()
    while True:
        try:
            labelled = {"label": f"{LABEL}={early.token}"}
            for container in docker_client().containers.list(all=True, filters=labelled, ignore_removed=True):
                remove_container(container)
        except (DockerException, InputError, requests.RequestException):
            get_logger("covsweep").debug("could not remove the early baseline's container", exc_info=True)
        try:
            early.measured.result(timeout=STOP_POLL_S)
            return
        except TimeoutError:
            continue
