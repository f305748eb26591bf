"""LLMClient against a real HTTP server on 127.0.0.1: what it sends, and every failure classified."""

from __future__ import annotations

import logging
import socket
import threading
import time
from email.utils import formatdate

import pytest
from pydantic import SecretStr

from tasks.llm.client import LLMClient, LLMError, parse_retry_after
from tasks.llm.config import LLMConfig
from tests.fake_llm import (
    API_KEY,
    Reply,
    answer,
    no_choices,
    rate_limited,
    server_error,
    slow,
    trickling,
    truncated_json,
    truncated_transfer,
    unauthorized,
)
from tests.helpers import in_threads

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "write a test"}]


@pytest.fixture
def client(llm_config):
    with LLMClient(llm_config) as c:
        yield c


def failure(client: LLMClient, model: str = "m/one", **kw) -> LLMError:
    with pytest.raises(LLMError) as info:
        client.complete(model, MESSAGES, **kw)
    return info.value


def test_a_completion_carries_text_usage_and_duration(fake_llm, client):
    fake_llm.script(answer("hello", prompt_tokens=11, completion_tokens=7))
    completion = client.complete("m/one", MESSAGES)
    assert completion.text == "hello"
    assert (completion.prompt_tokens, completion.completion_tokens) == (11, 7)
    assert 0 <= completion.duration_s < 2
    assert completion.finish_reason == "stop"


def test_the_request_is_an_openai_chat_completion_with_the_key_in_the_header_only(fake_llm, client):
    fake_llm.script(answer("ok"))
    client.complete("m/one", MESSAGES)
    [request] = fake_llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "m/one"
    assert request.body["messages"] == MESSAGES
    assert request.body["max_tokens"] == 512
    assert API_KEY not in str(request.body)


def test_a_base_url_without_v1_posts_to_chat_completions(fake_llm, llm_config):
    fake_llm.script(answer("ok"))
    config = llm_config.model_copy(update={"base_url": fake_llm.base_url.removesuffix("/v1")})
    with LLMClient(config) as client:
        client.complete("m/one", MESSAGES)
    assert fake_llm.requests[0].path == "/chat/completions"


def test_no_key_sends_no_authorization_header(fake_llm, llm_config):
    fake_llm.script(answer("ok"))
    with LLMClient(llm_config.model_copy(update={"api_key": None})) as client:
        client.complete("m/one", MESSAGES)
    assert "authorization" not in fake_llm.requests[0].headers


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_authentication(fake_llm, client, status):
    fake_llm.script(Reply(status=status, body=b'{"error": {"message": "User not found."}}'))
    error = failure(client)
    assert (error.type, error.status) == ("authentication", status)
    assert "key missing or rejected" in error.message


def test_429_is_rate_limit_with_retry_after_seconds(fake_llm, client):
    fake_llm.script(rate_limited("7"), rate_limited(None))
    error = failure(client)
    assert (error.type, error.retry_after) == ("rate_limit", 7.0)
    assert failure(client).retry_after is None


def test_retry_after_as_an_http_date():
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_server(fake_llm, client, status):
    fake_llm.script(server_error(status))
    error = failure(client)
    assert (error.type, error.status) == ("server", status)


def test_an_error_inside_a_200_is_classified_by_its_code(fake_llm, client):
    fake_llm.script(
        Reply(body=b'{"error": {"message": "Provider returned error", "code": 429}}'),
        Reply(body=b'{"error": {"message": "upstream down"}}'),
    )
    assert failure(client).type == "rate_limit"
    assert failure(client).type == "server"


def test_other_4xx_is_an_unusable_request_not_retryable(fake_llm, client):
    fake_llm.script(Reply(status=404, body=b'{"error": {"message": "No endpoints found for m/one."}}'))
    error = failure(client)
    assert (error.type, error.status) == ("invalid_response", 404)
    assert "No endpoints found" in error.message


def test_an_answer_slower_than_the_timeout_is_timeout(fake_llm, client):
    fake_llm.script(slow(5))
    started = time.monotonic()
    error = failure(client)
    assert error.type == "timeout"
    assert time.monotonic() - started < 4  # the client timeout is 2s


