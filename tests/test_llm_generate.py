"""generate_with_llm against a real HTTP server on 127.0.0.1: model fallback, retries, the
run-wide stops (rejected key, budget), what was spent, and a key that never leaks."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tasks.core.errors import ModuleError
from tasks.core.models import FileCoverage
from tasks.generators.llm import generate_with_llm
from tasks.llm.answers import extract_test_source
from tasks.llm.config import spec_of
from tasks.llm.fallback import LLMGenerationError, RetryPolicy, complete_with_fallback
from tasks.llm.session import LLMSession, llm_session, session_in_use
from tasks.project.discover import discover
from tests.fake_llm import (
    API_KEY,
    VALID_TEST,
    code_answer,
    missing_import,
    prose,
    rate_limited,
    server_error,
    slow,
    truncated_json,
    truncated_transfer,
    unauthorized,
    unfenced,
)
from tests.helpers import in_threads, write_project

FAST = RetryPolicy(
    backoff_base_s=0.01, backoff_max_s=0.05, max_retry_after_s=2.0, default_retry_after_s=0.01, min_request_s=0.1
)
MESSAGES = [{"role": "system", "content": "write tests"}, {"role": "user", "content": "for add()"}]

CALC = """
def add(a, b):
    return a + b


def sign(n):
    if n < 0:
        return -1
    return 1
