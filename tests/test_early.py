"""The baseline `covsweep run` begins before its flow, in the real sandbox: the flow adopts it when it
measures the same files and settings (and stores it for later runs), stops it otherwise or when the run
ends first; nothing of it is left behind, and a stopped one is never stored."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tasks.core.models import Project, SandboxLimits
from tasks.core.options import RunOptions
from tasks.core.settings import load
from tasks.coverage import early
from tasks.coverage.measurement import measure, run_measurement
from tasks.plan import discard_workspace, plan_run
from tasks.project.discover import discover
from tasks.sandbox.containers import docker_client
from tests.helpers import independent_measurement, percent, run_cli, write_project
from tests.round_fakes import local_results

pytestmark = pytest.mark.docker

CALC = "def add(a, b):\n    if a < 0:\n        return 0\n    return a + b\n"
CALC_TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
PAUSES = "\n\ndef test_pauses():\n    import time\n\n    time.sleep(5)\n"
NEGATIVE = "\n\ndef test_negative():\n    assert add(-1, 2) == 0\n"
# Were it not stopped, its early baseline would outlast the test's timeout (the sandbox's per-test one is lifted).
WAITS = "import time\n\nimport pytest\n\n\n@pytest.mark.timeout(0)\ndef test_waits():\n    time.sleep(900)\n"


@pytest.fixture(autouse=True)
def own_cache_and_results(tmp_path, monkeypatch, sandbox_image):
    """As under `covsweep run`'s temporary server, whatever Prefect API another test left set up."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("COVSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    with local_results(tmp_path / "results"), temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield
    early.abandon()


def begun(root: Path, **options) -> tuple[RunOptions, Project]:
    run_options = RunOptions(target=str(root), generator="none", **options)
    project = discover(root)
    early.begin(run_options, project)
    return run_options, project


def left_behind() -> tuple[list[str], list[str]]:
    """This test's early baselines' workspaces and containers that are still there."""
    runs = load().cache_dir / "runs"
    workspaces = sorted(p.name for p in runs.glob("early-*"))
    labelled = docker_client().containers.list(all=True, filters={"label": early.LABEL}, ignore_removed=True)
    return workspaces, [c.id for c in labelled if Path(c.attrs["Config"]["WorkingDir"]).is_relative_to(runs)]


def planned(tmp_path: Path, tests: str = CALC_TESTS):
    """A project's early baseline begun, and the plan of the run that will ask for it."""
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": tests})
    options, _ = begun(root)
    return plan_run.fn(options, load_blocks=False)


def running_early_baseline() -> None:
    deadline = time.monotonic() + 120
    while not left_behind()[1]:
        assert time.monotonic() < deadline, "the early baseline's container never ran"
        time.sleep(0.1)


def test_the_flow_adopts_an_early_baseline_of_the_same_files_and_settings_and_stores_it(tmp_path):
    plan = planned(tmp_path)
    inputs = (plan.sandbox, plan.project, plan.test_paths())

    adopted = early.adopt(*inputs, plan.measurement_timeout(), plan.framework)

    independent = run_measurement(*inputs, tmp_path / "independent", plan.measurement_timeout(), plan.framework)
    assert adopted is not None and not adopted.reused
    assert adopted.coverage == independent.coverage
    assert adopted.coverage.files["calc.py"].percentages().line == 75.0
    assert measure(*inputs, tmp_path / "again", plan.measurement_timeout(), plan.framework).reused
    assert early.adopt(*inputs, plan.measurement_timeout(), plan.framework) is None  # adopted once only
    discard_workspace(plan)
    assert left_behind() == ([], [])


@pytest.mark.timeout(120)
def test_an_early_baseline_of_other_settings_is_stopped_and_never_stored(tmp_path):
    plan = planned(tmp_path, CALC_TESTS + WAITS)
    timeout, framework = plan.measurement_timeout(), plan.framework
    other = plan.sandbox.model_copy(update={"limits": SandboxLimits(memory_mb=plan.sandbox.limits.memory_mb + 1)})

    assert early.adopt(other, plan.project, plan.test_paths(), timeout, framework) is None

    assert left_behind() == ([], [])
    assert list((tmp_path / "results").glob("covsweep-measurement-*")) == []
    discard_workspace(plan)


