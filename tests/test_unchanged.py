"""A second `covsweep run` of a project nothing changed: the first run's report, printed without a flow
run, with the first run's exit status and figures an independent coverage run of the files gives; a
changed file, a removed report or anything written to Prefect's database since runs the flow again."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.checks import report_path
from tasks.core.models import ModuleResult, Project, Report, Totals
from tasks.core.options import RunOptions
from tasks.history.unchanged import Before, before_run, earlier_report, remember, target_content, write_records
from tasks.project.discover import discover
from tests.helpers import independent_measurement, percent, run_cli, write_project


def in_docker_with_a_server(test):
    """covsweep run, the real one: Docker with the sandbox image (no run of a test builds it), a Prefect server."""
    return pytest.mark.docker(pytest.mark.server(pytest.mark.usefixtures("sandbox_image")(test)))


CALC = "def add(a, b):\n    if a < 0:\n        return 0\n    return a + b\n"
CALC_TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
UNCHANGED = "unchanged since run"


def sweep(root: Path, tmp_path: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    cache = {"COVSWEEP_CACHE_DIR": str(tmp_path / "cache")}
    return run_cli("run", str(root), "--generator", "none", *options, env={**cache, **env})


def report_bytes(root: Path) -> bytes:
    return (root / ".covsweep" / "report.json").read_bytes()


def summary(stdout: str) -> list[str]:
    """The summary table and the report's path: from the table's title on, up to the run's own lines."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("covsweep: "))
    end = next(i for i, line in enumerate(lines) if line.startswith("report: "))
    return lines[start : end + 1]


def gate_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("covsweep: gate --fail-under:")]


def flow_runs(home: Path) -> int:
    """The flow runs in Prefect's database, read after the runs: reading it may touch its files."""
    database = home / "prefect.db"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from flow_run").fetchone()[0]


def assert_as_measured(root: Path, tmp_path: Path) -> None:
    calc = json.loads(report_bytes(root))["modules"][0]
    measured = independent_measurement(root, tmp_path / "independent", source=".")["files"]["calc.py"]["summary"]
    assert calc["coverage_before"]["line"] == percent(measured["covered_lines"], measured["num_statements"])
    assert calc["coverage_before"]["branch"] == percent(measured["covered_branches"], measured["num_branches"])


@in_docker_with_a_server
@pytest.mark.parametrize(("options", "status"), [((), 0), (("--fail-under", "90"), 3)])
def test_a_second_run_of_an_unchanged_project_prints_the_first_report_without_a_flow_run(tmp_path, options, status):
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    home = Path(os.environ["PREFECT_HOME"])
    runs_before = flow_runs(home)

    first = sweep(root, tmp_path, *options)
    assert first.returncode == status, first.stdout + first.stderr
    report, log = report_bytes(root), (root / ".covsweep" / "covsweep.log").read_bytes()
    second = sweep(root, tmp_path, *options)

    assert second.returncode == status, second.stdout + second.stderr
    assert f"{UNCHANGED} {json.loads(report)['run_id']}" in second.stdout
    assert summary(second.stdout) == summary(first.stdout)
    assert gate_lines(second.stderr) == gate_lines(first.stderr) and len(gate_lines(first.stderr)) == (status == 3)
    assert report_bytes(root) == report and (root / ".covsweep" / "covsweep.log").read_bytes() == log
    assert flow_runs(home) == runs_before + 1
    assert_as_measured(root, tmp_path)


def _edit_module(root: Path, tmp_path: Path) -> None:
    (root / "calc.py").write_text(CALC + "\n\ndef sub(a, b):\n    return a - b\n")


def _remove_report(root: Path, tmp_path: Path) -> None:
    (root / ".covsweep" / "report.json").unlink()


