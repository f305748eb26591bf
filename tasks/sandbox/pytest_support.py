"""How covsweep runs pytest in a sandbox and reads back what each test did."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from tasks.core.models import ProjectRef, SandboxConfig
from tasks.sandbox import runner as sandbox

PER_TEST_TIMEOUT_S = 30
FORKED_RUNNER = Path(__file__).with_name("forked_pytest.py")
FORKED_RUNNER_NAME, FORKED_RUNS_NAME = "covsweep_forked_pytest.py", "covsweep_forked_runs.json"
JSON_REPORTER = Path(__file__).with_name("coverage_json.py")
JSON_REPORTER_NAME = "covsweep_coverage_json.py"


def pytest_args(paths: list[Path | str], junit: Path | None = None) -> str:
    """pytest's arguments for these paths or node ids, with a JUnit XML report when `junit` is given."""
    return " ".join(shlex.quote(a) for a in ["-m", "pytest", *pytest_options(paths, junit)])


def pytest_options(paths: list[Path | str], junit: Path | None = None) -> list[str]:
    """What pytest_args passes to pytest itself."""
    args = [
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=native",
        "-o",
        "addopts=",
        "-o",
        "junit_family=xunit1",  # each test's file in the XML: its node id, to run it again alone
        f"--timeout={PER_TEST_TIMEOUT_S}",
    ]
    if junit:
        args.append(f"--junitxml={junit}")
    return args + [str(p) for p in paths]


def forked_coverage_command(workspace: Path, runs: list[tuple[Path, Path, list[str]]]) -> str:
    """The command that does each (rcfile, log, pytest options) run as `coverage run --rcfile -m pytest
    > log` would, all forked from one interpreter; writes forked_pytest.py and the run list into `workspace`."""
    runner = sandbox.readable_file(workspace / FORKED_RUNNER_NAME, FORKED_RUNNER.read_text())
    listed = [{"rcfile": str(rcfile), "log": str(log), "args": args} for rcfile, log, args in runs]
    run_list = sandbox.readable_file(workspace / FORKED_RUNS_NAME, json.dumps(listed))
    return f'"$PY" {shlex.quote(str(runner))} {shlex.quote(str(run_list))}'


def coverage_json_command(workspace: Path, rcfile: Path, report: Path) -> str:
    """The command that writes what `coverage json --rcfile -q -o report` would, faster; copies
    coverage_json.py into `workspace` as covsweep_coverage_json.py."""
    reporter = sandbox.readable_file(workspace / JSON_REPORTER_NAME, JSON_REPORTER.read_text())
    return f'"$PY" {shlex.quote(str(reporter))} --rcfile={shlex.quote(str(rcfile))} -q -o {shlex.quote(str(report))}'


def sandbox_env(project: ProjectRef) -> dict[str, str]:
    """Import the target as if it were installed, the way its own tests would see it."""
    return {"PYTHONPATH": str(project.import_root), "PYTHONDONTWRITEBYTECODE": "1"}


def run_in_target(
    config: SandboxConfig, project: ProjectRef, commands: list[str], *, workspace: Path, timeout: float
) -> sandbox.ExecResult:
    """Run `commands` one after the other from the target's root, the target mounted read-only and
    importable as its own tests see it."""
    script = "\n".join([f"cd {shlex.quote(str(project.target))}", *commands])
    return sandbox.run(
        config, script, workspace=workspace, read_only=[project.target], timeout=timeout, env=sandbox_env(project)
    )


def junit_outcomes(junit: Path, stem: str) -> dict[str, bool]:
    """qualname -> passed for the tests of module `stem`, from one pytest run's JUnit XML
    (parametrized cases folded)."""
    if not junit.exists():
        return {}
    results: dict[str, bool] = {}
    for case in ET.parse(junit).iter("testcase"):
        parts = case.get("classname", "").split(".")
        if stem not in parts:
            continue
        prefix = ".".join(parts[parts.index(stem) + 1 :])
        name = case.get("name", "").split("[")[0]
        qualname = f"{prefix}.{name}" if prefix else name
        bad = any(child.tag in ("failure", "error") for child in case) or any(
            child.tag == "skipped" and child.get("type") != "pytest.xfail" for child in case
        )
        results[qualname] = results.get(qualname, True) and not bad
    return results


def _bad(case: ET.Element) -> bool:
    return any(child.tag in ("failure", "error") for child in case)


def junit_node_ids(junit: Path) -> list[tuple[str, bool]]:
    """(node id, passed) of each test in the order they ran, from a pytest run's JUnit XML (xunit1:
    it names each test's file). A test whose setup and teardown both failed is there once."""
    if not junit.exists():
        return []
    cases: dict[str, bool] = {}
    for case in ET.parse(junit).iter("testcase"):
        file = case.get("file")
        if not file or not file.endswith(".py"):
            continue
        within = case.get("classname", "").removeprefix(file.removesuffix(".py").replace("/", ".")).lstrip(".")
        node_id = "::".join([file, *(within.split(".") if within else []), case.get("name", "")])
        cases[node_id] = cases.get(node_id, True) and not _bad(case)
    return list(cases.items())