"""


@pytest.fixture
def session(llm_config):
    with LLMSession(llm_config) as s:
        yield s


@pytest.fixture
def project(tmp_path):
    root = write_project(
        tmp_path / "tiny",
        {
            "src/tinypkg/__init__.py": "",
            "src/tinypkg/calc.py": CALC,
            "tests/test_calc.py": "from tinypkg.calc import add\n\n\ndef test_add():\n    assert add(1, 1) == 2\n",
        },
    )
    return discover(root, None)


@pytest.fixture
def module(project):
    return next(m for m in project.modules if m.dotted == "tinypkg.calc")


COVERAGE = FileCoverage(
    statements=[2, 3, 6, 7, 8, 9], executed_lines=[2, 3, 6], branches=[(7, 8), (7, 9)], executed_branches=[]
)


def run(session, *, timeout: float = 30, policy: RetryPolicy = FAST, messages=MESSAGES):
    return complete_with_fallback(session, messages, accept=extract_test_source, timeout=timeout, policy=policy)


def failed(session, **kw) -> LLMGenerationError:
    with pytest.raises(LLMGenerationError) as info:
        run(session, **kw)
    assert isinstance(info.value, ModuleError)  # the caller's `except ModuleError` catches it
    return info.value


def outcomes(result) -> list[tuple[str, str]]:
    return [(a.model, a.outcome) for a in result.attempts]


def test_the_first_model_answers(fake_llm, session):
    fake_llm.script(code_answer(prompt_tokens=1000, completion_tokens=500), model="m/one")
    result = run(session)
    assert result.source == VALID_TEST
    assert result.model == "m/one"
    assert outcomes(result) == [("m/one", "ok")]
    assert (result.prompt_tokens, result.completion_tokens, result.tokens_used) == (1000, 500, 1500)
    assert result.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert result.retries == 0
    assert result.conversation[:2] == MESSAGES
    assert result.conversation[-1]["role"] == "assistant" and VALID_TEST in result.conversation[-1]["content"]
    assert fake_llm.requests[0].body["messages"] == MESSAGES


def test_fallback_429_then_500_then_the_third_model_answers(fake_llm, session):
    fake_llm.script(rate_limited("1"), model="m/one")
    fake_llm.script(server_error(), server_error(), server_error(), model="m/two")
    fake_llm.script(code_answer(prompt_tokens=300, completion_tokens=200), model="m/three")
    started = time.monotonic()
    result = run(session)
    assert result.model == "m/three" and result.source == VALID_TEST
    assert fake_llm.models_requested() == ["m/one", "m/two", "m/two", "m/two", "m/three"]
    assert outcomes(result) == [
        ("m/one", "rate_limit"),
        ("m/two", "server"),
        ("m/two", "server"),
        ("m/two", "server"),
        ("m/three", "ok"),
    ]
    assert result.retries == 4
    # Retry-After: 1 was honoured before the next request
    gap = fake_llm.requests_for("m/two")[0].at - fake_llm.requests_for("m/one")[0].at
    assert gap >= 0.95
    assert time.monotonic() - started < 10
    assert result.tokens_used == fake_llm.tokens_served == 500
    assert fake_llm.unscripted == 0


def test_retry_after_is_bounded(fake_llm, session):
    fake_llm.script(rate_limited("3600"), model="m/one")
    fake_llm.script(code_answer(), model="m/two")
    started = time.monotonic()
    assert run(session, policy=FAST.model_copy(update={"max_retry_after_s": 0.2})).model == "m/two"
    assert time.monotonic() - started < 3


def test_transient_errors_are_retried_on_the_same_model_with_backoff(fake_llm, session):
    fake_llm.script(server_error(503), truncated_transfer(), code_answer(), model="m/one")
    result = run(session)
    # a cut-off transfer is an invalid response: one corrective retry, still the same model
    assert outcomes(result) == [("m/one", "server"), ("m/one", "invalid_response"), ("m/one", "ok")]


def test_401_stops_at_once_without_retries_and_aborts_the_run(fake_llm, session):
    fake_llm.script(unauthorized(), model="m/one")
    fake_llm.script(code_answer(), code_answer(), model="m/two")
    error = failed(session)
    assert error.info.type == "authentication"
    assert "key missing or rejected" in error.info.message
    assert len(fake_llm.requests) == 1
    assert [(a.model, a.outcome) for a in error.attempts] == [("m/one", "authentication")]
    assert session.spend.aborted
    # every other module stops before sending anything
    again = failed(session)
    assert again.info.type == "authentication" and again.attempts == []
    assert len(fake_llm.requests) == 1


def test_the_abort_reaches_a_module_waiting_to_retry(fake_llm, session):
    fake_llm.script(server_error(), model="m/one")
    slow_policy = FAST.model_copy(update={"backoff_base_s": 5.0, "backoff_max_s": 5.0, "jitter": 0.0})
    threading.Timer(0.3, session.spend.abort, args=("key rejected",)).start()
    started = time.monotonic()
    error = failed(session, policy=slow_policy)
    assert error.info.type == "authentication"
    assert time.monotonic() - started < 3
    assert len(fake_llm.requests) == 1


def test_the_budget_stops_new_requests(fake_llm, llm_config):
    # m/two costs $3 + $4 per million: 100k + 50k tokens are $0.5
    config = llm_config.model_copy(update={"models": ["m/two"], "budget_usd": 0.4})
    fake_llm.script(code_answer(prompt_tokens=100_000, completion_tokens=50_000), code_answer())
    with LLMSession(config) as session:
        first = run(session)
        assert first.cost_usd == pytest.approx(0.5)
        error = failed(session)
    assert error.info.type == "budget"
    assert len(fake_llm.requests) == 1 and fake_llm.pending() == 1


def test_a_zero_budget_sends_nothing(fake_llm, llm_config):
    with LLMSession(llm_config.model_copy(update={"budget_usd": 0.0})) as session:
        assert failed(session).info.type == "budget"
    assert fake_llm.requests == []


def test_a_slow_answer_times_out_and_is_classified_timeout(fake_llm, llm_config):
    config = llm_config.model_copy(update={"models": ["m/one"], "request_timeout_s": 0.5})
    fake_llm.script(slow(5), model="m/one")
    with LLMSession(config) as session:
        started = time.monotonic()
        error = failed(session, policy=FAST.model_copy(update={"transient_retries": 0}))
    assert error.info.type == "timeout"
    assert [(a.model, a.outcome) for a in error.attempts] == [("m/one", "timeout")]
    assert time.monotonic() - started < 2.5


def test_the_round_time_budget_is_kept(fake_llm, llm_config):
    config = llm_config.model_copy(update={"request_timeout_s": 10})
    fake_llm.script(slow(5), slow(5), slow(5))
    with LLMSession(config) as session:
        started = time.monotonic()
        error = failed(session, timeout=1.0)
    assert error.info.type == "timeout"
    assert time.monotonic() - started < 2.5


def test_truncated_json_gets_one_corrective_retry(fake_llm, session):
    fake_llm.script(truncated_json(), code_answer(), model="m/one")
    result = run(session)
    assert outcomes(result) == [("m/one", "invalid_response"), ("m/one", "ok")]
    retry = fake_llm.requests[1].body["messages"]
    assert retry[:2] == MESSAGES
    assert retry[-1]["role"] == "user" and "could not be used" in retry[-1]["content"]


def test_prose_twice_moves_on_after_exactly_one_corrective_retry(fake_llm, session):
    fake_llm.script(
        prose(prompt_tokens=10, completion_tokens=5), prose(prompt_tokens=20, completion_tokens=5), model="m/one"
    )
    fake_llm.script(code_answer(prompt_tokens=30, completion_tokens=5), model="m/two")
    result = run(session)
    assert outcomes(result) == [("m/one", "invalid_response"), ("m/one", "invalid_response"), ("m/two", "ok")]
    correction = fake_llm.requests_for("m/one")[1].body["messages"]
    assert correction[-2]["role"] == "assistant" and "I would test add()" in correction[-2]["content"]
    assert "only prose" in correction[-1]["content"]
    assert fake_llm.requests_for("m/two")[0].body["messages"] == MESSAGES  # a fresh start
    # rejected answers were paid for: they count
    assert result.tokens_used == fake_llm.tokens_served == 75
    assert session.spend.summary().tokens_used == 75


def test_code_outside_a_fence_is_accepted(fake_llm, session):
    fake_llm.script(unfenced(), model="m/one")
    assert run(session).source == VALID_TEST


def test_every_model_failing_raises_the_last_error_type_with_what_was_spent(fake_llm, session):
    fake_llm.script(rate_limited("0"), model="m/one")
    fake_llm.script(prose(), prose(), model="m/two")
    fake_llm.script(server_error(), server_error(), server_error(), model="m/three")
    error = failed(session)
    assert error.info.type == "connection"  # a 5xx is reported as the service not available
    assert "m/one" in error.info.message and "m/three" in error.info.message
    assert len(error.attempts) == 6 and error.retries == 5
    assert error.tokens_used == fake_llm.tokens_served == 400


def test_invalid_answers_everywhere_raise_invalid_response(fake_llm, llm_config):
    with LLMSession(llm_config.model_copy(update={"models": ["m/one"]})) as session:
        fake_llm.script(prose(), truncated_json(), model="m/one")
        assert failed(session).info.type == "invalid_response"


def test_an_open_breaker_skips_its_model_for_every_module(fake_llm, llm_config):
    config = llm_config.model_copy(update={"breaker_threshold": 2})
    policy = FAST.model_copy(update={"transient_retries": 1})
    fake_llm.script(server_error(), server_error(), model="m/one")
    fake_llm.script(code_answer(), code_answer(), model="m/two")
    with LLMSession(config) as session:
        first = run(session, policy=policy)
        assert outcomes(first) == [("m/one", "server"), ("m/one", "server"), ("m/two", "ok")]
        assert session.breakers["m/one"].state == "open"
        second = run(session, policy=policy)
    assert outcomes(second) == [("m/two", "ok")]
    assert len(fake_llm.requests_for("m/one")) == 2


def test_the_breaker_can_be_turned_off(fake_llm, llm_config):
    config = llm_config.model_copy(update={"models": ["m/one"], "breaker_threshold": 1, "circuit_breaker": False})
    fake_llm.script(server_error(), code_answer(), model="m/one")
    with LLMSession(config) as session:
        assert failed(session, policy=FAST.model_copy(update={"transient_retries": 0})).info.type == "connection"
        assert outcomes(run(session)) == [("m/one", "ok")]


def test_modules_in_threads_share_the_session_and_its_accounting(fake_llm, session):
    modules = 6
    fake_llm.script(*[code_answer(prompt_tokens=100 + i, completion_tokens=10 * i) for i in range(modules)])
    results = in_threads(lambda: run(session), modules)
    assert len(results) == modules
    summary = session.spend.summary()
    assert summary.tokens_used == sum(r.tokens_used for r in results) == fake_llm.tokens_served
    assert summary.requests == modules
    assert summary.cost_usd == pytest.approx(sum(r.cost_usd for r in results))


def test_generate_with_llm_prompts_for_the_module_and_checks_its_imports(fake_llm, session, project, module):
    fake_llm.script(missing_import(), code_answer(), model="m/one")
    # A job's reference to the project: `tinypkg` is known to be the project's through its files.
    result = generate_with_llm(session, project.ref(), module, COVERAGE, timeout=30, policy=FAST)
    assert result.source == VALID_TEST
    assert outcomes(result) == [("m/one", "invalid_response"), ("m/one", "ok")]
    first = fake_llm.requests[0].body["messages"]
    assert [m["role"] for m in first] == ["system", "user"]
    assert "`tinypkg.calc`" in first[1]["content"] and ">> " in first[1]["content"]
    assert "numpy_nonexistent_xyz" in fake_llm.requests[1].body["messages"][-1]["content"]


def test_a_refinement_round_continues_the_conversation(fake_llm, session, project, module):
    fake_llm.script(code_answer(), code_answer(), model="m/one")
    first = generate_with_llm(session, project, module, COVERAGE, timeout=30, policy=FAST)
    now = COVERAGE.model_copy(update={"executed_lines": [2, 3, 6, 7, 8], "executed_branches": [(7, 8)]})
    generate_with_llm(
        session,
        project,
        module,
        now,
        timeout=30,
        policy=FAST,
        conversation=first.conversation,
        failures="FAILED test_x - assert 1 == 2",
        kept=["test_add"],
    )
    sent = fake_llm.requests[1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "FAILED test_x - assert 1 == 2" in sent[-1]["content"]
    assert "line 9" in sent[-1]["content"] and "test_add" in sent[-1]["content"]


def test_a_process_shares_one_session_per_spec_and_closes_it_after_its_last_user(llm_config, monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    spec = spec_of(llm_config, "run-1")
    with llm_session(spec) as first:
        with llm_session(spec_of(llm_config, "run-1")) as second:  # an equal spec, as another task gets it
            assert second is first and session_in_use(spec) is first
        assert not first.client.closed
        with llm_session(spec_of(llm_config, "run-2")) as other:
            assert other is not first
    assert first.client.closed and other.client.closed
    with pytest.raises(LookupError):
        session_in_use(spec)


def test_the_key_is_read_where_the_session_opens_never_carried_by_the_spec(fake_llm, llm_config, monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    spec = spec_of(llm_config, "run-1")
    assert API_KEY not in spec.model_dump_json()
    fake_llm.script(code_answer(), model="m/one")
    with llm_session(spec) as session:
        run(session)
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_the_key_never_appears_in_errors_reprs_or_logs(fake_llm, llm_config, caplog):
    caplog.set_level(logging.DEBUG)
    config = llm_config.model_copy(update={"request_timeout_s": 0.5})
    fake_llm.script(slow(3), server_error(), server_error(), model="m/one")
    fake_llm.script(truncated_json(), prose(), model="m/two")
    fake_llm.script(unauthorized(echo_key=True), model="m/three")
    texts = []
    with LLMSession(config) as session:
        error = failed(session)
        texts += [
            repr(session),
            repr(session.client),
            repr(session.config),
            session.config.model_dump_json(),
            str(error),
            repr(error),
            error.info.model_dump_json(),
            str(error.attempts),
            repr(session.spend.summary()),
            session.spend.abort_reason,
        ]
    assert error.info.type == "authentication"
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
    assert caplog.records, "the failures were logged"
    for text in texts + [caplog.text] + [r.getMessage() for r in caplog.records]:
        assert API_KEY not in text
