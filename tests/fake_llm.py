"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions protocol, scripted per test.

    fake.script(code_answer("def test_x(): ..."))            # next request, any model
    fake.script(rate_limited(2), server_error(), model="a")   # the next two requests for model a

A request takes the next reply queued for its model, else the next global one, else an HTTP 500
saying it was not scripted (counted in `unscripted`). Every request is recorded: model, path,
headers, JSON body. Its fixtures `fake_llm` and `llm_config` are registered for all tests by conftest.py."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

API_KEY = "sk-or-v1-covsweep-TEST-SECRET-5f1c0ffee"  # what the tests grep for in texts and logs

VALID_TEST = """\
from tinypkg.calc import add


def test_add():
    assert add(1, 2) == 3
"""


@dataclass
class Reply:
    status: int = 200
    body: bytes | Callable[[dict], bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line: longer than the client timeout -> timeout
    declared_length: int | None = None  # more than len(body): the connection closes mid-body
    usage: tuple[int, int] = (0, 0)  # prompt, completion tokens this reply serves
    trickle_s: float = 0.0  # the body sent in ten pieces over this long


@dataclass
class Recorded:
    path: str
    model: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    client_port: int = 0


def completion_body(
    text: str | None,
    *,
    model: str = "fake/model",
    prompt_tokens: int = 120,
    completion_tokens: int = 80,
    finish_reason: str = "stop",
    cost: float | None = None,
) -> dict:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cost is not None:
        usage["cost"] = cost
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": usage,
    }


