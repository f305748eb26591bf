"""One circuit breaker per model, shared by every module thread of a run.

closed --K failures in a row--> open --cooldown--> half-open (one trial call)
half-open --success--> closed;  half-open --failure--> open again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Literal

from tasks.llm.config import LLMConfig

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_since: float | None = None  # a half-open trial call is under way since then
        self.last_error: str | None = None  # the error type that last counted as a failure

    def _state(self, now: float) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if now - self._opened_at < self.cooldown_s else "half_open"

    @property
    def state(self) -> State:
        with self._lock:
            return self._state(self._clock()) if self.enabled else "closed"

    def allow(self) -> bool:
        """May a call go out now? In half-open, yes for one caller: the trial."""
        if not self.enabled:
            return True
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == "closed":
                return True
            if state == "open":
                return False
            # A trial whose caller never reported back (it died) does not block the model forever.
            if self._trial_since is not None and now - self._trial_since < max(self.cooldown_s, 1.0):
                return False
            self._trial_since = now
            return True

    def record_success(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._failures, self._opened_at, self._trial_since = 0, None, None

    def record_failure(self, error_type: str = "connection") -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            self.last_error = error_type
            self._failures += 1
            if self._trial_since is not None or self._failures >= self.threshold:
                self._opened_at, self._trial_since = now, None

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self._failures}, enabled={self.enabled})"


class Breakers:
    """The run's breakers, one per model name, made on first use by `make` (each model its own)."""

    def __init__(self, make: Callable[[], CircuitBreaker] = CircuitBreaker):
        self._make = make
        self._lock = threading.Lock()
        self._by_model: dict[str, CircuitBreaker] = {}

    @classmethod
    def from_config(cls, config: LLMConfig) -> Breakers:
        return cls(
            partial(CircuitBreaker, config.breaker_threshold, config.breaker_cooldown_s, enabled=config.circuit_breaker)
        )

    def __getitem__(self, model: str) -> CircuitBreaker:
        with self._lock:
            if model not in self._by_model:
                self._by_model[model] = self._make()
            return self._by_model[model]

    def states(self) -> dict[str, State]:
        with self._lock:
            breakers = dict(self._by_model)
        return {model: b.state for model, b in breakers.items()}
