"""The run's LLM state the module threads of one process share: client pool, breakers, spend.

A module task carries the run's LLMSpec (plain data, no key) and gets the session from it in
whatever process or host it runs: `llm_session(spec)` opens that process's session for the spec on
first use, reading the key there, and closes it when the last user in the process is done. Nothing
has to be registered beforehand. One spend for the whole run: in memory when every module runs in
the process that holds the session, on the Prefect server when `spec.shared_spend`."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from prefect.client.orchestration import get_client

from tasks.core.llm import LLMSpec
from tasks.llm.breaker import Breakers
from tasks.llm.client import LLMClient
from tasks.llm.config import LLMConfig, config_for
from tasks.llm.spend import SharedSpend, Spend


class LLMSession:
    def __init__(self, config: LLMConfig, *, max_connections: int = 32, spend: Spend | None = None):
        self.config = config
        self.client = LLMClient(config, max_connections=max_connections)
        self.breakers = Breakers.from_config(config)
        self.spend = spend or Spend.from_config(config)
        self.resources = ExitStack()  # closed with the session: what `spend` uses

    @classmethod
    def from_spec(cls, spec: LLMSpec) -> LLMSession:
        """A session for the run in this process, with the key read here."""
        config = config_for(spec)
        if not spec.shared_spend:
            return cls(config, max_connections=spec.max_connections)
        with ExitStack() as resources:
            prefect = resources.enter_context(get_client(sync_client=True))
            session = cls(config, max_connections=spec.max_connections, spend=SharedSpend(spec, prefect))
            session.resources = resources.pop_all()
        return session

    def __repr__(self) -> str:
        return f"LLMSession(base_url={self.config.base_url!r}, models={self.config.models!r})"

    def __enter__(self) -> LLMSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        self.resources.close()


@dataclass
class _Open:
    session: LLMSession
    users: int = 0


class _Sessions:
    """This process's open sessions, by spec."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_spec: dict[str, _Open] = {}


_sessions = _Sessions()
# A forked child has none of its parent's threads: the parent's sessions cannot serve it.
os.register_at_fork(after_in_child=_sessions.__init__)


def hold_session(spec: LLMSpec) -> LLMSession:
    """This process's session for the run: the one already open for an equal spec, else a new one.
    Every hold is matched by one `release_session`."""
    with _sessions.lock:
        entry = _sessions.by_spec.get(spec.key)
        if entry is None:
            entry = _sessions.by_spec[spec.key] = _Open(LLMSession.from_spec(spec))
        entry.users += 1
        return entry.session


def release_session(spec: LLMSpec) -> None:
    """The session closes when its last user in this process releases it."""
    with _sessions.lock:
        entry = _sessions.by_spec.get(spec.key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users > 0:
            return
        del _sessions.by_spec[spec.key]
    entry.session.close()


@contextmanager
def llm_session(spec: LLMSpec) -> Iterator[LLMSession]:
    """Hold this process's session for the run while the block runs."""
    session = hold_session(spec)
    try:
        yield session
    finally:
        release_session(spec)


def session_in_use(spec: LLMSpec | None) -> LLMSession:
    """The session a caller up the stack holds with `llm_session(spec)` in this process."""
    if spec is None:
        raise LookupError("this module job carries no LLM spec")
    with _sessions.lock:
        entry = _sessions.by_spec.get(spec.key)
    if entry is None:
        raise LookupError(f"no LLM session of run {spec.run_id} is open in this process: hold llm_session(spec)")
    return entry.session
