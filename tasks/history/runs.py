"""Earlier sweeps, rebuilt from their spec-to-production runs' reports in Prefect result storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from tasks.core.models import Report, Sweep, TargetPoint
from tasks.core.names import MAIN_FLOW, SWEEP_FLOW
from tasks.history.reports import ResultUnavailable, stored_report


def point_from_state(target: str, run_id: str | None, state: Any) -> TargetPoint:
    """A target's outcome from its run's final state; a completed run's coverage comes from its report."""
    if state is None or not state.is_completed():
        name = state.name if state is not None else "Missing"
        message = (state.message or "") if state is not None else ""
        return TargetPoint(target=target, run_id=run_id, state=name, error=message.splitlines()[0] if message else None)
    try:
        report = stored_report(state)
    except ResultUnavailable as exc:
        return TargetPoint(target=target, run_id=run_id, error=str(exc))
    return TargetPoint(
        target=target,
        run_id=run_id,
        line=report.totals.line_after,
        branch=report.totals.branch_after,
        modules_failed=report.totals.failed,
    )


def _sweep(client: SyncPrefectClient, sweep_run: Any) -> Sweep:
    children = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[MAIN_FLOW])),
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[sweep_run.id])),
        sort=FlowRunSort.START_TIME_DESC,
    )
    points: dict[str, TargetPoint] = {}
    for child in children:
        target = str(child.parameters.get("target", "?"))
        if target not in points:  # newest first: a rerun within the sweep wins
            points[target] = point_from_state(target, str(child.id), child.state)
    started = sweep_run.start_time or sweep_run.expected_start_time
    return Sweep(
        sweep_id=str(sweep_run.id), started_at=started.isoformat() if started else None, points=list(points.values())
    )


def earlier_sweeps(client: SyncPrefectClient, exclude: UUID | str | None, limit: int) -> list[Sweep]:
    """The last `limit` finished sweeps before this one, oldest first."""
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[SWEEP_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED, StateType.FAILED])),
            id=FlowRunFilterId(not_any_=[UUID(str(exclude))]) if exclude else None,
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    return [_sweep(client, run) for run in reversed(runs)]


def recent_reports(client: SyncPrefectClient, days: float, limit: int = 200) -> list[Report]:
    """Reports of the spec-to-production runs that completed in the last `days`, newest first."""
    since = datetime.now(UTC) - timedelta(days=days)
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[MAIN_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
            start_time=FlowRunFilterStartTime(after_=since),
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    reports = []
    for run in runs:
        try:
            reports.append(stored_report(run.state))
        except ResultUnavailable:
            continue  # persisted on another host, or its storage is gone
    return reports
