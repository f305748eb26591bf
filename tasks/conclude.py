"""Turn the module results and the final measurement into the report."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from tasks.measure import Measurement
from tasks.models import FileCoverage, Issue, ModuleResult, Report, Validation
from tasks.plan import Plan
from tasks.report import now, totals
from tasks.validate import check_file
from tasks.write import Written


def _review(result: ModuleResult, written: Written, final: Measurement, plan: Plan) -> None:
    if written.refused:
        result.validation.issues.append(Issue(level="ERROR", rule="own-files-only", message=written.refused))
        result.status, result.success = "needs_review", False
        return
    failing = final.failed_tests.get(str(written.path), [])
    checked = check_file(written.path, failing)
    result.validation = Validation(score=checked.score, issues=result.validation.issues + checked.issues)
    if failing:
        # A generated test that fails in the project's own suite would break the user's CI.
        written.path.unlink(missing_ok=True)
        result.status, result.success = "needs_review", False
        return
    result.generated_files = [str(written.path.relative_to(plan.project.target))
                              if written.path.is_relative_to(plan.project.target) else str(written.path)]


@task(name="conclude")
def conclude(plan: Plan, baseline: Measurement, final: Measurement, results: list[ModuleResult],
             written: list[Written], started_at: datetime, duration_s: float) -> Report:
    by_module = {w.module: w for w in written}
    for result in results:
        if result.module in by_module:
            _review(result, by_module[result.module], final, plan)
        if result.success and result.module in final.coverage.files:
            result.coverage = final.coverage.files[result.module].percentages()
            if result.module in by_module and result.status != "skipped":
                result.status = result.coverage_status(plan.options.coverage_target)
    paths = [m.path for m in plan.project.modules]
    return Report(
        run_id=plan.run_id, target=str(plan.project.target), generator=plan.generator,
        coverage_target=plan.options.coverage_target, started_at=started_at.isoformat(),
        finished_at=now().isoformat(), duration_s=round(duration_s, 3),
        totals=totals(results, [baseline.coverage.files.get(p, FileCoverage()) for p in paths],
                      [final.coverage.files.get(p, FileCoverage()) for p in paths]),
        modules=results,
    )
