"""Per-run LLM accounting: tokens, cost from prices, the budget, the run-wide abort."""

from __future__ import annotations

import threading
import time

import pytest

from blocks.llm import Price
from tasks.llm_client import LLMError, Usage
from tasks.llm_spend import Spend
from tests.helpers import in_threads

PRICES = {"paid": Price(prompt=2.0, completion=10.0), "free": Price()}


def test_cost_comes_from_the_model_price_per_million_tokens():
    spend = Spend(PRICES)
    assert spend.record("paid", Usage(prompt_tokens=1000, completion_tokens=500)) == pytest.approx(0.007)
    assert spend.record("free", Usage(prompt_tokens=9999, completion_tokens=9999)) == 0
    summary = spend.summary()
    assert (summary.requests, summary.prompt_tokens, summary.completion_tokens) == (2, 10999, 10499)
    assert summary.tokens_used == 21498
    assert summary.cost_usd == pytest.approx(0.007)
    assert summary.per_model["paid"].cost_usd == pytest.approx(0.007)


def test_an_unpriced_model_costs_what_the_provider_reported_else_zero_and_is_listed():
    spend = Spend(PRICES)
    assert spend.record("other", Usage(prompt_tokens=10, completion_tokens=10, cost_usd=0.25)) == 0.25
    assert spend.record("unknown", Usage(prompt_tokens=10, completion_tokens=10)) == 0
    assert spend.summary().unpriced_models == ["unknown"]


def test_a_configured_price_wins_over_the_reported_cost():
    spend = Spend(PRICES)
    assert spend.record("free", Usage(prompt_tokens=10, completion_tokens=10, cost_usd=0.25)) == 0


def test_no_budget_never_stops():
    spend = Spend(PRICES)
    spend.record("paid", Usage(prompt_tokens=10**9))
    spend.check()


def test_check_raises_budget_once_spent_reaches_the_budget():
    spend = Spend(PRICES, budget_usd=0.01)
    spend.record("paid", Usage(prompt_tokens=4000))   # $0.008
    spend.check()
    spend.record("paid", Usage(prompt_tokens=1000))   # $0.010: reached
    with pytest.raises(LLMError) as info:
        spend.check()
    assert info.value.type == "budget"


def test_a_zero_budget_allows_no_request():
    with pytest.raises(LLMError) as info:
        Spend(PRICES, budget_usd=0).check()
    assert info.value.type == "budget"


def test_abort_stops_every_caller_with_authentication():
    spend = Spend(PRICES)
    spend.abort("LLM API key missing or rejected")
    spend.abort("a second reason is ignored")
    assert spend.aborted
    with pytest.raises(LLMError) as info:
        spend.check()
    assert (info.value.type, info.value.message) == ("authentication", "LLM API key missing or rejected")


def test_wait_wakes_up_when_the_run_is_aborted():
    spend = Spend(PRICES)
    threading.Timer(0.1, spend.abort, args=("stop",)).start()
    started = time.monotonic()
    assert spend.wait(10) is True
    assert time.monotonic() - started < 2
    assert Spend().wait(0.01) is False


def test_concurrent_records_lose_nothing():
    spend = Spend(PRICES)

    def work():
        for _ in range(500):
            spend.record("paid", Usage(prompt_tokens=1, completion_tokens=2))

    in_threads(work, 8)
    summary = spend.summary()
    assert (summary.requests, summary.prompt_tokens, summary.completion_tokens) == (4000, 4000, 8000)
    assert summary.cost_usd == pytest.approx(4000 * 22 / 1_000_000)
