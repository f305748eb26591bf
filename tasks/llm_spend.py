"""What a run has spent on LLM calls, its budget, and the run-wide stop after a rejected key."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from blocks.llm import Price
from tasks.llm_client import LLMError, Usage
from tasks.llm_config import LLMConfig


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
    def from_config(cls, config: LLMConfig) -> "Spend":
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

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return sum(s.cost_usd for s in self._per_model.values())

    def check(self) -> None:
        """Raise before a new request when the run was aborted or its budget is spent."""
        if self._abort.is_set():
            raise LLMError("authentication", self._abort_reason)
        if self.budget_usd is not None:
            spent = self.spent_usd
            if spent >= self.budget_usd:
                raise LLMError("budget", f"LLM budget of ${self.budget_usd:.4f} spent (${spent:.4f}): "
                                         f"no new request")

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
            requests=sum(s.requests for s in per_model.values()), prompt_tokens=prompt,
            completion_tokens=completion, tokens_used=prompt + completion,
            cost_usd=round(sum(s.cost_usd for s in per_model.values()), 6), budget_usd=self.budget_usd,
            unpriced_models=unpriced, per_model=per_model,
        )
