"""The LLM generator end to end: the flow, the real sandbox, a scripted chat-completions server
on 127.0.0.1 standing in for the paid LLM."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from flows.spec_to_production import spec_to_production
from tests.fake_llm import (
    API_KEY,
    code_answer,
    prose,
    rate_limited,
    server_error,
    unauthorized,
)
from tests.helpers import SHOP_COUPON_TESTS, SHOP_INVENTORY_TESTS, assert_key_left_nowhere, run_cli

pytestmark = pytest.mark.docker

DISCOUNT_TESTS = (
    """\
import pytest

from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_percent_off():
    assert percent_off(1000, 10) == 900


def test_percent_off_rejects_more_than_all():
    with pytest.raises(ValueError):
        percent_off(1, 101)


def test_threshold():
    assert threshold_discount(20_000) == 18_000
    assert threshold_discount(5) == 5


def test_a_wrong_expectation():
    assert percent_off(100, 50) == 7


"""
    + SHOP_COUPON_TESTS
)


@pytest.fixture
def llm_env(monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)


def test_the_chain_falls_through_to_a_working_model(prefect_api, sandbox_image, example, fake_llm, llm_env):
    fake_llm.script(rate_limited(1), model="m/one")
    fake_llm.script(server_error(), server_error(), server_error(), model="m/two")
    fake_llm.script(code_answer(DISCOUNT_TESTS, prompt_tokens=900, completion_tokens=300), model="m/three")

    report = spec_to_production(
        target=str(example),
        modules=["shop/discounts.py"],
        generator="llm",
        models="m/one,m/two,m/three",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        mutation="off",  # coverage alone ends the rounds: one answer is scripted (tests/test_quality.py: mutation)
    )

    module = report.modules[0]
    assert module.status == "reached_target", module
    assert module.generator == "llm" and module.model_used == "m/three"
    outcomes = [(a.model, a.outcome) for a in module.metadata.attempts]
    assert outcomes[0] == ("m/one", "rate_limit")
    assert ("m/two", "server") in outcomes and outcomes[-1] == ("m/three", "ok")
    # The file with one wrong test keeps its five right ones.
    assert module.tests.accepted >= 4 and module.tests.rejected_failing == 1
    generated = (example / module.generated_files[0]).read_text()
    assert "test_a_wrong_expectation" not in generated and "def test_coupons" in generated
    assert module.metadata.tokens_used == fake_llm.tokens_served == report.totals.tokens_used == 1200


def test_a_module_the_first_answer_covers_gets_one_request(prefect_api, sandbox_image, example, fake_llm, llm_env):
    """Its def and class lines run at import only: between rounds they count as the report counts them,
    so a module the first answer covers completely is not asked about again."""
    fake_llm.script(*[code_answer(SHOP_INVENTORY_TESTS) for _ in range(3)])
    report = spec_to_production(
        target=str(example),
        modules=["shop/inventory.py"],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        mutation="off",  # the coverage target alone ends the rounds here
    )
    module = report.modules[0]
    assert module.coverage_before.line == 0.0
    assert (module.status, module.coverage.line) == ("reached_target", 100.0), module
    assert len(fake_llm.requests) == 1


ROUND_ONE = SHOP_INVENTORY_TESTS[: SHOP_INVENTORY_TESTS.index("def test_release")]  # a part of the module


def test_a_key_rejected_in_round_two_keeps_round_ones_tests_written_and_reported(
    prefect_api, sandbox_image, example, fake_llm, llm_env
):
    fake_llm.script(code_answer(ROUND_ONE), unauthorized())

    report = spec_to_production(
        target=str(example),
        modules=["shop/inventory.py"],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        coverage_target=100.0,
        timeout=150,
        mutation="off",  # coverage alone asks for round two
    )

    module = report.modules[0]
    assert (module.status, module.success, module.error.type) == ("improved", False, "authentication"), module
    assert module.tests.accepted == report.totals.tests_accepted == 1
    generated = (example / module.generated_files[0]).read_text()
    assert "def test_stock_and_reservations" in generated
    assert "stopped-early" in [i.rule for i in module.validation.issues]
    assert module.coverage.line > module.coverage_before.line and len(fake_llm.requests) == 2


@pytest.mark.server
def test_a_rejected_key_ends_the_run_at_once(sandbox_image, example, fake_llm, tmp_path):
    fake_llm.script(*[unauthorized(echo_key=True) for _ in range(20)])
    started = time.monotonic()
    result = run_cli(
        "run",
        str(example),
        "--generator",
        "llm",
        "--models",
        "m/one,m/two",
        "--llm-base-url",
        fake_llm.base_url,
        "--report",
        str(tmp_path / "report.json"),
        env={"COVSWEEP_LLM_API_KEY": API_KEY},
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("covsweep: error:")]
    assert len(errors) == 1 and "the LLM API key" in errors[0], result.stderr[-2000:]
    modules = json.loads((tmp_path / "report.json").read_text())["modules"]
    assert len(fake_llm.requests) <= 2 * len(modules)
    assert {m["error"]["type"] for m in modules if m["error"]} == {"authentication"}
    assert elapsed < 90, elapsed  # nothing waits on retries: the server start and baseline are the cost
    assert API_KEY not in result.stdout + result.stderr


def test_when_every_model_fails_pynguin_steps_in(prefect_api, sandbox_image, example, fake_llm, llm_env):
    fake_llm.script(*[prose() for _ in range(10)])
    report = spec_to_production(
        target=str(example),
        modules=["shop/inventory.py"],
        generator="llm",
        models="m/one,m/two",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        max_iterations=1,
    )
    module = report.modules[0]
    assert module.generator == "pynguin" and module.success, module
    assert any(i.rule == "llm-fallback" for i in module.validation.issues)
    assert module.coverage.line > module.coverage_before.line
    assert module.metadata.tokens_used == fake_llm.tokens_served > 0


def test_the_key_reaches_nothing_a_run_leaves_behind(
    prefect_api, sandbox_image, example, fake_llm, llm_env, capfd, caplog
):
    fake_llm.script(code_answer(DISCOUNT_TESTS), model="m/one")
    spec_to_production(
        target=str(example),
        modules=["shop/discounts.py"],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=120,
    )
    assert fake_llm.requests
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in fake_llm.requests)
    assert_key_left_nowhere(API_KEY, example, capfd, caplog)


def test_stored_reports_feed_metrics_and_the_model_order(prefect_api, sandbox_image, example, fake_llm, llm_env):
    from prefect.settings import PREFECT_API_URL

    fake_llm.script(server_error(), server_error(), server_error(), model="m/bad")
    fake_llm.script(code_answer(DISCOUNT_TESTS), model="m/good")
    report = spec_to_production(
        target=str(example),
        modules=["shop/discounts.py"],
        generator="llm",
        models="m/bad,m/good",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        mutation="off",  # one answer is scripted: no round for the mutation target
    )
    assert report.modules[0].model_used == "m/good"

    result = run_cli("metrics", "--json", "--days", "1", env={"PREFECT_API_URL": PREFECT_API_URL.value()})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = {m["model"]: m for m in json.loads(result.stdout)["models"]}
    assert figures["m/good"]["success_rate"] == 1.0 and figures["m/good"]["coverage_gained"] > 0
    assert figures["m/bad"]["success_rate"] == 0.0

    from tasks.session import rank_models

    assert rank_models.fn(["m/bad", "m/good"], days=1) == ["m/good", "m/bad"]


def test_a_configured_global_rate_limit_paces_requests(prefect_api, sandbox_image, example, fake_llm, llm_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from tasks.llm.fallback import REQUEST_RATE_LIMIT

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=REQUEST_RATE_LIMIT, limit=1, slot_decay_per_second=0.5)
        )
    try:
        fake_llm.script(*[prose() for _ in range(4)])  # rejected answers: each module asks twice
        spec_to_production(
            target=str(example),
            modules=["shop/money.py", "shop/cart.py"],
            generator="llm",
            models="m/one",
            llm_base_url=fake_llm.base_url,
            timeout=60,
            max_iterations=1,
            concurrency=2,
        )
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(REQUEST_RATE_LIMIT)
    times = sorted(r.at for r in fake_llm.requests)
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.5, gaps  # one request per 2 s, across both modules
