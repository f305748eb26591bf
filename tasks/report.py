"""The run's report: totals, the JSON file, and the Prefect artifacts a person reads in the UI."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact

from covsweep.objects import MODULES_KEY, PROGRESS_KEY
from tasks.models import FileCoverage, ModuleResult, Report, Totals


def _aggregate(files: list[FileCoverage]) -> tuple[float, float]:
    statements = sum(len(f.statements) for f in files)
    executed = sum(len(set(f.executed_lines) & set(f.statements)) for f in files)
    branches = sum(len(f.branches) for f in files)
    taken = sum(len(set(f.executed_branches) & set(f.branches)) for f in files)
    return (round(100.0 * executed / statements, 2) if statements else 100.0,
            round(100.0 * taken / branches, 2) if branches else 100.0)


def totals(results: list[ModuleResult], before: list[FileCoverage], after: list[FileCoverage]) -> Totals:
    line_before, branch_before = _aggregate(before)
    line_after, branch_after = _aggregate(after)
    return Totals(
        modules=len(results), succeeded=sum(r.success for r in results),
        failed=sum(not r.success for r in results), tests_accepted=sum(r.tests.accepted for r in results),
        line_before=line_before, line_after=line_after, branch_before=branch_before, branch_after=branch_after,
        tokens_used=sum(r.metadata.tokens_used for r in results),
        cost_usd=round(sum(r.metadata.cost for r in results), 6),
    )


def now() -> datetime:
    return datetime.now(timezone.utc)


def save_report(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, path)


def _markdown(report: Report) -> str:
    t = report.totals
    lines = [
        f"# covsweep: {report.target}", "",
        f"Generator **{report.generator}**, {t.modules} modules: {t.succeeded} processed, {t.failed} failed, "
        f"{t.tests_accepted} tests accepted in {report.duration_s:.1f}s.", "",
        f"Line coverage **{t.line_before:.1f}% → {t.line_after:.1f}%**, "
        f"branch coverage {t.branch_before:.1f}% → {t.branch_after:.1f}%.", "",
    ]
    failed = [m for m in report.modules if m.error]
    if failed:
        lines += ["## Failed modules", ""] + [f"- `{m.module}`: {m.error.type}: {m.error.message}" for m in failed]
    return "\n".join(lines)


def table_rows(report: Report) -> list[dict]:
    return [{
        "module": m.module, "status": m.status,
        "line": f"{m.coverage_before.line:.1f} → {m.coverage.line:.1f}",
        "branch": f"{m.coverage_before.branch:.1f} → {m.coverage.branch:.1f}",
        "function": f"{m.coverage_before.function:.1f} → {m.coverage.function:.1f}",
        "tests": m.tests.accepted, "time_s": round(m.execution_time, 1),
        "error": f"{m.error.type}: {m.error.message}" if m.error else "",
    } for m in report.modules]


@task(name="publish-report")
def publish_report(report: Report, path: Path) -> Report:
    """Write the JSON report and the summary and modules artifacts; the flow persists the report."""
    save_report(report, path)
    create_markdown_artifact(key="covsweep-summary", markdown=_markdown(report), description="covsweep run summary")
    create_table_artifact(key=MODULES_KEY, table=table_rows(report), description="per-module coverage")
    return report


class Progress:
    """The run's progress artifact, updated as modules finish."""

    def __init__(self, total: int):
        self.total, self.done, self.updated_s = total, 0, 0.0
        self.artifact: UUID = create_progress_artifact(progress=0.0, key=PROGRESS_KEY,
                                                       description=f"modules done of {total}")

    def advance(self, modules: int = 1) -> None:
        self.done += modules
        now_s = time.monotonic()
        # One API call a second at most: hundreds of quick modules must not wait on the server.
        if self.done == self.total or now_s - self.updated_s >= 1.0:
            self.updated_s = now_s
            update_progress_artifact(self.artifact, progress=100.0 * self.done / max(self.total, 1))
