"""The flow `coverage-sweep`: spec-to-production on each target, then the coverage trend across sweeps."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import Field

from flows.spec_to_production import spec_to_production
from tasks.core.models import Sweep, now
from tasks.core.options import Percent
from tasks.sweep import check_targets, publish_trend, read_history, sweep_point


class SweepFailed(Exception):
    """Some target's run did not complete; the trend is published first."""


# long: a parameter and an Args line per option (the UI's form of a run); the body is short
@flow(name="coverage-sweep", persist_result=True, validate_parameters=True)
def coverage_sweep(
    targets: list[str],
    generator: Literal["auto", "llm", "openhands", "pynguin", "none"] = "auto",
    coverage_target: Annotated[float, Field(ge=0, le=100)] = 80.0,
    max_iterations: Annotated[int, Field(ge=1, le=100)] = 3,
    reruns: Annotated[int, Field(ge=1, le=50)] = 3,
    framework: Literal["auto", "pytest", "unittest"] = "auto",
    mutation: Literal["on", "off"] = "on",
    mutants: Annotated[int, Field(ge=1, le=1000)] = 30,
    mutation_target: Percent = 70.0,
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4,
    timeout: Annotated[float, Field(gt=0)] = 300.0,
    budget_usd: Annotated[float, Field(ge=0)] | None = None,
    sandbox: Literal["docker", "local"] = "docker",
    cluster: str | None = None,
    models: str | None = None,
    llm_base_url: str | None = None,
    changed_since: str | None = None,
    fail_under: Percent | None = None,
    fail_under_diff: Percent | None = None,
    deliver: Literal["write", "patch", "branch"] | None = None,
    history: Annotated[int, Field(ge=0, le=50)] = 7,
) -> Sweep:
    """Run spec-to-production on every target, one after the other, and publish `covsweep-trend`.

    Args:
        targets: the projects to sweep: directories or .py files as the worker sees them, or repository URLs
        generator: auto (llm with an API key, else pynguin), llm, openhands, pynguin, or none (measure only)
        coverage_target: per-module line coverage (percent) at which refinement stops
        max_iterations: refinement rounds per module
        reruns: a generated test is kept only if it passes this many runs in a row
        framework: auto, pytest or unittest: the style of the generated tests and their runner
        mutation: on or off: the mutation score of the accepted tests
        mutants: mutants per module at most
        mutation_target: refinement continues below this mutation score (percent)
        concurrency: modules processed at once, per target
        timeout: budget per module in seconds, all attempts together
        budget_usd: per target: no new LLM request once its run has spent this much
        sandbox: docker, or local (subprocesses with resource limits, not isolated)
        cluster: a Dask scheduler (tcp://host:8786): module tasks run on its workers
        models: LLM fallback chain A,B,C, first preferred; default: the block's, ordered by score
        llm_base_url: any OpenAI-compatible endpoint
        changed_since: per target, only modules changed since this git ref; diff coverage in the reports
        fail_under: a target's run fails its gate when its total line coverage after is below this (percent)
        fail_under_diff: a target's run fails its gate when its diff coverage after is below this (percent)
        deliver: per target: write (into it), patch (an artifact), or branch (pushed, one per night that
            raised its coverage); default write for a directory, patch for a repository
        history: earlier sweeps the trend compares with
    """
    options = {k: v for k, v in locals().items() if k not in ("targets", "history")}
    check_targets(targets)
    logger = get_run_logger()
    sweep_id = str(flow_run.get_id() or "") or None
    current = Sweep(sweep_id=sweep_id, started_at=now().isoformat())
    if not targets:
        logger.warning("no targets: set them with `prefect variable set covsweep_sweep_targets` and `make deploy`")
    for target in targets:
        # One subflow per target: each has its own run, report and artifacts in the UI.
        state = spec_to_production(target=target, **options, return_state=True)
        point = sweep_point(target, state)
        current.points.append(point)
        logger.info("%s: %s", target, f"line {point.line:.1f}%" if point.ok else f"{point.state}: {point.error}")
    earlier = read_history(sweep_id, history) if history else []
    current.regressions = publish_trend(earlier, current)
    failed = [p.target for p in current.points if not p.ok]
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(targets)} targets failed: {', '.join(failed)}")
    if current.regressions:
        logger.warning("coverage fell on %s", ", ".join(current.regressions))
    return current
