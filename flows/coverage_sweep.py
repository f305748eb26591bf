"""The flow `coverage-sweep`: spec-to-production on each target, then the coverage trend across sweeps."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from pydantic import Field

from covsweep.history import earlier_sweeps, point_from_state
from covsweep.objects import TREND_KEY
from covsweep.trend import Sweep, regressions, trend_markdown
from flows.spec_to_production import spec_to_production
from tasks.report import now


class SweepFailed(Exception):
    """Some target's run did not complete; the trend is published first."""


@task(name="read-sweep-history")
def read_history(exclude: str | None, limit: int) -> list[Sweep]:
    with get_client(sync_client=True) as client:
        return earlier_sweeps(client, exclude, limit)


@task(name="publish-trend")
def publish_trend(history: list[Sweep], current: Sweep) -> None:
    create_markdown_artifact(key=TREND_KEY, markdown=trend_markdown(history, current),
                             description="line coverage per target over the last sweeps")


@flow(name="coverage-sweep", persist_result=True, validate_parameters=True)
def coverage_sweep(
    targets: list[str],
    generator: Literal["auto", "llm", "openhands", "pynguin", "none"] = "auto",
    coverage_target: Annotated[float, Field(ge=0, le=100)] = 80.0,
    max_iterations: Annotated[int, Field(ge=1, le=100)] = 3,
    reruns: Annotated[int, Field(ge=1, le=50)] = 3,
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4,
    sandbox: Literal["docker", "local"] = "docker",
    timeout: Annotated[float, Field(gt=0)] = 300.0,
    models: str | None = None,
    llm_base_url: str | None = None,
    budget_usd: Annotated[float, Field(ge=0)] | None = None,
    history: Annotated[int, Field(ge=0, le=50)] = 7,
) -> Sweep:
    """Run spec-to-production on every target, one after the other, and publish `covsweep-trend`."""
    options = {k: v for k, v in locals().items() if k not in ("targets", "history")}
    logger = get_run_logger()
    sweep_id = str(flow_run.get_id() or "") or None
    current = Sweep(sweep_id=sweep_id, started_at=now().isoformat())
    if not targets:
        logger.warning("no targets: set them with `prefect variable set covsweep_sweep_targets` and `make deploy`")
    for target in targets:
        # One subflow per target: each has its own run, report and artifacts in the UI.
        state = spec_to_production(target=target, **options, return_state=True)
        run_id = state.state_details.flow_run_id
        point = point_from_state(target, str(run_id) if run_id else None, state)
        current.points.append(point)
        logger.info("%s: %s", target, f"line {point.line:.1f}%" if point.ok else f"{point.state}: {point.error}")
    earlier = read_history(sweep_id, history) if history else []
    current.regressions = regressions(earlier, current)
    publish_trend(earlier, current)
    failed = [p.target for p in current.points if not p.ok]
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(targets)} targets failed: {', '.join(failed)}")
    if current.regressions:
        logger.warning("coverage fell on %s", ", ".join(current.regressions))
    return current
