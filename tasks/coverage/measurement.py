"""One sandboxed pytest + coverage run over the whole project: the baseline, and the final validation."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.core.markers import is_covsweep_file
from tasks.core.models import Framework, Project, ProjectCoverage, SandboxConfig
from tasks.core.testfiles import test_names
from tasks.coverage.data import read_json_report, write_rcfile
from tasks.coverage.ledger import recall, remember
from tasks.sandbox import runner as sandbox
from tasks.sandbox.containers import docker_client
from tasks.sandbox.pytest_support import (
    coverage_json_command,
    junit_node_ids,
    junit_outcomes,
    pytest_args,
    sandbox_env,
)
from tasks.sandbox.snapshot import content_digest, refresh_output
from tasks.sandbox.unittest_support import discovery_roots, install_runner, unittest_args, unittest_outcomes


class Measurement(BaseModel):
    coverage: ProjectCoverage
    failed_tests: dict[str, list[str]] = {}
    failed_project: list[str] = Field(default=[], description="node ids of the project's own tests that failed")
    order: list[str] = Field(default=[], description="covsweep's tests (by function) and failed_project, as they ran")
    output: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    start_s: float = 0.0
    reused: bool = Field(default=False, description="an earlier run's measurement of the very same files")

    def problem(self) -> str:
        if self.timed_out:
            return f"the test run timed out after {self.duration_s:.0f}s"
        return (self.output.strip().splitlines() or ["coverage.py wrote no report"])[-1][:300]


def _test_command(framework: Framework, test_paths: list[Path], workspace: Path) -> str:
    """The project's tests as its CI runs them: pytest, or unittest's discovery (through covsweep's runner,
    which also writes each test's outcome); no tests at all runs an empty script, a 0 baseline."""
    if not test_paths:
        (workspace / "no_tests.py").write_text("")
        return str(workspace / "no_tests.py")
    if framework == "unittest":
        roots = discovery_roots(test_paths)
        return unittest_args(install_runner(workspace), roots, workspace / "outcomes.json")
    return pytest_args(test_paths, workspace / "junit.xml")


def _failed_generated(framework: Framework, test_paths: list[Path], workspace: Path) -> dict[str, list[str]]:
    """covsweep's test files -> their tests that did not pass."""
    failed = {}
    for path in test_paths:
        for test_file in [path] if path.is_file() else sorted(path.rglob("test_*.py")):
            if is_covsweep_file(test_file):
                if framework == "unittest":
                    outcomes = unittest_outcomes(workspace / "outcomes.json", test_file.stem)
                else:
                    outcomes = junit_outcomes(workspace / "junit.xml", test_file.stem)
                # A test that never ran (its file failed to import) failed as surely as one that did.
                bad = [n for n in test_names(test_file.read_text()) if not outcomes.get(n, False)]
                if bad:
                    failed[str(test_file)] = bad
    return failed


def _suite_order(framework: Framework, project: Project, workspace: Path) -> tuple[list[str], list[str]]:
    """The project's own tests that failed, and the order covsweep's tests and those ran in (pytest only)."""
    if framework == "unittest":
        return [], []
    failed, order = [], {}
    for node_id, passed in junit_node_ids(workspace / "junit.xml"):
        if is_covsweep_file(project.target / node_id.split("::")[0]):
            order[node_id.split("[")[0]] = True  # a test function, its parameters together
        elif not passed:
            failed.append(node_id)
            order[node_id] = True
    return failed, list(order)


def _mounts(project: Project, test_paths: list[Path]) -> list[Path]:
    return [project.target] + [p for p in test_paths if not p.is_relative_to(project.target)]


def failing_among(
    config: SandboxConfig,
    project: Project,
    test_paths: list[Path],
    node_ids: list[str],
    watched: list[str],
    workspace: Path,
    timeout: float,
) -> list[str]:
    """Run the tests `node_ids` in that order, without coverage: those of `watched` that failed."""
    sandbox.prepare_workspace(workspace)
    refresh_output(config.snapshot)
    script = "\n".join(
        [
            f"cd {shlex.quote(str(project.target))}",
            f'"$PY" {pytest_args(list(node_ids), workspace / "junit.xml")} > {workspace}/pytest.log 2>&1',
        ]
    )
    env = sandbox_env(project)
    sandbox.run(config, script, workspace=workspace, read_only=_mounts(project, test_paths), timeout=timeout, env=env)
    passed = dict(junit_node_ids(workspace / "junit.xml"))
    return [t for t in watched if passed.get(t) is False]


# Bumped whenever what a measurement records, or how, changes: older stored ones are then not reused.
MEASUREMENT_VERSION = "covsweep.measurement/1"


def measurement_key(
    config: SandboxConfig, project: Project, test_paths: list[Path], timeout: float, framework: Framework
) -> str | None:
    """The content hash of everything a whole-project run reads: the sandbox image (by id, so a re-tagged
    one differs) and its limits, the settings, and every file of the target and of its test paths.
    None for the local sandbox, whose Python environment (the host's) no hash pins down."""
    if config.kind != "docker":
        return None
    settings = {
        "version": MEASUREMENT_VERSION,
        "image": docker_client().images.get(config.image).id,
        "limits": config.limits.model_dump(mode="json"),
        "timeout": timeout,
        "framework": framework,
        "project": project.ref().model_dump(mode="json"),
        "test_paths": [str(p) for p in test_paths],
        "modules": [m.path for m in project.modules],
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    content_digest(digest, project.target, test_paths)
    return f"covsweep-measurement-{digest.hexdigest()[:40]}.json"


def _recalled(key: str | None) -> Measurement | None:
    return stored_measurement(recall(key) if key else None)


def stored_measurement(stored: bytes | None) -> Measurement | None:
    """A measurement an earlier run stored, marked reused; None for none, or one of an older layout."""
    if stored is None:
        return None
    try:
        return Measurement.model_validate_json(stored).model_copy(update={"reused": True})
    except ValueError:
        return None


def measure(
    config: SandboxConfig,
    project: Project,
    test_paths: list[Path],
    workspace: Path,
    timeout: float,
    framework: Framework = "pytest",
) -> Measurement:
    """The project's tests under coverage, split per module; an earlier run's measurement when every file and
    setting it read is the same (a run that timed out is never kept)."""
    key = measurement_key(config, project, test_paths, timeout, framework)
    if (known := _recalled(key)) is not None:
        return known
    measured = run_measurement(config, project, test_paths, workspace, timeout, framework)
    keep(key, measured, config, project, test_paths, timeout, framework)
    return measured


def keep(
    key: str | None,
    measured: Measurement,
    config: SandboxConfig,
    project: Project,
    test_paths: list[Path],
    timeout: float,
    framework: Framework,
) -> None:
    """Store `measured` for later runs under `key`, unless it timed out or a file changed while it ran:
    then it is not the measurement of the files the key names."""
    if key and not measured.timed_out and key == measurement_key(config, project, test_paths, timeout, framework):
        remember(key, measured.model_dump_json().encode())


def run_measurement(
    config: SandboxConfig,
    project: Project,
    test_paths: list[Path],
    workspace: Path,
    timeout: float,
    framework: Framework = "pytest",
    labels: dict[str, str] | None = None,
) -> Measurement:
    """The project's tests under coverage (pytest, or unittest), split per module; no tests is a 0 baseline.
    `labels` go on the sandbox's container."""
    sandbox.prepare_workspace(workspace)
    # The run writes (and may remove) its tests after the sandbox's snapshot was taken.
    refresh_output(config.snapshot)
    rcfile = write_rcfile(workspace, project, per_test=False)
    command = f'"$PY" -m coverage run --rcfile={rcfile} {_test_command(framework, test_paths, workspace)}'
    script = "\n".join(
        [
            f"cd {shlex.quote(str(project.target))}",
            f'{command} > {workspace}/pytest.log 2>&1; echo "pytest exit $?"',
            coverage_json_command(workspace, rcfile, workspace / "coverage.json"),
        ]
    )
    mounts = _mounts(project, test_paths)
    env = sandbox_env(project)
    result = sandbox.run(config, script, workspace=workspace, read_only=mounts, timeout=timeout, env=env, labels=labels)
    log = workspace / "pytest.log"
    failed_project, order = _suite_order(framework, project, workspace)
    return Measurement(
        coverage=read_json_report(workspace / "coverage.json", project, project.target),
        failed_tests=_failed_generated(framework, test_paths, workspace),
        failed_project=failed_project,
        order=order,
        output=(log.read_text(errors="replace") if log.exists() else result.output)[-4000:],
        timed_out=result.timed_out,
        duration_s=result.duration_s,
        start_s=result.start_s,
    )
