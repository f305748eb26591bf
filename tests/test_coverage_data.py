"""coverage_data: covsweep's coverage.py settings, measured by a real `coverage run -m pytest`,
read back per module and per test."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.models import FileCoverage
from tasks.coverage.data import contexts_coverage, read_json_report, write_rcfile
from tasks.project.discover import discover
from tasks.sandbox.pytest_support import pytest_args, sandbox_env
from tests.helpers import snapshot, write_project

OPS = """\
def sign(x):
    if x < 0:
        return -1
    return 1


def clamp(x, hi):
    if x > hi:
        return hi
    return x


class Box:
    def __init__(self, v):
        self.v = v

    def get(self):
        return self.v
"""
# statements 1 2 3 4 7 8 9 10 13 14 15 17 18; the tests below miss 9 (x > hi) and 18 (Box.get)
STATEMENTS = [1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 17, 18]
EXECUTED = [1, 2, 3, 4, 7, 8, 10, 13, 14, 15, 17]
BRANCHES = [(2, 3), (2, 4), (8, 9), (8, 10)]
EXECUTED_BRANCHES = [(2, 3), (2, 4), (8, 10)]

TESTS = """\
from tinycalc.ops import Box, clamp, sign


def test_negative():
    assert sign(-5) == -1


def test_positive():
    assert sign(5) == 1


def test_clamp_low():
    assert clamp(1, 5) == 1


class TestBox:
    def test_box(self):
        assert Box(3).v == 3
