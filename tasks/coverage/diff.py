"""Diff coverage: how many of the executable lines a change added or modified the tests run.

Lines only, as diff-cover counts them: an executable line is one of coverage.py's statements, and it
is covered when it was executed. A change without executable lines is 100% covered (diff-cover: "No
lines with coverage information in this diff"), so a gate on it passes.
"""

from __future__ import annotations

from collections.abc import Iterable

from tasks.core.models import DiffCoverage, FileCoverage, ProjectCoverage, TotalDiff, percent


def module_diff(
    baseline: FileCoverage | None, final: FileCoverage | None, changed_lines: Iterable[int]
) -> DiffCoverage:
    """One module's diff coverage from the run's baseline and final measurements of it."""
    baseline, final = baseline or FileCoverage(), final or FileCoverage()
    # The same file in both runs: a run that did not measure it (it was never imported) has no statements.
    statements = set(baseline.statements) | set(final.statements)
    executable = statements.intersection(changed_lines)
    before = len(executable.intersection(baseline.executed_lines))
    after = len(executable.intersection(final.executed_lines))
    return DiffCoverage(
        lines=len(executable),
        covered_before=before,
        covered_after=after,
        percent_before=percent(before, len(executable)),
        percent_after=percent(after, len(executable)),
    )


def missed_changed_lines(coverage: FileCoverage, changed_lines: Iterable[int]) -> list[int]:
    """The changed executable lines that no test runs yet: what refinement aims at first."""
    return sorted(set(coverage.statements).intersection(changed_lines) - set(coverage.executed_lines))


def total_diff(ref: str, diffs: Iterable[DiffCoverage]) -> TotalDiff:
    """The run's diff coverage: lines summed over the changed modules, not an average of percents."""
    diffs = list(diffs)
    lines = sum(d.lines for d in diffs)
    before = sum(d.covered_before for d in diffs)
    after = sum(d.covered_after for d in diffs)
    return TotalDiff(
        ref=ref,
        lines=lines,
        covered_before=before,
        covered_after=after,
        percent_before=percent(before, lines),
        percent_after=percent(after, lines),
    )


def project_diff(
    ref: str, changed: dict[str, list[int]], baseline: ProjectCoverage, final: ProjectCoverage
) -> tuple[dict[str, DiffCoverage], TotalDiff]:
    """Every changed module's diff coverage (`changed`: Module.path -> changed lines) and the total."""
    per_module = {
        path: module_diff(baseline.files.get(path), final.files.get(path), lines) for path, lines in changed.items()
    }
    return per_module, total_diff(ref, per_module.values())
