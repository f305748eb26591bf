"""Delivering the accepted tests, as a task: the report's `source` and `delivery`, and a patch kept
where a user can get it back (artifact `covsweep-patch`, result storage)."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.results import get_default_result_storage

from tasks.core.models import Report
from tasks.core.names import PATCH_KEY, PATCH_STORAGE_KEY
from tasks.core.plan import Plan
from tasks.delivery.deliver import Delivered, deliver_run


def patch_markdown(patch: str, report: Report) -> str:
    """The patch in a fence longer than any run of backticks in it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", patch)), default=0))
    source = report.source
    at = f" at commit `{source.commit}` of `{source.repository}`" if source else ""
    return f"# covsweep patch\n\n`git apply` it{at}, or `covsweep results {report.run_id} --patch`.\n\n{fence}diff\n{patch}{fence}\n"


@task(name="deliver-tests")
def deliver_tests(plan: Plan, report: Report) -> Delivered:
    """Write, patch or branch, as planned; a patch is also an artifact and stored beside the run's report."""
    delivered = deliver_run(plan, report)
    if delivered.patch:
        create_markdown_artifact(
            key=PATCH_KEY, markdown=patch_markdown(delivered.patch, delivered.report), description="covsweep patch"
        )
        key = PATCH_STORAGE_KEY.format(run_id=plan.run_id)
        get_default_result_storage().write_path(key, delivered.patch.encode())
    return delivered
