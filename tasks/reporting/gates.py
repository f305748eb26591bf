"""The CI gates: `--fail-under` on total line coverage after, `--fail-under-diff` on diff coverage after.

A gate not met is exit status 3 and one line on stderr. A change without executable lines passes the
diff gate, as diff-cover does (its diff coverage is 100%).
"""

from __future__ import annotations

from tasks.core.errors import InputError
from tasks.core.models import Totals
from tasks.core.options import RunOptions


def check_gate_options(options: RunOptions) -> None:
    """Preflight: a diff gate needs a diff to measure. (0-100 is RunOptions' own check.)"""
    if options.fail_under_diff is not None and not options.changed_since:
        raise InputError("--fail-under-diff needs --changed-since REF: there is no diff coverage without a diff")


def _shown(value: float) -> str:
    return f"{value:g}"


def gate_failures(totals: Totals, fail_under: float | None, fail_under_diff: float | None) -> list[str]:
    """One line per gate not met: which gate, the figure and the threshold."""
    failures = []
    if fail_under is not None and totals.line_after < fail_under:
        failures.append(
            f"covsweep: gate --fail-under: line coverage {_shown(totals.line_after)}% is below {_shown(fail_under)}%"
        )
    if fail_under_diff is not None:
        diff = totals.diff
        if diff is None:
            raise ValueError("--fail-under-diff without diff coverage: check_gate_options lets no such run start")
        # From the counts, not the rounded percent: 99.999% must not pass a gate of 100.
        if diff.covered_after * 100 < fail_under_diff * diff.lines:
            failures.append(
                f"covsweep: gate --fail-under-diff: diff coverage {_shown(diff.percent_after)}% "
                f"({diff.covered_after} of {diff.lines} changed executable lines since {diff.ref}) is below {_shown(fail_under_diff)}%"
            )
    return failures