"""


def make_project(root: Path) -> Path:
    return write_project(
        root,
        {
            "src/tinycalc/__init__.py": 'VERSION = "1"\n',
            "src/tinycalc/ops.py": OPS,
            "tests/test_ops.py": TESTS,
            "tests/conftest.py": "import pytest\n",
        },
    )


def measure(target: Path, workspace: Path, *, per_test: bool):
    """What measure/filtering run in the sandbox: coverage run -m pytest, then coverage json."""
    project = discover(target)
    workspace.mkdir(parents=True, exist_ok=True)
    rcfile = write_rcfile(workspace, project, per_test=per_test)
    tests = [p.relative_to(project.target) for p in project.test_paths]  # pytest reads [..] in a path as an id
    env = {**os.environ, **sandbox_env(project)}
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}", *shlex.split(pytest_args(tests))],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # no assertion on its exit status: with nothing measured it fails, and the tests say what is missing
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--rcfile={rcfile}", "-q", "-o", str(workspace / "coverage.json")],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return project


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("measured")
    target = make_project(root / "proj")
    before = snapshot(target)
    project = measure(target, root / "workspace", per_test=True)
    return project, root / "workspace", before


def test_the_run_writes_nothing_into_the_target(measured):
    project, workspace, before = measured
    assert snapshot(project.target) == before
    assert (workspace / ".coverage").exists()
    assert (workspace / "coverage.json").exists()


def test_json_report_is_split_into_the_projects_modules(measured):
    project, workspace, _ = measured
    coverage = read_json_report(workspace / "coverage.json", project, project.target)

    # only the project's modules: tests and conftest files are not measured
    assert sorted(coverage.files) == ["tinycalc/__init__.py", "tinycalc/ops.py"]
    raw = json.loads((workspace / "coverage.json").read_text())
    assert not [name for name in raw["files"] if "tests" in Path(name).parts]
    ops = coverage.files["tinycalc/ops.py"]
    assert ops.statements == STATEMENTS
    assert sorted(ops.executed_lines) == EXECUTED
    assert ops.branches == BRANCHES
    assert sorted(ops.executed_branches) == EXECUTED_BRANCHES
    assert ops.functions == {"sign": [2, 3, 4], "clamp": [8, 9, 10], "Box.__init__": [15], "Box.get": [18]}


def test_percentages_match_hand_computed_values(measured):
    project, workspace, _ = measured
    coverage = read_json_report(workspace / "coverage.json", project, project.target)

    ops = coverage.files["tinycalc/ops.py"].percentages()
    assert ops.line == round(100 * 11 / 13, 2) == 84.62
    assert ops.branch == 75.0  # 3 of 4 branches
    assert ops.function == 75.0  # sign, clamp, Box.__init__ of 4; Box.get never ran
    init = coverage.files["tinycalc/__init__.py"].percentages()
    assert (init.line, init.branch, init.function) == (100.0, 100.0, 100.0)
    # totals over both modules: 12 of 14 statements, 3 of 4 branches
    assert coverage.totals.line == round(100 * 12 / 14, 2)
    assert coverage.totals.branch == 75.0


def test_percentages_of_hand_made_file_coverage():
    coverage = FileCoverage(
        statements=[1, 2, 3, 4, 5, 6, 7, 8],
        executed_lines=[1, 2, 3, 5, 99],
        branches=[(2, 3), (2, 4), (5, 6), (5, 7)],
        executed_branches=[(2, 3), (9, 10)],
        functions={"f": [2, 3, 4], "g": [6], "C.m": [7, 8]},
    ).percentages()
    # lines outside `statements` (99) and branches outside `branches` (9->10) do not count
    assert (coverage.line, coverage.branch, coverage.function) == (50.0, 25.0, round(100 / 3, 2))
    # nothing to measure is fully covered
    assert FileCoverage().percentages().model_dump() == {"line": 100.0, "branch": 100.0, "function": 100.0}


def test_contexts_give_each_test_its_own_lines_and_arcs(measured):
    project, workspace, _ = measured
    ops = next(m for m in project.modules if m.path == "tinycalc/ops.py")
    per_test = contexts_coverage(workspace / ".coverage", ops.file)

    assert sorted(per_test) == [
        "test_ops.TestBox.test_box",
        "test_ops.test_clamp_low",
        "test_ops.test_negative",
        "test_ops.test_positive",
    ]
    negative_lines, negative_arcs = per_test["test_ops.test_negative"]
    positive_lines, positive_arcs = per_test["test_ops.test_positive"]
    assert negative_lines == {2, 3}
    assert positive_lines == {2, 4}
    assert (2, 3) in negative_arcs and (2, 4) not in negative_arcs
    assert (2, 4) in positive_arcs and (2, 3) not in positive_arcs
    assert per_test["test_ops.test_clamp_low"][0] == {8, 10}
    assert per_test["test_ops.TestBox.test_box"][0] == {15}


def test_contexts_of_a_file_that_was_not_measured_are_empty(measured, tmp_path):
    _, workspace, _ = measured
    assert contexts_coverage(workspace / ".coverage", tmp_path / "elsewhere.py") == {}


def test_without_per_test_contexts_there_are_none(tmp_path):
    target = make_project(tmp_path / "proj")
    project = measure(target, tmp_path / "workspace", per_test=False)
    ops = next(m for m in project.modules if m.path == "tinycalc/ops.py")
    assert contexts_coverage(tmp_path / "workspace" / ".coverage", ops.file) == {}
    coverage = read_json_report(tmp_path / "workspace" / "coverage.json", project, project.target)
    assert sorted(coverage.files["tinycalc/ops.py"].executed_lines) == EXECUTED


def test_a_missing_report_is_no_coverage(tmp_path):
    target = make_project(tmp_path / "proj")
    coverage = read_json_report(tmp_path / "nothing.json", discover(target), target)
    assert coverage.files == {}


@pytest.mark.parametrize("parent", ["test", "tests"])
def test_a_project_below_a_folder_named_test_is_still_measured(tmp_path, parent):
    """A checkout at ~/test/proj or /srv/tests/proj is an ordinary project: covsweep's omit
    patterns for test files must not drop every module of it."""
    target = make_project(tmp_path / parent / "proj")
    project = measure(target, tmp_path / "workspace", per_test=False)
    coverage = read_json_report(tmp_path / "workspace" / "coverage.json", project, project.target)
    assert sorted(coverage.files) == ["tinycalc/__init__.py", "tinycalc/ops.py"]
    assert sorted(coverage.files["tinycalc/ops.py"].executed_lines) == EXECUTED


@pytest.mark.parametrize("per_test", [True, False])
@pytest.mark.parametrize("folder", ["proj", "proj[1]"])  # a bracket would be a pattern's character class
def test_a_module_no_test_imports_is_in_the_whole_projects_figures_and_not_in_per_test_data(tmp_path, per_test, folder):
    from coverage import CoverageData

    test = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    files = {"calc.py": "def add(a, b):\n    return a + b\n", "never.py": "X = 1\n", "tests/test_calc.py": test}
    project = measure(write_project(tmp_path / folder, files), tmp_path / "workspace", per_test=per_test)
    data = CoverageData(basename=str(tmp_path / "workspace" / ".coverage"))
    data.read()
    measured = sorted(Path(f).name for f in data.measured_files())
    coverage = read_json_report(tmp_path / "workspace" / "coverage.json", project, project.target)

    if per_test:  # read per test, by file: what ran is all there is to read
        assert measured == ["calc.py"]
    else:  # the report's: a module nothing imported counts, at 0
        assert measured == ["calc.py", "never.py"]
        assert coverage.files["never.py"].percentages().line == 0.0
        assert coverage.totals.line == round(100 * 2 / 3, 2)