def _another_run(root: Path, tmp_path: Path) -> None:
    other = write_project(tmp_path / "other", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    assert sweep(other, tmp_path).returncode == 0


@in_docker_with_a_server
@pytest.mark.parametrize("change", [_edit_module, _remove_report, _another_run])
def test_anything_changed_since_runs_the_flow_again(tmp_path, change):
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    first = sweep(root, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    first_run = json.loads(report_bytes(root))["run_id"]

    change(root, tmp_path)
    second = sweep(root, tmp_path)

    assert second.returncode == 0, second.stdout + second.stderr
    assert UNCHANGED not in second.stdout
    assert json.loads(report_bytes(root))["run_id"] != first_run
    assert_as_measured(root, tmp_path)
    records = list((tmp_path / "cache" / "unchanged").glob("*.json"))
    assert len(records) == (2 if change is _another_run else 1)  # one per report: the newest run's


@in_docker_with_a_server
def test_a_block_saved_since_runs_the_flow_again(tmp_path):
    """In a Prefect home of its own: the block would hold for every later test."""
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    home = {"PREFECT_HOME": str(tmp_path / "prefect")}
    assert sweep(root, tmp_path, **home).returncode == 0
    first_run = json.loads(report_bytes(root))["run_id"]
    save = "from blocks.sandbox import CovsweepSandbox; CovsweepSandbox(limits={'memory_mb': 512}).save('default')"
    subprocess.run([sys.executable, "-c", save], env={**os.environ, **home}, check=True, timeout=300)

    second = sweep(root, tmp_path, **home)

    assert second.returncode == 0, second.stdout + second.stderr
    assert UNCHANGED not in second.stdout
    assert json.loads(report_bytes(root))["run_id"] != first_run


def project_and_options(tmp_path: Path, **options) -> tuple[RunOptions, Project]:
    root = write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    return RunOptions(target=str(root), generator="none", **options), discover(root)


@pytest.fixture
def no_server():
    """covsweep run's temporary server, as remember sees it, without starting one: no block is saved."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    with temporary_settings({PREFECT_SERVER_EPHEMERAL_ENABLED: False}, restore_defaults={PREFECT_API_URL}):
        yield


def finished(tmp_path: Path) -> tuple[Before, Report]:
    """A run's inputs and the report it wrote, with its log beside it."""
    options, project = project_and_options(tmp_path)
    report_file, log = tmp_path / "out" / "report.json", tmp_path / "out" / "covsweep.log"
    done = ModuleResult(module="calc.py", status="skipped", success=True, generator="none")
    report = Report(
        run_id="r", target=str(project.target), generator="none", coverage_target=80.0, started_at="",
        finished_at="", duration_s=1.0, totals=Totals(), modules=[done],
    )  # fmt: skip
    log.parent.mkdir()
    report_file.write_text(report.to_json())
    log.write_text("a log line\n")
    content = target_content(options, project)
    return Before("key", content, options, project, [report_file, log], tmp_path / "records"), report


@pytest.mark.docker
@pytest.mark.usefixtures("sandbox_image")
@pytest.mark.parametrize("options", [{"sandbox": "local"}, {"changed_since": "main"}, {"deliver": "patch"}])
def test_a_run_whose_inputs_are_not_all_known_before_prefect_starts_is_never_skipped(tmp_path, options):
    eligible, project = project_and_options(tmp_path / "eligible")
    before = before_run(eligible, "covsweep.log")  # Docker and the image are there: the control is hashed
    assert before is not None and before.outputs[:2] == [report_path(eligible, project), before.outputs[1]]
    assert before.outputs[1].name == "covsweep.log"

    run_options, _ = project_and_options(tmp_path, **options)
    assert before_run(run_options, "covsweep.log") is None
    single_file = eligible.model_copy(update={"target": str(project.target / "calc.py")})
    assert before_run(single_file, "covsweep.log") is None  # the folder around it could be a home folder
    for bad in ({"target": str(tmp_path / "missing")}, {"modules": ["nothing/*.py"]}):
        assert before_run(eligible.model_copy(update=bad), "covsweep.log") is None  # the checks say why


def test_only_a_run_that_finished_every_module_and_wrote_no_test_is_recorded(tmp_path, no_server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before, report = finished(tmp_path)
    failed = report.model_copy(update={"modules": [report.modules[0].model_copy(update={"status": "failed"})]})

    assert remember(before, report, 0) and remember(before, report, 3)
    assert not remember(before, report, 1) and not remember(before, failed, 0)
    assert not remember(before, report.model_copy(update={"run_id": "another"}), 0)  # the report is another run's
    (before.project.target / "tests" / "test_generated.py").write_text("def test_it():\n    pass\n")
    assert not remember(before, report, 0)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # a named server's database
        assert not remember(before, report, 0)
    (before.project.target / "tests" / "test_generated.py").unlink()
    assert remember(before, report, 0)
    on_a_cluster = before.options.model_copy(update={"cluster": "tcp://127.0.0.1:8786"})
    assert not remember(dataclasses.replace(before, options=on_a_cluster), report, 0)  # its workers: not hashed


def test_a_record_holds_while_the_outputs_and_prefects_database_are_as_the_run_left_them(tmp_path, no_server):
    from prefect.settings import get_current_settings

    before, report = finished(tmp_path)
    database = Path(get_current_settings().server.database.connection_url.get_secret_value().split("///")[1])
    journal = database.with_name(database.name + "-journal")
    assert remember(before, report, 0)
    write_records()
    assert earlier_report(before) == report

    for changed in (before.outputs[1], journal):  # the log; a write to the database
        saved = changed.read_bytes() if changed.exists() else None
        changed.write_text("written since")
        assert earlier_report(before) is None
        changed.write_bytes(saved) if saved is not None else changed.unlink()
    assert earlier_report(before) == report
    before.outputs[0].write_text(report.model_copy(update={"run_id": "edited"}).to_json())
    assert earlier_report(before) is None


def test_a_record_is_not_written_when_the_report_changed_before_the_exit(tmp_path, no_server):
    before, report = finished(tmp_path)
    assert remember(before, report, 0)
    before.outputs[0].write_text(report.model_copy(update={"run_id": "another run's"}).to_json())
    write_records()
    assert not before.records_dir.exists()
