"""`covsweep run` as a user types it: bad input is one line and exit 2, nothing changed;
a real run prints its table, writes its report and exits 0, or 1 when a module failed."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from covsweep.cli import main
from tests.helpers import run_cli, snapshot, write_project


def assert_refused(result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("covsweep: error: ")
    assert fragment in lines[0]


def run_in_process(monkeypatch, capsys, *args: str) -> subprocess.CompletedProcess:
    """`covsweep ARGS` through main() in this process: the table below needs no interpreter of its own."""
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # main() sets it; put back after
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exited.value.code, captured.out, captured.err)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--reruns", "0"], "--reruns"),
        (["--reruns", "many"], "--reruns"),
        (["--coverage-target", "150"], "--coverage-target"),
        (["--concurrency", "0"], "--concurrency"),
        (["--timeout", "-1"], "--timeout"),
        (["--generator", "gpt"], "--generator"),
        (["--sandbox", "vm"], "--sandbox"),
        (["--budget-usd", "-3"], "--budget-usd"),
        (["--mutants", "0"], "--mutants"),
        (["--mutation-target", "101"], "--mutation-target"),
        (["--mutation", "maybe"], "--mutation"),
        (["--fail-under", "101"], "--fail-under"),
        (["--fail-under-diff", "-1"], "--fail-under-diff"),
        (["--deliver", "email"], "--deliver"),
        (["--framework", "nose"], "--framework"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--modules", "nothing/*.py"], "no Python modules found"),
        (["--fail-under-diff", "50"], "--fail-under-diff needs --changed-since REF"),
        (["--changed-since", "main"], "is not a git work tree"),
        (
            ["--report", "/proc/covsweep/report.json"],
            "cannot write the report to /proc/covsweep: No such file or directory",
        ),
    ],
)
def test_bad_options_are_refused_with_one_line(example, args, fragment, monkeypatch, capsys):
    before = snapshot(example)
    assert_refused(run_in_process(monkeypatch, capsys, "run", str(example), *args), fragment)
    assert snapshot(example) == before


def test_a_bad_option_is_one_line_from_the_whole_process(example):
    assert_refused(run_cli("run", str(example), "--reruns", "0"), "--reruns")


def test_missing_target(tmp_path):
    assert_refused(run_cli("run", str(tmp_path / "nowhere")), "does not exist")


def test_target_that_is_not_python(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert_refused(run_cli("run", str(notes)), "neither a directory nor a .py file")


def test_single_file_with_a_syntax_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    assert_refused(run_cli("run", str(broken)), "not valid Python")
    assert broken.read_text() == "def f(:\n"


def test_directory_without_modules(tmp_path):
    write_project(tmp_path, {"README.md": "nothing here", "tests/test_x.py": "def test_x():\n    pass\n"})
    assert_refused(run_cli("run", str(tmp_path)), "no Python modules found")


def test_docker_not_reachable_says_how_to_go_on(example):
    result = run_cli("run", str(example), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_refused(result, "Docker is not reachable")
    assert "--sandbox local" in result.stderr


@pytest.mark.docker
@pytest.mark.server
def test_a_temporary_server_that_does_not_start_is_one_line(example):
    before = snapshot(example)
    result = run_cli(
        "run", str(example), "--generator", "none", env={"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
    )
    assert_refused(result, "the temporary Prefect server did not start in time")
    assert _without_log(snapshot(example)) == before


def _without_log(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path: data for path, data in files.items() if path != ".covsweep/covsweep.log"}


@pytest.mark.docker
def test_unknown_sandbox_image(example):
    result = run_cli("run", str(example), env={"COVSWEEP_SANDBOX_IMAGE": "covsweep-no-such-image:1"})
    assert_refused(result, "covsweep-no-such-image:1")


@pytest.mark.server
def test_bad_input_found_by_the_flow_is_one_line_too(example):
    # No key in the environment passes the quick check (a saved block may hold one); the flow's plan,
    # which reads the blocks, refuses it after Prefect started, and still only one line comes out.
    result = run_cli(
        "run",
        str(example),
        "--generator",
        "llm",
        "--sandbox",
        "local",  # no Docker needed to get there
        env={"COVSWEEP_LLM_API_KEY": "", "OPENROUTER_API_KEY": ""},
    )
    assert_refused(result, "--generator llm needs an API key")


@pytest.mark.parametrize("command", ["run", "submit"])
def test_help_lists_the_exit_statuses(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for status in ("0  every module processed", "1  ", "2  bad input or configuration", "3  "):
        assert "\n  " + status in shown
    assert "--fail-under" in shown.split("exit status:")[1]


@pytest.mark.docker
@pytest.mark.server
def test_image_build_failure_says_why(example, sandbox_image, tmp_path):
    # A recipe on a base image that does not exist cannot build.
    result = run_cli(
        "run",
        str(example),
        env={"COVSWEEP_BASE_IMAGE": "covsweep-missing-base:0", "COVSWEEP_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert_refused(result, "sandbox image build failed")


@pytest.mark.docker
@pytest.mark.server
def test_a_failed_module_gives_exit_1_and_the_others_go_on(tmp_path, sandbox_image):
    project = write_project(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/good.py": "def double(x):\n    return 2 * x\n",
            "pkg/broken.py": "def f(:\n",
            "tests/test_good.py": "from pkg.good import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
        },
    )
    result = run_cli("run", str(project), "--generator", "none")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((project / ".covsweep" / "report.json").read_text())
    modules = {m["module"]: m for m in report["modules"]}
    assert modules["pkg/broken.py"]["status"] == "failed"
    assert modules["pkg/broken.py"]["error"]["type"] == "target"
    assert modules["pkg/good.py"]["success"] is True
    assert modules["pkg/good.py"]["coverage_before"]["line"] == 100.0
    assert report["totals"]["failed"] == 1


def _table_text(report) -> str:
    from rich.console import Console

    from covsweep.cli import summary_table

    console = Console(width=200, record=True)
    console.print(summary_table(report))
    return console.export_text()


def test_the_summary_table_has_a_mutation_column_when_scores_exist():
    from tasks.core.models import ModuleResult, MutationScore, Report, Totals

    scored = ModuleResult(
        module="pkg/a.py",
        status="improved",
        success=True,
        mutation=MutationScore(mutants=20, killed=12, survived=7, timeout=1, score=65.0),
    )
    unscored = ModuleResult(module="pkg/b.py", status="unchanged", success=True)
    fields = dict(run_id="r", target="/p", generator="llm", coverage_target=80, started_at="", finished_at="")
    with_score = Report(**fields, duration_s=1.0, totals=Totals(mutation_score=65.0), modules=[scored, unscored])
    text = _table_text(with_score)
    assert "mutation %" in text
    assert [line.split("│")[-3].strip() for line in text.splitlines() if "pkg/" in line or "total" in line] == [
        "65.0",
        "",
        "65.0",
    ]
    off = Report(**fields, duration_s=1.0, totals=Totals(), modules=[unscored])
    assert "mutation" not in _table_text(off)


def test_a_long_table_folds_the_skipped_modules_into_one_row():
    from covsweep.cli import FOLD_SKIPPED_ABOVE
    from tasks.core.models import ModuleResult, Report, Totals

    improved = ModuleResult(module="pkg/improved.py", status="improved", success=True)
    skipped = [ModuleResult(module=f"pkg/m{i}.py", status="skipped", success=True) for i in range(FOLD_SKIPPED_ABOVE)]
    fields = dict(run_id="r", target="/p", generator="llm", coverage_target=80, started_at="", finished_at="")

    long = _table_text(Report(**fields, duration_s=1.0, totals=Totals(), modules=[improved, *skipped]))
    short = _table_text(Report(**fields, duration_s=1.0, totals=Totals(), modules=skipped))

    assert "pkg/improved.py" in long and "pkg/m0.py" not in long
    assert f"{FOLD_SKIPPED_ABOVE} more modules (in the report)" in long
    assert all(f"pkg/m{i}.py" in short for i in range(FOLD_SKIPPED_ABOVE)) and "more modules" not in short


@pytest.mark.docker
@pytest.mark.server
def test_run_on_the_example_prints_the_table_and_writes_the_report(example, sandbox_image, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_cli("run", str(example), "--timeout", "120", "--report", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shop/money.py" in result.stdout and "total" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["schema"] == "covsweep.report/1"
    assert report["generator"] == "pynguin"
    assert report["totals"]["line_after"] > report["totals"]["line_before"]
    assert report["totals"]["tests_accepted"] > 0
    total_row = next(line for line in result.stdout.splitlines() if line.lstrip("│ ").startswith("total"))
    assert "mutation %" in result.stdout and f"{report['totals']['mutation_score']:.1f}" in total_row
    # One temporary server: the one spawned before Prefect was imported, on a port the kernel gave (Prefect
    # picks one of 8000-8999 for a server of its own), which Prefect's clients took.
    starts = re.findall(
        r"Starting temporary server on http://127\.0\.0\.1:(\d+)", (tmp_path / "covsweep.log").read_text()
    )
    assert len(starts) == 1 and int(starts[0]) not in range(8000, 9000), starts


# -- CI mode: a git repository made here, with two commits ------------------------------------------

CALC_V1 = "def add(a, b):\n    return a + b\n"
# The change: add's return modified (the project's test runs it), sub added (only its def line runs).
CALC_V2 = "def add(a, b):\n    return b + a\n\n\ndef sub(a, b):\n    if a < b:\n        return 0\n    return a - b\n"
# By hand: the changed executable lines are 2, 5, 6, 7 and 8; lines 2 and 5 run, before as after.
HAND_COUNT = {"lines": 5, "covered_before": 2, "covered_after": 2, "percent_before": 40.0, "percent_after": 40.0}


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory):
    """main: pkg/calc.py and pkg/other.py with a test; branch feature, checked out: one commit changing calc.py."""
    from tests.test_changes import commit_all, git

    repo = write_project(
        tmp_path_factory.mktemp("ci") / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/calc.py": CALC_V1,
            "pkg/other.py": "def other():\n    return 1\n",
            "tests/test_calc.py": "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        },
    )
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "first")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "pkg/calc.py").write_text(CALC_V2)
    commit_all(repo, "second")
    return repo


def test_an_unknown_ref_is_refused_with_one_line(pull_request, monkeypatch, capsys):
    result = run_in_process(monkeypatch, capsys, "run", str(pull_request), "--changed-since", "no-such-branch")
    assert_refused(result, "'no-such-branch' is not a commit, branch or tag")


def ci_run(repo, tmp_path, *gates: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    summary, report = tmp_path / "summary.md", tmp_path / "report.json"
    result = run_cli(
        "run", str(repo), "--generator", "none", "--changed-since", "main", "--report", str(report),
        "--summary-md", str(summary), *gates,
    )  # fmt: skip
    return result, json.loads(report.read_text()), summary.read_text()


@pytest.mark.docker
@pytest.mark.server
def test_changed_since_processes_the_changed_modules_only_and_counts_their_changed_lines(pull_request, tmp_path):
    result, report, summary = ci_run(pull_request, tmp_path, "--fail-under", "37.5", "--fail-under-diff", "40")

    # Both gates met: 3 of the project's 8 statements run, 37.5%; 40% of the change is not below 40%.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    modules = {m["module"]: m for m in report["modules"]}
    assert modules["pkg/calc.py"]["diff"] == HAND_COUNT
    assert report["totals"]["diff"] == HAND_COUNT | {"ref": "main"}
    other = modules["pkg/other.py"]
    assert (other["status"], other["diff"], other["validation"]["issues"]) == (
        "skipped",
        None,
        [{"level": "INFO", "rule": "not-changed", "message": "not changed since main"}],
    )
    # Off a terminal: one plain line per processed module, Prefect's lines in the log file.
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert progress == ["[1/1] pkg/calc.py: skipped, line 50.0% -> 50.0%, 0 tests kept, 0.0s"]
    assert "Task run" not in result.stdout and "Flow run" not in result.stdout
    assert "Finished in state Completed" in (tmp_path / "covsweep.log").read_text()
    assert "| `pkg/calc.py` | skipped | 50.0 → 50.0 |" in summary
    assert "`pkg/other.py`" not in summary and "1 module not changed since `main`: skipped." in summary


@pytest.mark.docker
@pytest.mark.server
def test_gates_not_met_exit_3_with_one_line_each_and_the_summary_still_written(pull_request, tmp_path):
    result, report, summary = ci_run(pull_request, tmp_path, "--fail-under", "60", "--fail-under-diff", "40.1")

    assert result.returncode == 3, result.stdout + result.stderr
    assert report["totals"]["line_after"] == 37.5  # 3 of the project's 8 statements
    assert result.stderr.splitlines() == [
        "covsweep: gate --fail-under: line coverage 37.5% is below 60%",
        "covsweep: gate --fail-under-diff: diff coverage 40% (2 of 5 changed executable lines since main) "
        "is below 40.1%",
    ]
    assert summary.count("> :x: covsweep: gate --fail-under") == 2
