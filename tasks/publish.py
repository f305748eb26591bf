"""Publishing what a run did: its progress while it runs, then the JSON report and the artifacts of the UI."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.core.models import Report
from tasks.core.names import MODULES_KEY, PROGRESS_KEY
from tasks.core.options import RunOptions
from tasks.reporting.gates import gate_failures
from tasks.reporting.report import markdown_summary, save_report, table_rows
from tasks.reporting.summary import summary_markdown


@task(name="publish-report")
def publish_report(report: Report, path: Path | None) -> Report:
    """Write the JSON report (None: a deployed run on a repository has no place for it but result
    storage) and the summary and modules artifacts; the flow persists the report."""
    if path is not None:
        save_report(report, path)
    create_markdown_artifact(
        key="covsweep-summary", markdown=markdown_summary(report), description="covsweep run summary"
    )
    create_table_artifact(key=MODULES_KEY, table=table_rows(report), description="per-module coverage")
    return report


@task(name="publish-summary")
def publish_summary(report: Report, options: RunOptions) -> list[str]:
    """The gates not met, one line each; with --summary-md the pull-request summary is written first,
    whatever the gates say: CI posts it either way."""
    failures = gate_failures(report.totals, options.fail_under, options.fail_under_diff)
    for failure in failures:
        get_run_logger().warning(failure.removeprefix("covsweep: "))
    if options.summary_md:
        path = Path(options.summary_md).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(summary_markdown(report, failed_gates=failures))
    return failures


class Progress:
    """The run's progress artifact, updated as modules finish."""

    def __init__(self, total: int):
        self.total, self.done, self.updated_s = total, 0, 0.0
        self.artifact: UUID = create_progress_artifact(
            progress=0.0, key=PROGRESS_KEY, description=f"modules done of {total}"
        )

    def advance(self, modules: int = 1) -> None:
        self.done += modules
        now_s = time.monotonic()
        # One API call a second at most: hundreds of quick modules must not wait on the server.
        if self.done == self.total or now_s - self.updated_s >= 1.0:
            self.updated_s = now_s
            update_progress_artifact(self.artifact, progress=100.0 * self.done / max(self.total, 1))
