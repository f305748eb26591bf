"""The CI gates: which one failed, its figure and its threshold, in one line each."""

from __future__ import annotations

import pytest

from tasks.core.errors import InputError
from tasks.core.models import TotalDiff, Totals
from tasks.core.options import RunOptions
from tasks.reporting.gates import check_gate_options, gate_failures


def totals(line_after: float, covered: int | None = None, lines: int = 8) -> Totals:
    diff = None
    if covered is not None:
        after = round(100 * covered / lines, 2) if lines else 100.0
        diff = TotalDiff(ref="origin/main", lines=lines, covered_before=0, covered_after=covered, percent_after=after)
    return Totals(line_after=line_after, diff=diff)


def test_both_gates_not_met_give_one_line_each():
    failures = gate_failures(totals(71.25, covered=5), fail_under=80, fail_under_diff=80)

    assert failures == [
        "covsweep: gate --fail-under: line coverage 71.25% is below 80%",
        "covsweep: gate --fail-under-diff: diff coverage 62.5% (5 of 8 changed executable lines since origin/main) "
        "is below 80%",
    ]


def test_gates_met_exactly_pass():
    assert gate_failures(totals(80.0, covered=4, lines=5), fail_under=80, fail_under_diff=80) == []


def test_no_gate_given_is_no_failure():
    assert gate_failures(totals(0.0, covered=0), fail_under=None, fail_under_diff=None) == []


def test_a_diff_gate_of_100_fails_short_of_every_line():
    # 1999 of 2000 lines rounds to 99.95%; the gate compares the counts.
    failures = gate_failures(totals(100.0, covered=1999, lines=2000), fail_under=None, fail_under_diff=100)

    assert failures == [
        "covsweep: gate --fail-under-diff: diff coverage 99.95% (1999 of 2000 changed executable lines since "
        "origin/main) is below 100%"
    ]


def test_a_change_without_executable_lines_passes_the_diff_gate():
    assert gate_failures(totals(50.0, covered=0, lines=0), fail_under=None, fail_under_diff=100) == []


def test_a_diff_gate_without_changed_since_is_bad_input():
    with pytest.raises(InputError, match="--fail-under-diff needs --changed-since"):
        check_gate_options(RunOptions(target=".", fail_under_diff=80))
    check_gate_options(RunOptions(target=".", fail_under_diff=80, changed_since="main"))
    check_gate_options(RunOptions(target=".", fail_under=80))
