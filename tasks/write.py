"""Writing the accepted tests into the target, as a task."""

from __future__ import annotations

from prefect import task

from tasks.core.models import ModuleResult
from tasks.core.plan import Plan
from tasks.delivery.write import WriteRequest, Written, write_files


@task(name="write-tests")
def write_tests(plan: Plan, results: list[ModuleResult]) -> list[Written]:
    """Write each module's accepted tests atomically; never overwrite a file without the marker."""
    modules = {m.path: m for m in plan.project.modules}
    requests = [WriteRequest(module=modules[r.module], source=r.accepted_source) for r in results if r.accepted_source]
    return write_files(plan.project, plan.out, requests, plan.framework) if requests else []
