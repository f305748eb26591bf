"""Per-run LLM accounting: tokens, cost from prices, the budget, the run-wide abort."""

from __future__ import annotations

import threading
import time

import pytest

from blocks.llm import Price
from tasks.llm.client import LLMError, Usage
from tasks.llm.spend import Spend
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
    spend.record("paid", Usage(prompt_tokens=4000))  # $0.008
    spend.check()
    spend.record("paid", Usage(prompt_tokens=1000))  # $0.010: reached
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


# -- one spend for a run whose module tasks run in several processes: the Prefect server holds it ----


@pytest.fixture
def shared(prefect_api):
    """make(budget) -> the run's spec with its spend limit made; workers(n) -> n SharedSpends of that
    run, each with a Prefect client of its own, as n worker processes have."""
    from prefect.client.orchestration import get_client

    from tasks.core.llm import LLMSettings, LLMSpec
    from tasks.llm.spend import SharedSpend, create_spend_limit, delete_spend_limit

    clients, specs = [], []

    def client():
        clients.append(get_client(sync_client=True).__enter__())
        return clients[-1]

    def make(budget: float | None, run_id: str = "spend-run") -> LLMSpec:
        spec = LLMSpec(run_id=run_id, settings=LLMSettings(prices=PRICES, budget_usd=budget), shared_spend=True)
        create_spend_limit(client(), spec)
        specs.append(spec)
        return spec

    def workers(spec: LLMSpec, count: int) -> list[SharedSpend]:
        return [SharedSpend(spec, client()) for _ in range(count)]

    yield make, workers
    for spec in specs:
        delete_spend_limit(clients[0], spec)
    for c in clients:
        c.__exit__(None, None, None)


def test_concurrent_records_from_several_workers_add_up_exactly_on_the_server(shared):
    make, workers = shared
    spec = make(budget=None)
    first, second = workers(spec, 2)

    def work():
        for spend in (first, second):
            for _ in range(5):
                spend.record("paid", Usage(prompt_tokens=1000, completion_tokens=23))  # 2230 micro-dollars

    in_threads(work, 6)
    assert first.spent_usd == second.spent_usd == pytest.approx(60 * 0.00223)
    assert first.summary().requests == second.summary().requests == 30  # each process keeps its own too


def test_the_budget_holds_across_workers_and_stops_them_all(shared):
    make, workers = shared
    first, second, third = workers(make(budget=0.01), 3)
    first.record("paid", Usage(prompt_tokens=3000))  # $0.006
    for spend in (first, second, third):
        spend.check()
    in_threads(lambda: second.record("paid", Usage(prompt_tokens=1500)), 2)  # $0.006 more: past the budget
    for spend in (first, second, third):
        with pytest.raises(LLMError) as info:
            spend.check()
        assert info.value.type == "budget"
    assert third.spent_usd == pytest.approx(0.01)  # the count stops at the budget


def test_a_zero_budget_stops_every_worker_before_any_request(shared):
    make, workers = shared
    [spend] = workers(make(budget=0.0), 1)
    with pytest.raises(LLMError) as info:
        spend.check()
    assert info.value.type == "budget"


def test_a_rejected_key_in_one_worker_stops_the_others_and_wakes_their_waits(shared):
    make, workers = shared
    first, second = workers(make(budget=None), 2)
    threading.Timer(0.2, first.abort, args=("LLM API key missing or rejected by http://x (HTTP 401)",)).start()
    started = time.monotonic()
    assert second.wait(8) is True  # a backoff cut short: the run stopped elsewhere
    assert time.monotonic() - started < 6
    with pytest.raises(LLMError) as info:
        second.check()
    assert info.value.type == "authentication" and "another worker" in info.value.message


def test_a_retried_run_keeps_what_it_spent_and_is_no_longer_stopped(shared):
    make, workers = shared
    spec = make(budget=1.0)
    [spend] = workers(spec, 1)
    spend.record("paid", Usage(prompt_tokens=1000))
    spend.abort("rejected")
    make(budget=1.0)  # the flow run again, same run id
    [again] = workers(spec, 1)
    again.check()
    assert again.spent_usd == pytest.approx(0.002)


def test_a_run_whose_spend_limit_is_gone_sends_nothing(shared):
    from prefect.client.orchestration import get_client

    from tasks.llm.spend import delete_spend_limit

    make, workers = shared
    spec = make(budget=None)
    [spend] = workers(spec, 1)
    with get_client(sync_client=True) as client:
        delete_spend_limit(client, spec)
    with pytest.raises(LLMError) as info:
        spend.check()
    assert info.value.type == "budget" and spec.spend_limit in info.value.message


def test_the_spend_limits_of_runs_that_ended_without_deleting_theirs_are_swept(shared):
    import uuid

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from tasks.llm.spend import remove_stale_spend_limits

    @flow(name="covsweep-spend-sweep-test")
    def a_flow() -> None:
        pass

    make, _ = shared
    with get_client(sync_client=True) as client:
        running = client.create_flow_run(a_flow)  # scheduled, not ended: its limit stays
        live, killed = make(budget=None, run_id=str(running.id)), make(budget=None, run_id=str(uuid.uuid4()))
        removed = remove_stale_spend_limits(client)
        assert killed.spend_limit in removed and live.spend_limit not in removed
        client.read_global_concurrency_limit_by_name(live.spend_limit)
        with pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name(killed.spend_limit)
