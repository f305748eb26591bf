"""The per-model circuit breaker: open after K failures in a row, one trial after the cooldown."""

from __future__ import annotations

from functools import partial

import pytest

from tasks.core.settings import Settings
from tasks.llm.breaker import Breakers, CircuitBreaker
from tasks.llm.config import resolve_llm_config
from tests.helpers import in_threads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_opens_after_k_consecutive_failures(clock):
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure("server")
        assert breaker.allow() and breaker.state == "closed"
    breaker.record_failure("timeout")
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.last_error == "timeout"


def test_a_success_resets_the_count(clock):
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_after_the_cooldown_lets_one_trial_through(clock):
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == "half_open"
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # everyone else waits for its outcome
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_a_failed_trial_opens_it_again_for_a_full_cooldown(clock):
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 11
    assert breaker.allow()


def test_a_trial_that_never_reports_does_not_block_the_model_forever(clock):
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    assert not breaker.allow()
    clock.now += 11
    assert breaker.allow()


def test_disabled_always_allows(clock):
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, enabled=False, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    assert breaker.allow() and breaker.state == "closed"


def test_one_breaker_per_model_shared_across_threads(clock):
    breakers = Breakers(partial(CircuitBreaker, threshold=50, cooldown_s=10, clock=clock))

    def work():
        for _ in range(10):
            breakers["a"].record_failure()
        return breakers["a"]

    seen = in_threads(work, 5)
    assert all(b is seen[0] for b in seen)
    assert breakers.states() == {"a": "open"}  # exactly 50 failures counted: none lost
    assert breakers["b"].state == "closed"


def test_covsweep_circuit_breaker_0_turns_it_off(monkeypatch):
    monkeypatch.setenv("COVSWEEP_CIRCUIT_BREAKER", "0")
    config = resolve_llm_config(settings=Settings(), load_block=False)
    assert config.circuit_breaker is False
    breakers = Breakers.from_config(config)
    for _ in range(10):
        breakers["m"].record_failure()
    assert breakers["m"].allow()


def test_on_by_default(monkeypatch):
    monkeypatch.delenv("COVSWEEP_CIRCUIT_BREAKER", raising=False)
    config = resolve_llm_config(settings=Settings(), load_block=False)
    breakers = Breakers.from_config(config)
    for _ in range(config.breaker_threshold):
        breakers["m"].record_failure()
    assert not breakers["m"].allow()
