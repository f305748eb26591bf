"""`--summary-md`: the run in a few lines and one table, for a pull-request comment or a CI job summary."""

from __future__ import annotations

from collections.abc import Sequence

from tasks.core.models import DiffCoverage, ModuleResult, Report
from tasks.project.changes import NOT_CHANGED

MAX_ROWS = 40  # a comment stays readable; the report has every module


def _unchanged(module: ModuleResult) -> bool:
    return any(issue.rule == NOT_CHANGED for issue in module.validation.issues)


def _arrow(before: float, after: float) -> str:
    return f"{before:.1f} → {after:.1f}"


def _diff_cell(diff: DiffCoverage | None) -> str:
    if diff is None:
        return ""
    if not diff.lines:
        return "no executable lines"
    return f"{diff.covered_before}/{diff.lines} → {diff.covered_after}/{diff.lines} ({diff.percent_after:g}%)"


def _headline(report: Report) -> str:
    t = report.totals
    if t.diff is not None:
        return f"## covsweep: diff coverage {t.diff.percent_before:g}% → {t.diff.percent_after:g}% since `{t.diff.ref}`"
    return f"## covsweep: line coverage {t.line_before:.1f}% → {t.line_after:.1f}%"


def _table(report: Report, rows: list[ModuleResult]) -> list[str]:
    t = report.totals
    with_diff = t.diff is not None
    with_mutation = any(m.mutation for m in rows)
    columns = ["module", "status", "line %", "branch %"] + ["changed lines covered"] * with_diff + ["tests"]
    columns += ["mutation"] * with_mutation
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for m in rows[:MAX_ROWS]:
        status = m.status + (f" ({m.error.type})" if m.error else "")
        cells = [f"`{m.module}`", status, _arrow(m.coverage_before.line, m.coverage.line)]
        cells += [_arrow(m.coverage_before.branch, m.coverage.branch)] + [_diff_cell(m.diff)] * with_diff
        cells += [str(m.tests.accepted)] + [f"{m.mutation.score:g}%" if m.mutation else ""] * with_mutation
        lines.append("| " + " | ".join(cells) + " |")
    total = ["**total**", f"{t.succeeded}/{t.modules} ok", _arrow(t.line_before, t.line_after)]
    total += [_arrow(t.branch_before, t.branch_after)] + [_diff_cell(t.diff)] * with_diff + [str(t.tests_accepted)]
    total += [f"{t.mutation_score:g}%" if t.mutation_score is not None else ""] * with_mutation
    lines.append("| " + " | ".join(total) + " |")
    if len(rows) > MAX_ROWS:
        lines.append(f"\n{len(rows) - MAX_ROWS} more modules in the report.")
    return lines


def _where(report: Report, delivery_hint: str | None) -> str:
    delivery = report.delivery
    files = [f for m in report.modules for f in m.generated_files]
    if delivery is not None and delivery.kind == "patch" and delivery.patch:
        at = f" at commit `{report.source.commit[:12]}`" if report.source else ""
        where = f"Generated tests: the patch `{delivery.patch}` (`git apply` it{at})."
    elif delivery is not None and delivery.kind == "branch" and delivery.branch:
        commit = f" (commit `{delivery.commit[:12]}`)" if delivery.commit else ""
        where = f"Generated tests: branch `{delivery.branch}`{commit}."
    elif files:
        shown = ", ".join(f"`{f}`" for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        where = f"Generated tests written to {shown}."
    else:
        where = "No generated test was kept."
    return f"{where} {delivery_hint}" if delivery_hint else where


def _one_line(text: str) -> str:
    return " ".join(text.replace("`", "'").split())[:200]


def summary_markdown(report: Report, *, delivery_hint: str | None = None, failed_gates: Sequence[str] = ()) -> str:
    """Per module before -> after, diff coverage, tests kept, mutation score, cost, time and where the
    tests are. `delivery_hint` is one more sentence on where to find them (a CI artifact's name);
    `failed_gates` are the lines of the gates not met."""
    rows = [m for m in report.modules if not _unchanged(m)]
    t = report.totals
    lines = [_headline(report), ""]
    lines += [f"> :x: {_one_line(f)}" for f in failed_gates] + [""] * bool(failed_gates)
    lines += _table(report, rows) + [""]
    skipped = len(report.modules) - len(rows)
    if skipped:
        lines += [
            f"{skipped} module{'s' * (skipped > 1)} not changed since `{t.diff.ref if t.diff else 'the ref'}`: skipped.",
            "",
        ]
    for m in rows:
        if m.error:
            lines.append(f"- `{m.module}` failed: {m.error.type}: {_one_line(m.error.message)}")
    lines += [""] * any(m.error for m in rows)
    lines.append(_where(report, delivery_hint))
    lines.append("")
    lines.append(
        f"Generator `{report.generator}`, {report.duration_s:.0f} s, "
        f"${t.cost_usd:.4f} ({t.tokens_used:,} LLM tokens). Full figures: the run's JSON report."
    )
    return "\n".join(lines) + "\n"
