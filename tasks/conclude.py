"""The conclusion of a run, as a task: module results and the final measurement become the report."""

from __future__ import annotations

import itertools
from datetime import datetime

from prefect import task

from tasks.core.models import ModuleResult, Report
from tasks.core.plan import Plan
from tasks.coverage.measurement import Measurement, failing_among, measure
from tasks.delivery.write import Written
from tasks.reporting.conclusion import conclude_run


@task(name="conclude")
def conclude(
    plan: Plan,
    baseline: Measurement,
    final: Measurement,
    results: list[ModuleResult],
    written: list[Written],
    started_at: datetime,
    duration_s: float,
) -> Report:
    """Drop the generated tests that fail in the project's suite or make its own tests fail, measure
    what is left, report it."""
    runs = itertools.count(1)

    def measure_again(attempt: int) -> Measurement:
        # The same whole-suite run as the flow's final measurement, in a workspace of its own.
        workspace = plan.workspace / f"final-{attempt}"
        return measure(
            plan.sandbox, plan.project, plan.test_paths(), workspace, plan.measurement_timeout(), plan.framework
        )

    def run_with(node_ids: list[str], watched: list[str]) -> list[str]:
        # Some of the suite's tests, without coverage: one step of a bisection.
        workspace = plan.workspace / f"bisect-{next(runs)}"
        timeout = plan.measurement_timeout()
        return failing_among(plan.sandbox, plan.project, plan.test_paths(), node_ids, watched, workspace, timeout)

    return conclude_run(plan, baseline, final, results, written, started_at, duration_s, measure_again, run_with)
