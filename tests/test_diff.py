"""Diff coverage from real coverage.py measurements of a small change, against a hand count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tasks.core.models import DiffCoverage, FileCoverage, ProjectCoverage
from tasks.coverage.data import read_json_report, write_rcfile
from tasks.coverage.diff import missed_changed_lines, module_diff, project_diff, total_diff
from tasks.project.changes import changed_since
from tasks.project.discover import discover
from tests.helpers import write_project
from tests.test_changes import commit_all, git

CALC_V1 = """\
def add(a, b):
    return a + b


def sign(x):
    if x < 0:
        return -1
    return 1
"""
# Lines 8-9 inserted, 11-15 appended. Executable among them: 8, 9, 13 (the def runs at import), 15;
# the docstring (14) and the blank lines are not statements.
CALC_V2 = """\
def add(a, b):
    return a + b


def sign(x):
    if x < 0:
        return -1
    if x == 0:
        return 0
    return 1


def double(x):
    \"\"\"Twice x.\"\"\"
    return 2 * x
"""
NEW_TESTS = """\
from pkg.calc import double, sign


def test_sign_positive():
    assert sign(5) == 1


def test_double():
    assert double(2) == 4
"""


def measure(project, workspace: Path) -> ProjectCoverage:
    """The project's tests under coverage.py, as covsweep's baseline and final runs measure them."""
    workspace.mkdir(exist_ok=True)
    rcfile = write_rcfile(workspace, project, per_test=False)
    run = [
        sys.executable,
        "-m",
        "coverage",
        "run",
        f"--rcfile={rcfile}",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    subprocess.run([*run, "tests"], cwd=project.target, check=True, capture_output=True)
    report = workspace / "coverage.json"
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--rcfile={rcfile}", "-q", "-o", str(report)],
        cwd=project.target,
        check=True,
    )
    return read_json_report(report, project, project.target)


def test_diff_figures_equal_a_hand_count_on_a_small_change(tmp_path):
    root = write_project(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/calc.py": CALC_V1,
            "tests/test_calc.py": "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        },
    )
    git(root, "init", "-q")
    commit_all(root, "v1")
    (root / "pkg/calc.py").write_text(CALC_V2)
    project = discover(root)
    changed = changed_since(root, "HEAD").modules(project.modules)
    assert changed == {"pkg/calc.py": [8, 9, 11, 12, 13, 14, 15]}

    baseline = measure(project, tmp_path / "before")
    (root / "tests/test_new.py").write_text(NEW_TESTS)
    final = measure(project, tmp_path / "after")
    per_module, total = project_diff("HEAD", changed, baseline, final)

    # Before: only line 13 (import). After: 8 (sign(5) reaches it), 13, 15; line 9 (x == 0) never runs.
    assert per_module == {
        "pkg/calc.py": DiffCoverage(lines=4, covered_before=1, covered_after=3, percent_before=25.0, percent_after=75.0)
    }
    assert total.model_dump() == {
        "lines": 4,
        "covered_before": 1,
        "covered_after": 3,
        "percent_before": 25.0,
        "percent_after": 75.0,
        "ref": "HEAD",
    }


def test_a_change_without_executable_lines_is_fully_covered():
    coverage = FileCoverage(statements=[1, 2, 5], executed_lines=[1])

    diff = module_diff(coverage, coverage, [3, 4])

    assert diff == DiffCoverage(lines=0, covered_before=0, covered_after=0, percent_before=100.0, percent_after=100.0)


def test_a_module_the_baseline_never_measured_counts_the_final_statements():
    final = FileCoverage(statements=[1, 2, 3, 4], executed_lines=[1, 2, 4])

    diff = module_diff(None, final, [2, 3, 4, 9])

    assert diff == DiffCoverage(lines=3, covered_before=0, covered_after=2, percent_before=0.0, percent_after=66.67)


def test_the_total_sums_lines_rather_than_averaging_percents():
    small = DiffCoverage(lines=1, covered_before=0, covered_after=1, percent_before=0.0, percent_after=100.0)
    large = DiffCoverage(lines=9, covered_before=3, covered_after=3, percent_before=33.33, percent_after=33.33)

    total = total_diff("main", [small, large])

    assert (total.lines, total.covered_before, total.covered_after) == (10, 3, 4)
    assert (total.percent_before, total.percent_after) == (30.0, 40.0)
    assert total_diff("main", []).percent_after == 100.0


def test_the_missed_changed_lines_are_the_changed_statements_not_run():
    coverage = FileCoverage(statements=[1, 2, 5, 6, 9], executed_lines=[1, 5])

    assert missed_changed_lines(coverage, [2, 3, 5, 6, 7]) == [2, 6]
