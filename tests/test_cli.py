"""`covsweep run` as a user types it: bad input is one line and exit 2, nothing changed;
a real run prints its table, writes its report and exits 0, or 1 when a module failed."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli, snapshot, write_project


def assert_refused(result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("covsweep: error: ")
    assert fragment in lines[0]


@pytest.mark.parametrize("args, fragment", [
    (["--reruns", "0"], "--reruns"),
    (["--reruns", "many"], "--reruns"),
    (["--coverage-target", "150"], "--coverage-target"),
    (["--concurrency", "0"], "--concurrency"),
    (["--timeout", "-1"], "--timeout"),
    (["--generator", "gpt"], "--generator"),
    (["--sandbox", "vm"], "--sandbox"),
    (["--budget-usd", "-3"], "--budget-usd"),
    (["--no-such-option"], "unrecognized arguments"),
    (["--modules", "nothing/*.py"], "no Python modules found"),
])
def test_bad_options_are_refused_with_one_line(example, args, fragment):
    before = snapshot(example)
    assert_refused(run_cli("run", str(example), *args), fragment)
    assert snapshot(example) == before


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


def test_unknown_sandbox_image(example):
    result = run_cli("run", str(example), env={"COVSWEEP_SANDBOX_IMAGE": "covsweep-no-such-image:1"})
    assert_refused(result, "covsweep-no-such-image:1")


@pytest.mark.docker
def test_image_build_failure_says_why(example, sandbox_image, tmp_path):
    # A recipe on a base image that does not exist cannot build.
    result = run_cli("run", str(example), env={"COVSWEEP_BASE_IMAGE": "covsweep-missing-base:0",
                                               "COVSWEEP_CACHE_DIR": str(tmp_path / "cache")})
    assert_refused(result, "sandbox image build failed")


@pytest.mark.docker
def test_a_failed_module_gives_exit_1_and_the_others_go_on(tmp_path, sandbox_image):
    project = write_project(tmp_path / "proj", {
        "pkg/__init__.py": "",
        "pkg/good.py": "def double(x):\n    return 2 * x\n",
        "pkg/broken.py": "def f(:\n",
        "tests/test_good.py": "from pkg.good import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
    })
    result = run_cli("run", str(project), "--generator", "none")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((project / ".covsweep" / "report.json").read_text())
    modules = {m["module"]: m for m in report["modules"]}
    assert modules["pkg/broken.py"]["status"] == "failed"
    assert modules["pkg/broken.py"]["error"]["type"] == "target"
    assert modules["pkg/good.py"]["success"] is True
    assert modules["pkg/good.py"]["coverage_before"]["line"] == 100.0
    assert report["totals"]["failed"] == 1


@pytest.mark.docker
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