def test_a_per_call_timeout_shortens_the_configured_one(fake_llm, client):
    fake_llm.script(slow(3))
    started = time.monotonic()
    assert failure(client, timeout=0.5).type == "timeout"
    assert time.monotonic() - started < 1.5


def test_an_answer_trickling_in_past_the_timeout_is_timeout(fake_llm, client):
    fake_llm.script(trickling(3.0))
    started = time.monotonic()
    error = failure(client, timeout=1.0)
    assert error.type == "timeout" and "answer not complete" in error.message
    assert time.monotonic() - started < 2.5  # bounded as a whole, though each piece came in time


def test_an_answer_in_pieces_within_the_timeout_is_put_together(fake_llm, client):
    fake_llm.script(trickling(0.5))
    assert "def test_add" in client.complete("m/one", MESSAGES).text


def test_closing_ends_the_clients_loop_and_refuses_new_requests(llm_config):
    def loops() -> int:
        return sum(t.name == "covsweep-llm" for t in threading.enumerate())

    before = loops()
    client = LLMClient(llm_config)
    assert loops() == before + 1
    client.close()
    client.close()  # a second close is harmless
    assert loops() == before and client.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.complete("m/one", MESSAGES)


def test_truncated_json_is_invalid_response(fake_llm, client):
    fake_llm.script(truncated_json())
    error = failure(client)
    assert (error.type, error.status) == ("invalid_response", 200)
    assert "not valid JSON" in error.message


def test_a_body_cut_off_mid_transfer_is_invalid_response(fake_llm, client):
    fake_llm.script(truncated_transfer())
    error = failure(client)
    assert error.type == "invalid_response"
    assert "truncated" in error.message


def test_no_choices_is_invalid_response_and_keeps_the_usage_that_was_paid(fake_llm, client):
    fake_llm.script(no_choices(prompt_tokens=40, completion_tokens=0))
    error = failure(client)
    assert error.type == "invalid_response"
    assert error.usage.prompt_tokens == 40


def test_an_empty_message_is_invalid_response(fake_llm, client):
    fake_llm.script(answer(""))
    assert failure(client).type == "invalid_response"


def test_nothing_listening_is_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = LLMConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=SecretStr(API_KEY), models=["m"], request_timeout_s=2
    )
    with LLMClient(config) as client:
        error = failure(client, "m")
    assert error.type == "connection"
    assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_threads_share_one_pool(fake_llm, client):
    """Module tasks run in a thread pool: one client, concurrent calls, connections reused."""
    threads, calls = 6, 5
    fake_llm.script(*[answer(f"a{i}", prompt_tokens=10, completion_tokens=i % 3 + 1) for i in range(threads * calls)])
    results = [
        r
        for batch in in_threads(lambda: [client.complete("m/one", MESSAGES) for _ in range(calls)], threads)
        for r in batch
    ]
    assert len(results) == threads * calls
    assert sum(r.prompt_tokens + r.completion_tokens for r in results) == fake_llm.tokens_served
    assert len({r.client_port for r in fake_llm.requests}) <= threads


def test_the_key_never_appears_in_errors_reprs_or_logs(fake_llm, llm_config, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.script(
        unauthorized(echo_key=True),
        unauthorized(),
        rate_limited("1"),
        server_error(),
        truncated_json(),
        truncated_transfer(),
        slow(5),
    )
    texts = [repr(llm_config), str(llm_config), llm_config.model_dump_json(), str(llm_config.model_dump())]
    errors = []
    with LLMClient(llm_config) as client:
        texts.append(repr(client))
        for _ in range(7):
            errors.append(failure(client))
    for error in errors:
        texts += [str(error), repr(error), error.message, str(error.args)]
    assert [e.type for e in errors] == [
        "authentication",
        "authentication",
        "rate_limit",
        "server",
        "invalid_response",
        "invalid_response",
        "timeout",
    ]
    assert fake_llm.requests[0].headers["authorization"].endswith(API_KEY)  # it was sent ...
    assert "Bearer ***" in errors[0].message  # ... the server echoed it back, and it was masked
    for text in texts + [caplog.text]:
        assert API_KEY not in text
