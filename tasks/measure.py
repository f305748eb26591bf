"""One sandboxed pytest + coverage run over the whole project: the baseline, and the final validation."""

from __future__ import annotations

import shlex
from pathlib import Path

from prefect import task
from pydantic import BaseModel

from tasks import sandbox
from tasks.coverage_data import read_json_report, write_rcfile
from tasks.pytest_support import junit_outcomes, pytest_args, sandbox_env
from tasks.models import Project, ProjectCoverage, SandboxConfig
from tasks.testfile import test_names
from tasks.write import is_covsweep_file


class Measurement(BaseModel):
    coverage: ProjectCoverage
    failed_tests: dict[str, list[str]] = {}
    output: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    start_s: float = 0.0

    def problem(self) -> str:
        if self.timed_out:
            return f"the test run timed out after {self.duration_s:.0f}s"
        return (self.output.strip().splitlines() or ["coverage.py wrote no report"])[-1][:300]


@task(name="measure-coverage")
def measure_coverage(config: SandboxConfig, project: Project, test_paths: list[Path],
                     workspace: Path, timeout: float) -> Measurement:
    """pytest over `test_paths` under coverage, split per module; no tests is a 0 baseline."""
    sandbox.prepare_workspace(workspace)
    rcfile = write_rcfile(workspace, project, per_test=False)
    junit = workspace / "junit.xml"
    if test_paths:
        command = f"\"$PY\" -m coverage run --rcfile={rcfile} {pytest_args(test_paths, junit)}"
    else:
        (workspace / "no_tests.py").write_text("")
        command = f"\"$PY\" -m coverage run --rcfile={rcfile} {workspace / 'no_tests.py'}"
    script = "\n".join([
        f"cd {shlex.quote(str(project.target))}",
        f"{command} > {workspace}/pytest.log 2>&1; echo \"pytest exit $?\"",
        f"\"$PY\" -m coverage json --rcfile={rcfile} -q -o {workspace}/coverage.json",
    ])
    mounts = [project.target] + [p for p in test_paths if not p.is_relative_to(project.target)]
    result = sandbox.run(config, script, workspace=workspace, read_only=mounts, timeout=timeout,
                         env=sandbox_env(project))
    failed = {}
    for path in test_paths:
        for test_file in ([path] if path.is_file() else sorted(path.rglob("test_*.py"))):
            if is_covsweep_file(test_file):
                # A test that never ran (its file failed to import) failed as surely as one that did.
                outcomes = junit_outcomes(junit, test_file.stem)
                bad = [n for n in test_names(test_file.read_text()) if not outcomes.get(n, False)]
                if bad:
                    failed[str(test_file)] = bad
    log = workspace / "pytest.log"
    return Measurement(
        coverage=read_json_report(workspace / "coverage.json", project, project.target),
        failed_tests=failed,
        output=(log.read_text(errors="replace") if log.exists() else result.output)[-4000:],
        timed_out=result.timed_out, duration_s=result.duration_s, start_s=result.start_s,
    )
