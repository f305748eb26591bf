"""A chat-completions client for any OpenAI-compatible endpoint, with every failure classified."""

from __future__ import annotations

import asyncio
import email.utils
import json
import threading
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from tasks.llm.config import LLMConfig

LLMErrorType = Literal["connection", "timeout", "authentication", "rate_limit", "server", "invalid_response", "budget"]
BODY_LIMIT = 8 * 1024 * 1024
SNIPPET = 200


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # what the provider says it charged (OpenRouter does), if it says

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    model: str
    finish_reason: str | None = None
    cost_usd: float | None = None

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, cost_usd=self.cost_usd)


class LLMError(Exception):
    """One failed request (or, for `budget`, one refused before it was sent).

    `status` is the HTTP status when there was one; `usage` what a bad answer still cost."""

    def __init__(
        self,
        type: LLMErrorType,
        message: str,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        usage: Usage | None = None,
    ):
        super().__init__(message)
        self.type = type
        self.message = message
        self.retry_after = retry_after
        self.status = status
        self.usage = usage

    def __repr__(self) -> str:
        return f"LLMError(type={self.type!r}, message={self.message!r}, retry_after={self.retry_after!r})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (`120`, `1.5`) or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class LLMClient:
    """One per run: an httpx.AsyncClient, so one connection pool, on an event loop of its own in a
    thread of its own. Module tasks run in the flow's worker threads and call `complete`, which hands
    the request to that loop and waits for its answer: all requests of a run share the loop and pool."""

    def __init__(self, config: LLMConfig, *, max_connections: int = 32):
        self._base_url = config.base_url
        self._max_tokens = config.max_tokens
        self._timeout = config.request_timeout_s
        self._secret = config.api_key.get_secret_value() if config.has_key else ""
        headers = {"X-Title": "covsweep"}  # OpenRouter shows it as the calling app
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        self._http = httpx.AsyncClient(
            base_url=config.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout_s, connect=min(10.0, config.request_timeout_s)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="covsweep-llm", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self._base_url!r})"

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._http.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _error(self, type: LLMErrorType, message: str, retry_after: float | None = None, **kw: Any) -> LLMError:
        return LLMError(type, self._redact(message), retry_after, **kw)

    def complete(self, model: str, messages: list[dict[str, str]], *, timeout: float | None = None) -> Completion:
        """One chat completion, run on the client's loop; call it from any thread but that loop's."""
        if self._loop.is_closed():
            raise RuntimeError("the LLM client is closed")
        return asyncio.run_coroutine_threadsafe(self._acomplete(model, messages, timeout), self._loop).result()

    async def _acomplete(self, model: str, messages: list[dict[str, str]], timeout: float | None) -> Completion:
        """One chat completion, whole within `timeout`; raises LLMError, never an httpx exception."""
        timeout = min(self._timeout, timeout) if timeout else self._timeout
        payload = {"model": model, "messages": messages, "max_tokens": self._max_tokens}
        started = time.monotonic()
        request = self._http.build_request(
            "POST", "chat/completions", json=payload, timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))
        )
        response = None
        try:
            # httpx's read timeout is per chunk: a trickling answer is bounded here, as a whole.
            async with asyncio.timeout(timeout):
                try:
                    response = await self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    raise self._transport_error(model, exc, timeout) from None
                try:
                    body = await self._read(response, model)
                finally:
                    await response.aclose()
        except TimeoutError:
            what = "no answer from " + self._base_url if response is None else "answer not complete"
            raise self._error(
                "timeout",
                f"{model}: {what} within {timeout:.0f}s",
                status=response.status_code if response is not None else None,
            ) from None
        return self._parse(model, response, body, time.monotonic() - started)

    def _transport_error(self, model: str, exc: httpx.TransportError, timeout: float) -> LLMError:
        if isinstance(exc, httpx.TimeoutException):
            return self._error("timeout", f"{model}: no answer from {self._base_url} within {timeout:.0f}s")
        return self._error("connection", f"{model}: cannot reach {self._base_url}: {exc.__class__.__name__}: {exc}")

    async def _read(self, response: httpx.Response, model: str) -> bytes:
        chunks, size = [], 0
        try:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > BODY_LIMIT:
                    raise self._error(
                        "invalid_response",
                        f"{model}: answer larger than {BODY_LIMIT} bytes",
                        status=response.status_code,
                    )
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.TransportError as exc:
            raise self._error(
                "invalid_response",
                f"{model}: answer truncated (HTTP {response.status_code}, {exc.__class__.__name__})",
                status=response.status_code,
            ) from None
        return b"".join(chunks)

    def _parse(self, model: str, response: httpx.Response, body: bytes, duration: float) -> Completion:
        status = response.status_code
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = None
        if status >= 400:
            raise self._status_error(model, status, _error_detail(data, text), response.headers)
        if not isinstance(data, dict):
            raise self._error(
                "invalid_response",
                f"{model}: answer is not valid JSON, cut off or not an API "
                f"response ({_snippet(text, 80) or 'empty body'})",
                status=status,
            )
        usage = _usage(data)
        choices = data.get("choices")
        if not choices:
            if isinstance(data.get("error"), dict):
                # some gateways (OpenRouter among them) answer 200 with the upstream error inside
                code = data["error"].get("code")
                code = code if isinstance(code, int) and code >= 400 else 502
                raise self._status_error(model, code, _error_detail(data, text), response.headers, usage=usage)
            raise self._error("invalid_response", f"{model}: answer has no choices", status=status, usage=usage)
        choice = choices[0] if isinstance(choices, list) and isinstance(choices[0], dict) else {}
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            raise self._error(
                "invalid_response",
                f"{model}: answer is empty (finish_reason {choice.get('finish_reason')!r})",
                status=status,
                usage=usage,
            )
        return Completion(
            text=content,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            duration_s=round(duration, 3),
            model=str(data.get("model") or model),
            finish_reason=choice.get("finish_reason"),
            cost_usd=usage.cost_usd,
        )

    def _status_error(
        self, model: str, status: int, detail: str, headers: httpx.Headers, usage: Usage | None = None
    ) -> LLMError:
        where = f"{model}: HTTP {status} from {self._base_url}"
        detail = f": {detail}" if detail else ""
        if status in (401, 403):
            return self._error(
                "authentication", f"{where}: API key missing or rejected{detail}", status=status, usage=usage
            )
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None and headers.get("retry-after-ms"):
                retry_after = (parse_retry_after(headers.get("retry-after-ms")) or 0) / 1000
            return self._error("rate_limit", f"{where}: rate limited{detail}", retry_after, status=status, usage=usage)
        if status == 408:
            return self._error("timeout", f"{where}{detail}", status=status, usage=usage)
        if status >= 500:
            return self._error("server", f"{where}{detail}", status=status, usage=usage)
        # 400 (context too long, bad parameter), 402 (no credits), 404 (no such model): this model
        # cannot answer this request; nothing a retry of the same request can fix.
        return self._error("invalid_response", f"{where}: request refused{detail}", status=status, usage=usage)


def _snippet(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _error_detail(data: Any, text: str) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _snippet(str(error["message"]))
        if isinstance(error, str):
            return _snippet(error)
    return _snippet(text)


def _usage(data: dict) -> Usage:
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def count(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, (int, float)) and value >= 0 else 0

    cost = usage.get("cost")
    return Usage(
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        cost_usd=float(cost) if isinstance(cost, (int, float)) and cost >= 0 else None,
    )