@pytest.mark.timeout(120)
def test_a_run_that_ends_before_its_baseline_leaves_nothing_of_it(tmp_path):
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS + WAITS})
    begun(root)
    running_early_baseline()

    early.abandon()

    assert left_behind() == ([], [])


@pytest.mark.timeout(300)
def test_ctrl_c_while_the_flow_waits_for_the_early_baseline_removes_it(tmp_path):
    plan = planned(tmp_path, CALC_TESTS + WAITS)
    running_early_baseline()
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()

    try:
        with pytest.raises(KeyboardInterrupt):
            early.adopt(plan.sandbox, plan.project, plan.test_paths(), plan.measurement_timeout(), plan.framework)
    finally:
        ctrl_c.cancel()  # never into a later test

    assert left_behind() == ([], [])
    discard_workspace(plan)


@pytest.mark.timeout(300)
def test_a_file_edited_after_the_early_baseline_began_is_measured_by_the_flow(tmp_path):
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS + PAUSES})
    options, _ = begun(root)
    running_early_baseline()
    (root / "tests" / "test_calc.py").write_text(CALC_TESTS + PAUSES + NEGATIVE)
    plan = plan_run.fn(options, load_blocks=False)
    inputs = (plan.sandbox, plan.project, plan.test_paths())

    adopted = early.adopt(*inputs, plan.measurement_timeout(), plan.framework)
    measured = measure(*inputs, tmp_path / "flow", plan.measurement_timeout(), plan.framework)

    assert adopted is None and not measured.reused
    assert measured.coverage.files["calc.py"].percentages().line == 100.0
    assert left_behind() == ([], [])
    discard_workspace(plan)


def test_an_early_baseline_finds_the_measurement_an_earlier_run_stored(tmp_path):
    plan = planned(tmp_path)
    inputs = (plan.sandbox, plan.project, plan.test_paths(), plan.measurement_timeout(), plan.framework)
    first = early.adopt(*inputs)

    begun(plan.project.target)
    again = early.adopt(*inputs)

    assert (first.reused, again.reused) == (False, True)
    assert again.coverage == first.coverage and again.duration_s == first.duration_s
    discard_workspace(plan)
    assert left_behind() == ([], [])


def test_no_early_baseline_where_the_run_does_not_measure_in_place_in_docker_or_a_server_stores_results(
    tmp_path,
):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    plan = plan_run.fn(RunOptions(target=str(root), generator="none"), load_blocks=False)
    inputs = (plan.sandbox, plan.project, plan.test_paths(), plan.measurement_timeout(), plan.framework)
    begun(root, sandbox="local")
    assert early.adopt(*inputs) is None
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        begun(root)
    assert early.adopt(*inputs) is None
    begun(root)  # and with neither, it is
    assert early.adopt(*inputs) is not None
    discard_workspace(plan)
    assert left_behind() == ([], [])


@pytest.mark.server
def test_covsweep_run_reports_the_early_baseline_as_an_independent_run_measures_it(tmp_path):
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})

    result = run_cli("run", str(root), "--generator", "none", env={"COVSWEEP_CACHE_DIR": str(tmp_path / "cache")})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "the baseline was measured while Prefect started" in (root / ".covsweep" / "covsweep.log").read_text()
    calc = json.loads((root / ".covsweep" / "report.json").read_text())["modules"][0]
    measured = independent_measurement(root, tmp_path, source=".")["files"]["calc.py"]["summary"]
    assert calc["module"] == "calc.py"
    assert calc["coverage_before"]["line"] == percent(measured["covered_lines"], measured["num_statements"]) == 75.0
    assert calc["coverage_before"]["branch"] == percent(measured["covered_branches"], measured["num_branches"])
    assert left_behind() == ([], [])
