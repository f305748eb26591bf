"""The run's LLM, as tasks: the model chain ranked by stored scores, then the spec module tasks
get, which carries no key; the flow's process holds the run's session while the run lasts."""

from __future__ import annotations

from prefect import task
from prefect.client.orchestration import get_client

from tasks.core.llm import LLMSpec
from tasks.core.log import get_logger
from tasks.history.runs import recent_reports
from tasks.llm.config import resolve_llm_config, spec_of
from tasks.llm.metrics import rank
from tasks.llm.session import hold_session, release_session
from tasks.llm.spend import create_spend_limit, delete_spend_limit, remove_stale_spend_limits


@task(name="rank-models")
def rank_models(chain: list[str], days: float = 30.0) -> list[str]:
    """The chain ordered by score from the stored reports of the last `days`."""
    with get_client(sync_client=True) as client:
        reports = recent_reports(client, days)
    ranked = rank(chain, reports)
    get_logger("covsweep").info("model chain by score: %s", ", ".join(f"{s.model} ({s.score:.2f})" for s in ranked))
    return [s.model for s in ranked]


@task(name="open-llm-session")
def open_run_llm(
    run_id: str,
    models: str | None,
    llm_base_url: str | None,
    budget_usd: float | None,
    concurrency: int = 4,
    shared_spend: bool = False,
) -> LLMSpec:
    """The run's LLM spec; a chain nobody ordered (block or default) is ordered by stored scores.

    `shared_spend` (module tasks in other processes or hosts): the run's spend limit is made on the
    Prefect server. This process (the flow's) holds the run's session until `close_run_llm`, so its
    module threads share one client pool, the breakers and, without `shared_spend`, the spend."""
    config = resolve_llm_config(models=models, llm_base_url=llm_base_url, budget_usd=budget_usd)
    if config.sources.get("models") in ("block", "default"):
        config = config.model_copy(update={"models": rank_models.fn(config.models)})
    # A connection for every module thread: a request waiting for one would spend its own timeout.
    spec = spec_of(config, run_id, max_connections=max(32, concurrency), shared_spend=shared_spend)
    if shared_spend:
        with get_client(sync_client=True) as client:
            remove_stale_spend_limits(client)
            create_spend_limit(client, spec)
    hold_session(spec)
    return spec


def close_run_llm(spec: LLMSpec | None) -> None:
    """Release the flow's hold on the run's session and delete the run's spend limit; nothing
    happens without a spec."""
    if spec is None:
        return
    release_session(spec)
    if spec.shared_spend:
        with get_client(sync_client=True) as client:
            delete_spend_limit(client, spec)