def answer(
    text: str,
    *,
    prompt_tokens: int = 120,
    completion_tokens: int = 80,
    finish_reason: str = "stop",
    cost: float | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """A 200 with `text` as the assistant's message and this usage."""
    body = completion_body(
        text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason=finish_reason, cost=cost
    )
    return Reply(
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        usage=(prompt_tokens, completion_tokens),
        delay_s=delay_s,
    )


def code_answer(code: str = VALID_TEST, **kw) -> Reply:
    """A valid answer: a sentence and the code in a ```python fence."""
    return answer(f"Here are the tests:\n\n```python\n{code}```\n\nThey cover the missing lines.", **kw)


def unfenced(code: str = VALID_TEST, **kw) -> Reply:
    """Code without any fence around it."""
    return answer(code, **kw)


def prose(**kw) -> Reply:
    return answer(
        "I would test add() with a few small integers and check the sums. Also consider negative numbers and zero.",
        **kw,
    )


def missing_import(**kw) -> Reply:
    """Code that parses but imports a module nothing provides."""
    return code_answer(
        "import numpy_nonexistent_xyz\nfrom tinypkg.calc import add\n\n\n"
        "def test_add():\n    assert add(1, 2) == numpy_nonexistent_xyz.three\n",
        **kw,
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body=json.dumps({"error": {"message": message, "code": status}}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def rate_limited(retry_after: str | float | None = "1") -> Reply:
    return _error(
        429,
        "Rate limit exceeded: free-models-per-min",
        {"Retry-After": str(retry_after)} if retry_after is not None else {},
    )


def unauthorized(*, echo_key: bool = False) -> Reply:
    """401; with echo_key the error message repeats the Authorization header, as some servers do."""
    if not echo_key:
        return _error(401, "No auth credentials found")

    def body(request: dict) -> bytes:
        sent = request["headers"].get("authorization", "")
        return json.dumps({"error": {"message": f"Invalid credentials: {sent}", "code": 401}}).encode()

    return Reply(status=401, body=body, headers={"Content-Type": "application/json"})


def server_error(status: int = 500) -> Reply:
    return _error(status, "Internal Server Error")


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    """`reply` (a valid answer by default), but only after `seconds`."""
    reply = reply or code_answer()
    reply.delay_s = seconds
    return reply


def trickling(seconds: float, reply: Reply | None = None) -> Reply:
    """`reply` (a valid answer by default), its body sent bit by bit over `seconds`: every piece
    arrives well within a read timeout, the whole answer does not."""
    reply = reply or code_answer()
    reply.trickle_s = seconds
    return reply


def truncated_json(**kw) -> Reply:
    """A complete HTTP response whose JSON body stops half-way."""
    text = json.dumps(completion_body(f"```python\n{VALID_TEST}```", **kw))
    return Reply(body=text[: len(text) // 2].encode(), headers={"Content-Type": "application/json"})


def truncated_transfer(**kw) -> Reply:
    """Content-Length promises more than is sent; the server then closes the connection."""
    text = json.dumps(completion_body(f"```python\n{VALID_TEST}```", **kw)).encode()
    return Reply(body=text[: len(text) // 2], declared_length=len(text), headers={"Content-Type": "application/json"})


def no_choices(**kw) -> Reply:
    body = completion_body(None, **kw)
    body["choices"] = []
    return Reply(
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        usage=(body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]),
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's pool reuses connections
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if self.path.rstrip("/") not in ("/chat/completions", "/v1/chat/completions"):
            self._send(Reply(status=404, body=b'{"error": {"message": "not found"}}'), {})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        model = body.get("model")
        fake._record(
            Recorded(
                path=self.path,
                model=model,
                headers=headers,
                body=body,
                at=time.monotonic(),
                client_port=self.client_address[1],
            )
        )
        reply = fake._next(model)
        self._send(reply, {"headers": headers, "body": body})

    def _send(self, reply: Reply, request: dict) -> None:
        fake = self.server.fake
        if reply.delay_s and fake._released.wait(reply.delay_s):
            self.close_connection = True
            return  # the server is closing
        payload = reply.body(request) if callable(reply.body) else reply.body
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(reply.declared_length or len(payload)))
            if reply.declared_length:
                self.send_header("Connection", "close")
            self.end_headers()
            pieces = 10 if reply.trickle_s else 1
            step = -(-len(payload) // pieces)
            for start in range(0, len(payload), step):
                if start and fake._released.wait(reply.trickle_s / pieces):
                    self.close_connection = True
                    return  # the server is closing
                self.wfile.write(payload[start : start + step])
                self.wfile.flush()
            if reply.declared_length:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        except OSError:
            self.close_connection = True
            return
        fake._served(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeLLM

    def handle_error(self, request, client_address) -> None:  # a client that hung up: not a test failure
        pass


class FakeLLM:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._global: collections.deque[Reply] = collections.deque()
        self._by_model: dict[str, collections.deque[Reply]] = {}
        self._released = threading.Event()
        self.requests: list[Recorded] = []
        self.unscripted = 0
        self.prompt_tokens_served = 0
        self.completion_tokens_served = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-llm"
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def tokens_served(self) -> int:
        return self.prompt_tokens_served + self.completion_tokens_served

    def script(self, *replies: Reply, model: str | None = None) -> FakeLLM:
        with self._lock:
            queue = self._global if model is None else self._by_model.setdefault(model, collections.deque())
            queue.extend(replies)
        return self

    def requests_for(self, model: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def models_requested(self) -> list[str | None]:
        with self._lock:
            return [r.model for r in self.requests]

    def pending(self) -> int:
        with self._lock:
            return len(self._global) + sum(len(q) for q in self._by_model.values())

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next(self, model: str | None) -> Reply:
        with self._lock:
            queue = self._by_model.get(model or "")
            if queue:
                return queue.popleft()
            if self._global:
                return self._global.popleft()
            self.unscripted += 1
        return _error(500, f"fake_llm: no scripted reply for model {model}")

    def _served(self, reply: Reply) -> None:
        with self._lock:
            self.prompt_tokens_served += reply.usage[0]
            self.completion_tokens_served += reply.usage[1]

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def fake_llm():
    server = FakeLLM()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def llm_config(fake_llm):
    """An LLMConfig for the fake server: three models, a known key, short timeouts, no budget."""
    from pydantic import SecretStr

    from blocks.llm import Price
    from tasks.llm.config import LLMConfig

    return LLMConfig(
        base_url=fake_llm.base_url,
        api_key=SecretStr(API_KEY),
        models=["m/one", "m/two", "m/three"],
        prices={
            "m/one": Price(prompt=1.0, completion=2.0),
            "m/two": Price(prompt=3.0, completion=4.0),
            "m/three": Price(),
        },
        request_timeout_s=2.0,
        max_tokens=512,
        breaker_threshold=3,
        breaker_cooldown_s=30.0,
    )
