"""What a run has spent on LLM calls, its budget, and the run-wide stop after a rejected key:
in this process's memory (Spend), or on the Prefect server for module tasks in several processes
or hosts (SharedSpend)."""

from __future__ import annotations

import math
import threading
import time
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import BaseModel

from tasks.core.llm import LLMSpec, Price
from tasks.core.log import get_logger
from tasks.core.names import LLM_SPEND_PREFIX
from tasks.llm.client import LLMError, Usage
from tasks.llm.config import LLMConfig

# The server counts slots in a 32-bit integer column (on PostgreSQL).
MAX_SLOTS = 2**31 - 1
# How often a process waiting out a backoff asks the server whether another one stopped the run.
STOP_POLL_S = 2.0


class ModelSpend(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class SpendSummary(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_used: int = 0
    cost_usd: float = 0.0
    budget_usd: float | None = None
    unpriced_models: list[str] = []
    per_model: dict[str, ModelSpend] = {}


def cost_of(price: Price | None, usage: Usage) -> float | None:
    """USD for one response: from the configured price, else what the provider reported."""
    if price is not None:
        return (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1_000_000
    return usage.cost_usd


class Spend:
    """Thread-safe per-run accounting. Every answer counts, rejected ones too: they were paid for."""

    def __init__(self, prices: dict[str, Price] | None = None, budget_usd: float | None = None):
        self._prices = dict(prices or {})
        self.budget_usd = budget_usd
        self._lock = threading.Lock()
        self._per_model: dict[str, ModelSpend] = {}
        self._unpriced: set[str] = set()
        self._abort = threading.Event()
        self._abort_reason = ""

    @classmethod
    def from_config(cls, config: LLMConfig) -> Spend:
        return cls(config.prices, config.budget_usd)

    def record(self, model: str, usage: Usage | None) -> float:
        """Account one response; returns its cost in USD (0 when unknown)."""
        usage = usage or Usage()
        cost = cost_of(self._prices.get(model), usage)
        with self._lock:
            spent = self._per_model.setdefault(model, ModelSpend())
            spent.requests += 1
            spent.prompt_tokens += usage.prompt_tokens
            spent.completion_tokens += usage.completion_tokens
            if cost is None:
                if usage.total:
                    self._unpriced.add(model)
                cost = 0.0
            spent.cost_usd += cost
        return cost

    def spent_here(self) -> float:
        """What this process's requests cost."""
        with self._lock:
            return sum(s.cost_usd for s in self._per_model.values())

    @property
    def spent_usd(self) -> float:
        return self.spent_here()

    def check(self) -> None:
        """Raise before a new request when the run was aborted or its budget is spent."""
        if self._abort.is_set():
            raise LLMError("authentication", self._abort_reason)
        if self.budget_usd is not None:
            spent = self.spent_here()
            if spent >= self.budget_usd:
                raise LLMError("budget", f"LLM budget of ${self.budget_usd:.4f} spent (${spent:.4f}): no new request")

    def abort(self, reason: str) -> None:
        """Stop every module's LLM requests (a rejected key fails the same way for all)."""
        with self._lock:
            if not self._abort.is_set():
                self._abort_reason = reason
                self._abort.set()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    @property
    def abort_reason(self) -> str:
        return self._abort_reason

    def wait(self, seconds: float) -> bool:
        """Sleep, waking at once if the run is aborted meanwhile; True when aborted."""
        return self._abort.wait(max(0.0, seconds))

    def summary(self) -> SpendSummary:
        with self._lock:
            per_model = {m: s.model_copy() for m, s in self._per_model.items()}
            unpriced = sorted(self._unpriced)
        prompt = sum(s.prompt_tokens for s in per_model.values())
        completion = sum(s.completion_tokens for s in per_model.values())
        return SpendSummary(
            requests=sum(s.requests for s in per_model.values()),
            prompt_tokens=prompt,
            completion_tokens=completion,
            tokens_used=prompt + completion,
            cost_usd=round(sum(s.cost_usd for s in per_model.values()), 6),
            budget_usd=self.budget_usd,
            unpriced_models=unpriced,
            per_model=per_model,
        )


def spend_unit_usd(budget_usd: float | None) -> float:
    """USD per slot of the run's spend limit: a micro-dollar, coarser for a budget whose
    micro-dollars would not fit the server's slot count."""
    return max(1e-6, (budget_usd or 0.0) / 1e9)


def spend_slots(budget_usd: float | None) -> int:
    """The spend limit's size: the budget in slots; without a budget as many as the server holds."""
    return MAX_SLOTS if budget_usd is None else round(budget_usd / spend_unit_usd(budget_usd))


def create_spend_limit(client: SyncPrefectClient, spec: LLMSpec) -> None:
    """The run's spend limit: nothing spent, not stopped. A retried flow run keeps what it spent."""
    slots = spend_slots(spec.settings.budget_usd)
    try:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=spec.spend_limit, limit=slots))
    except ObjectAlreadyExists:
        client.update_global_concurrency_limit(spec.spend_limit, GlobalConcurrencyLimitUpdate(limit=slots, active=True))


def delete_spend_limit(client: SyncPrefectClient, spec: LLMSpec) -> None:
    try:
        client.delete_global_concurrency_limit_by_name(spec.spend_limit)
    except ObjectNotFound:
        pass


def _run_ended(client: SyncPrefectClient, run_id: str) -> bool:
    try:
        run = client.read_flow_run(UUID(run_id))
    except (ValueError, ObjectNotFound):
        return True
    return run.state is None or run.state.is_final()


def remove_stale_spend_limits(client: SyncPrefectClient) -> list[str]:
    """The spend limits of runs that ended without deleting theirs (their flow's process was killed)."""
    names, offset = [], 0
    while page := client.read_global_concurrency_limits(limit=200, offset=offset):
        offset += len(page)
        names += [limit.name for limit in page if limit.name.startswith(LLM_SPEND_PREFIX)]
    stale = [name for name in names if _run_ended(client, name.removeprefix(LLM_SPEND_PREFIX))]
    for name in stale:
        try:
            client.delete_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            pass  # another run's sweep was first
    return stale


class SharedSpend(Spend):
    """The run's spend and stop on the Prefect server, for module tasks in several processes or hosts.

    The run's global concurrency limit (`LLMSpec.spend_limit`, made by `create_spend_limit`) holds
    the budget as its limit and what every process spent as its active slots, in units of
    `spend_unit_usd`: the server adds atomically, and refuses an add past the limit, after which the
    count is set to the limit (the budget is spent). The limit turned inactive is the run stopped
    after a rejected key. A request costs two API calls: a read before it, an add after its answer.
    This process's own accounting (`summary`) stays in memory, as with Spend."""

    def __init__(self, spec: LLMSpec, client: SyncPrefectClient):
        super().__init__(spec.settings.prices, spec.settings.budget_usd)
        self._name = spec.spend_limit
        self._unit = spend_unit_usd(spec.settings.budget_usd)
        self._slots = spend_slots(spec.settings.budget_usd)
        self._stopped_elsewhere = f"LLM API key missing or rejected by {spec.settings.base_url} (in another worker)"
        self._client = client

    def record(self, model: str, usage: Usage | None) -> float:
        cost = super().record(model, usage)
        slots = math.ceil(round(cost / self._unit, 6))  # never less than was spent
        if slots > 0:
            self._add(slots)
        return cost

    def _add(self, slots: int) -> None:
        try:
            try:
                self._client.increment_concurrency_slots([self._name], slots, "concurrency")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code not in (422, 423):  # 422: more than the whole limit, 423: past it
                    raise
                # Past the budget: the count stays at the limit, which every process reads as spent.
                self._client.update_global_concurrency_limit(
                    self._name, GlobalConcurrencyLimitUpdate(active_slots=self._slots)
                )
        except (ObjectNotFound, httpx.HTTPError) as exc:
            self._warn("not counted", exc)

    def _warn(self, what: str, exc: Exception) -> None:
        get_logger("covsweep.llm").warning("the run's LLM spend %s (%s): %s", what, self._name, exc.__class__.__name__)

    def _read(self) -> GlobalConcurrencyLimitResponse:
        try:
            return self._client.read_global_concurrency_limit_by_name(self._name)
        except ObjectNotFound:
            raise LLMError(
                "budget", f"the run's spend limit {self._name} is gone (the run ended): no new request"
            ) from None
        except httpx.HTTPError as exc:
            raise LLMError(
                "budget",
                f"the run's LLM spend cannot be read from the Prefect API ({exc.__class__.__name__}): no new request",
            ) from None

    @property
    def spent_usd(self) -> float:
        """What the whole run spent, every process together (at most the budget: the count stops there)."""
        return round(self._read().active_slots * self._unit, 6)

    def check(self) -> None:
        super().check()  # stopped or spent in this process: known without asking
        limit = self._read()
        if not limit.active:
            super().abort(self._stopped_elsewhere)
            raise LLMError("authentication", self._stopped_elsewhere)
        if self.budget_usd is not None and limit.active_slots >= limit.limit:
            spent = limit.active_slots * self._unit
            raise LLMError(
                "budget", f"LLM budget of ${self.budget_usd:.4f} spent by the run (${spent:.4f}): no new request"
            )

    def abort(self, reason: str) -> None:
        first = not self.aborted
        super().abort(reason)
        if first:
            try:
                self._client.update_global_concurrency_limit(self._name, GlobalConcurrencyLimitUpdate(active=False))
            except (ObjectNotFound, httpx.HTTPError) as exc:
                self._warn("stop not shared", exc)

    def wait(self, seconds: float) -> bool:
        """As Spend.wait, waking too when another process stops the run (asked every STOP_POLL_S)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if super().wait(min(left, STOP_POLL_S)):
                return True
            if left > STOP_POLL_S and not self._read_active():
                super().abort(self._stopped_elsewhere)
                return True
        return self.aborted

    def _read_active(self) -> bool:
        try:
            return self._read().active
        except LLMError:
            return True  # the next check() says why; a backoff is not the place to stop
