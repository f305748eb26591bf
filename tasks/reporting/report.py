"""The run's report: totals, the JSON file, and the Prefect artifacts a person reads in the UI."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.core.models import FileCoverage, ModuleResult, MutationScore, Report, Totals, pooled_mutation_score


def _aggregate(files: list[FileCoverage]) -> tuple[float, float]:
    statements = sum(len(f.statements) for f in files)
    executed = sum(len(set(f.executed_lines) & set(f.statements)) for f in files)
    branches = sum(len(f.branches) for f in files)
    taken = sum(len(set(f.executed_branches) & set(f.branches)) for f in files)
    return (
        round(100.0 * executed / statements, 2) if statements else 100.0,
        round(100.0 * taken / branches, 2) if branches else 100.0,
    )


def totals(results: list[ModuleResult], before: list[FileCoverage], after: list[FileCoverage]) -> Totals:
    line_before, branch_before = _aggregate(before)
    line_after, branch_after = _aggregate(after)
    return Totals(
        modules=len(results),
        succeeded=sum(r.success for r in results),
        failed=sum(not r.success for r in results),
        tests_accepted=sum(r.tests.accepted for r in results),
        line_before=line_before,
        line_after=line_after,
        branch_before=branch_before,
        branch_after=branch_after,
        tokens_used=sum(r.metadata.tokens_used for r in results),
        cost_usd=round(sum(r.metadata.cost for r in results), 6),
        mutation_score=pooled_mutation_score([r.mutation for r in results]),
    )


def save_report(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, path)


def markdown_summary(report: Report) -> str:
    t = report.totals
    lines = [
        f"# covsweep: {report.target}",
        "",
        f"Generator **{report.generator}**, {t.modules} modules: {t.succeeded} processed, {t.failed} failed, "
        f"{t.tests_accepted} tests accepted in {report.duration_s:.1f}s.",
        "",
        f"Line coverage **{t.line_before:.1f}% → {t.line_after:.1f}%**, "
        f"branch coverage {t.branch_before:.1f}% → {t.branch_after:.1f}%.",
        "",
    ] + _mutation_line(report)
    failed = [m for m in report.modules if m.error]
    if failed:
        lines += ["## Failed modules", ""] + [f"- `{m.module}`: {m.error.type}: {m.error.message}" for m in failed]
    return "\n".join(lines)


def _mutation_line(report: Report) -> list[str]:
    scored = [m.mutation for m in report.modules if m.mutation is not None]
    if report.totals.mutation_score is None:
        return []
    killed, mutants = sum(s.killed + s.timeout for s in scored), sum(s.mutants for s in scored)
    return [
        f"Mutation score **{report.totals.mutation_score:.1f}%**: the accepted tests detect {killed} of "
        f"{mutants} mutants of {len(scored)} modules.",
        "",
    ]


def mutation_cell(score: MutationScore | None) -> str:
    return f"{score.score:.1f}" if score is not None else ""


def table_rows(report: Report) -> list[dict]:
    return [
        {
            "module": m.module,
            "status": m.status,
            "line": f"{m.coverage_before.line:.1f} → {m.coverage.line:.1f}",
            "branch": f"{m.coverage_before.branch:.1f} → {m.coverage.branch:.1f}",
            "function": f"{m.coverage_before.function:.1f} → {m.coverage.function:.1f}",
            "tests": m.tests.accepted,
            "mutation": mutation_cell(m.mutation),
            "time_s": round(m.execution_time, 1),
            "error": f"{m.error.type}: {m.error.message}" if m.error else "",
        }
        for m in report.modules
    ]
