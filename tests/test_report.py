"""The run's totals and the per-module table and summary the Prefect artifacts show."""

from __future__ import annotations

from tasks.core.models import FileCoverage, ModuleResult, MutationScore, Report
from tasks.reporting.report import markdown_summary, table_rows, totals


def _module(path: str, mutation: MutationScore | None) -> ModuleResult:
    return ModuleResult(module=path, status="improved", success=True, mutation=mutation)


SCORED = [
    _module("pkg/a.py", MutationScore(mutants=30, killed=20, survived=8, timeout=2, score=73.33)),
    _module("pkg/b.py", MutationScore(mutants=10, killed=1, survived=9, timeout=0, score=10.0)),
    _module("pkg/c.py", None),  # no test accepted: no score
]


def _report(modules: list[ModuleResult]) -> Report:
    return Report(
        run_id="r",
        target="/p",
        generator="llm",
        coverage_target=80,
        started_at="",
        finished_at="",
        duration_s=1.0,
        totals=totals(modules, [FileCoverage()] * len(modules), [FileCoverage()] * len(modules)),
        modules=modules,
    )


def test_the_total_mutation_score_pools_every_modules_mutants():
    # (20 + 2 + 1) detected of 30 + 10 mutants: not the mean of 73.33 and 10.
    assert totals(SCORED, [], []).mutation_score == 57.5


def test_without_any_score_the_total_is_null():
    assert totals([_module("pkg/c.py", None)], [], []).mutation_score is None


def test_the_modules_table_and_the_summary_show_the_scores():
    report = _report(SCORED)
    assert [row["mutation"] for row in table_rows(report)] == ["73.3", "10.0", ""]
    assert "Mutation score **57.5%**: the accepted tests detect 23 of 40 mutants of 2 modules." in markdown_summary(
        report
    )
    assert "Mutation score" not in markdown_summary(_report([_module("pkg/c.py", None)]))
