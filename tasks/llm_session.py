"""The run-scoped LLM state every module thread shares: client, breakers, spend.

Prefect task parameters should stay plain data, so module jobs carry the run id and look the
session up here."""

from __future__ import annotations

import threading

from prefect import task

from tasks.circuit_breaker import Breakers
from tasks.llm_client import LLMClient
from tasks.llm_config import LLMConfig, resolve_llm_config
from tasks.llm_spend import Spend
from tasks.metrics import rank_models


class LLMSession:
    def __init__(self, config: LLMConfig, *, max_connections: int = 32):
        self.config = config
        self.client = LLMClient(config, max_connections=max_connections)
        self.breakers = Breakers.from_config(config)
        self.spend = Spend.from_config(config)

    def __repr__(self) -> str:
        return f"LLMSession(base_url={self.config.base_url!r}, models={self.config.models!r})"

    def __enter__(self) -> "LLMSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()


_lock = threading.Lock()
_sessions: dict[str, LLMSession] = {}


def open_session(run_id: str, config: LLMConfig, *, max_connections: int = 32) -> LLMSession:
    """The run's session, made once; a second call for the same run returns the same session."""
    with _lock:
        if run_id not in _sessions:
            _sessions[run_id] = LLMSession(config, max_connections=max_connections)
        return _sessions[run_id]


def get_session(run_id: str) -> LLMSession:
    with _lock:
        try:
            return _sessions[run_id]
        except KeyError:
            raise LookupError(f"no LLM session is open for run {run_id}") from None


def close_session(run_id: str) -> None:
    """Close the run's connection pool; nothing happens when it was never opened."""
    with _lock:
        session = _sessions.pop(run_id, None)
    if session is not None:
        session.close()


@task(name="open-llm-session")
def open_run_session(run_id: str, models: str | None, llm_base_url: str | None, budget_usd: float | None,
                     concurrency: int = 4) -> None:
    """The run's session; a chain nobody ordered (block or default) is ordered by stored scores.
    The key is resolved here, never passed as a parameter."""
    config = resolve_llm_config(models=models, llm_base_url=llm_base_url, budget_usd=budget_usd)
    if config.sources.get("models") in ("block", "default"):
        config = config.model_copy(update={"models": rank_models.fn(config.models)})
    # A connection for every module thread: a request waiting for one would spend its own timeout.
    open_session(run_id, config, max_connections=max(32, concurrency))
