"""The nightly sweep's tasks: earlier sweeps read back, and the trend artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client

from tasks.core.errors import InputError
from tasks.core.models import Sweep, TargetPoint
from tasks.core.names import TREND_KEY
from tasks.history.runs import earlier_sweeps, point_from_state
from tasks.history.trend import regressions, trend_markdown
from tasks.project.remote import detach_secret, redact


@task(name="read-sweep-history")
def read_history(exclude: str | None, limit: int) -> list[Sweep]:
    with get_client(sync_client=True) as client:
        return earlier_sweeps(client, exclude, limit)


@task(name="publish-trend")
def publish_trend(history: list[Sweep], current: Sweep) -> list[str]:
    """The trend artifact; returns the targets whose coverage fell since the last sweep."""
    create_markdown_artifact(
        key=TREND_KEY,
        markdown=trend_markdown(history, current),
        description="line coverage per target over the last sweeps",
    )
    return regressions(history, current)


def sweep_point(target: str, state) -> TargetPoint:
    """One target's outcome in this sweep, from its subflow's final state."""
    run_id = state.state_details.flow_run_id
    return point_from_state(target, str(run_id) if run_id else None, state)


def check_targets(targets: list[str]) -> None:
    """A target URL carrying a token is refused: the sweep's parameters, and each run's, are stored."""
    carrying = [redact(t) for t in targets if detach_secret(t)[1] is not None]
    if carrying:
        raise InputError(
            f"{', '.join(carrying)}: a token in a target URL would be stored with the runs' parameters; "
            "set COVSWEEP_GIT_TOKEN on the worker or save the Secret block covsweep-git-token"
        )
