"""The LLM generator for one module round: walk the model chain, retry what a retry can fix,
return a test file's source (the caller writes and filters it, as with Pynguin's)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NoReturn

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.core.errors import ModuleError
from tasks.core.log import get_logger
from tasks.core.models import Attempt, ErrorType
from tasks.llm.client import Completion, LLMError, Usage
from tasks.llm.prompts import corrective_message
from tasks.llm.session import LLMSession

TRANSIENT = {"connection", "timeout", "server"}
# `prefect gcl create covsweep-llm-requests --limit 5 --slot-decay-per-second 1` caps requests/second.
REQUEST_RATE_LIMIT = "covsweep-llm-requests"
# The report's error types: a 5xx is the service not being available, like a refused connection.
REPORTED: dict[str, ErrorType] = {"server": "connection"}


class RetryPolicy(BaseModel):
    transient_retries: int = Field(default=2, ge=0, description="extra tries per model after connection/timeout/5xx")
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.25, ge=0, le=1, description="+- this fraction of each delay")
    max_retry_after_s: float = Field(default=10.0, ge=0, description="longest wait a 429's Retry-After gets")
    default_retry_after_s: float = Field(default=1.0, ge=0, description="wait after a 429 without Retry-After")
    min_request_s: float = Field(default=5.0, ge=0, description="no request starts with less time than this left")

    def backoff(self, retry: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return max(0.0, delay * (1 + random.uniform(-self.jitter, self.jitter)))


class LLMGenerated(BaseModel):
    source: str = Field(description="the test file, checked by tasks.llm.answers")
    model: str = Field(description="the model that wrote it")
    attempts: list[Attempt]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_used: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    duration_s: float = 0.0
    conversation: list[dict[str, str]] = Field(description="the messages and this answer: pass to the next round")


class LLMGenerationError(ModuleError):
    """A ModuleError that also carries what the failed round cost, for the report's metadata."""

    def __init__(self, type: ErrorType, message: str, tally: _Tally, *, run_wide: bool = False):
        super().__init__(type, message, run_wide=run_wide)
        self.attempts = list(tally.attempts)
        self.tokens_used, self.cost_usd, self.retries = tally.tokens_used, tally.cost_usd, tally.retries


class _Tally:
    def __init__(self, session: LLMSession):
        self.session = session
        self.attempts: list[Attempt] = []
        self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0

    def attempt(self, model: str, outcome: str, duration: float) -> None:
        self.attempts.append(Attempt(model=model, outcome=outcome, duration_s=round(duration, 3)))

    @property
    def tokens_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    def charge(self, model: str, usage: Usage | None) -> None:
        if usage is None:
            return
        self.cost_usd += self.session.spend.record(model, usage)
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens

    def error(self, type: ErrorType, message: str, *, run_wide: bool = False) -> LLMGenerationError:
        return LLMGenerationError(type, message, self, run_wide=run_wide)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("covsweep.llm")


_limit_configured: dict[object, bool] = {}


def _rate_limit_configured(flow_run_id: object) -> bool:
    """Asked of the server once per flow run, not per request: a missing limit is the common case."""
    if flow_run_id not in _limit_configured:
        try:
            with get_client(sync_client=True) as client:
                client.read_global_concurrency_limit_by_name(REQUEST_RATE_LIMIT)
            _limit_configured[flow_run_id] = True
        except ObjectNotFound:
            _limit_configured[flow_run_id] = False
    return _limit_configured[flow_run_id]


def pace_requests() -> None:
    """Wait for a slot of the global concurrency limit REQUEST_RATE_LIMIT when one is configured
    on the Prefect server (with slot decay: requests per second across every run and worker)."""
    context = TaskRunContext.get()
    if context is not None and _rate_limit_configured(context.task_run.flow_run_id):
        rate_limit(REQUEST_RATE_LIMIT, strict=False)


def _summary(failures: dict[str, LLMError]) -> str:
    return "; ".join(
        exc.message if exc.message.startswith(f"{model}: ") else f"{model}: {exc.message}"
        for model, exc in failures.items()
    )[:800]


def complete_with_fallback(
    session: LLMSession,
    messages: list[dict[str, str]],
    *,
    accept: Callable[[str], str],
    timeout: float,
    policy: RetryPolicy | None = None,
    label: str = "",
) -> LLMGenerated:
    """The first usable answer along the model chain; `accept` turns an answer's text into the
    result or raises LLMError("invalid_response", why). Raises LLMGenerationError (a ModuleError)."""
    return _ChainWalk(session, messages, accept, timeout, policy or RetryPolicy(), label).run()


# What follows a failed request or a rejected answer: the same model again, or the next one.
Next = Literal["retry", "next model"]


@dataclass
class _ModelTurn:
    """One model's turn in the chain: the conversation it is sent and the second chances it used."""

    model: str
    has_next: bool
    conversation: list[dict[str, str]]
    corrected: bool = False
    transient: int = 0


class _ChainWalk:
    """One call of complete_with_fallback: the model chain walked in order within one deadline."""

    def __init__(
        self,
        session: LLMSession,
        messages: list[dict[str, str]],
        accept: Callable[[str], str],
        timeout: float,
        policy: RetryPolicy,
        label: str,
    ):
        self.session, self.messages, self.accept, self.timeout, self.policy = session, messages, accept, timeout, policy
        self.log = _logger()
        self.prefix = f"{label}: " if label else ""
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.tally = _Tally(session)
        self.failures: dict[str, LLMError] = {}

    def run(self) -> LLMGenerated:
        models = self.session.config.models
        for index, model in enumerate(models):
            turn = _ModelTurn(model, has_next=index + 1 < len(models), conversation=list(self.messages))
            if (generated := self.ask(turn)) is not None:
                return generated
        failures = self.failures
        last = list(failures.values())[-1] if failures else LLMError("connection", "no model configured")
        # Every model's breaker open: no module of the run gets an answer until their cooldown ends.
        every_breaker_open = all(self.session.breakers[m].state == "open" for m in models) and bool(models)
        raise self.tally.error(
            REPORTED.get(last.type, last.type),
            f"no model gave a usable answer: {_summary(failures)}",
            run_wide=every_breaker_open,
        )

    def ask(self, turn: _ModelTurn) -> LLMGenerated | None:
        """Requests to one model until it gives a usable answer, or None: on to the next model."""
        breaker = self.session.breakers[turn.model]
        while True:
            self.stop_if_run_stopped()
            remaining = self.time_left()
            if not breaker.allow():
                self.skip_open_breaker(turn.model)
                return None
            pace_requests()
            sent = time.monotonic()
            try:
                completion = self.session.client.complete(turn.model, turn.conversation, timeout=remaining)
            except LLMError as exc:
                step = self.request_failed(turn, exc, time.monotonic() - sent)
            else:
                step = self.answered(turn, completion, time.monotonic() - sent)
            if isinstance(step, LLMGenerated):
                return step
            if step == "next model":
                return None

    def stop_if_run_stopped(self) -> None:
        try:
            self.session.spend.check()
        except LLMError as exc:
            kind = "authentication" if exc.type == "authentication" else "budget"
            raise self.tally.error(kind, exc.message) from None

    def time_left(self) -> float:
        """Seconds left for the next request; raises once too few are left for one."""
        remaining = self.deadline - time.monotonic()
        if remaining < self.policy.min_request_s:
            raise self.tally.error(
                "timeout",
                f"the LLM time budget of {self.timeout:.0f}s ran out after "
                f"{len(self.tally.attempts)} requests" + (f" ({_summary(self.failures)})" if self.failures else ""),
            )
        return remaining

    def spare_s(self) -> float:
        """How long a wait may last and still leave time for one more request."""
        return max(0.0, self.deadline - time.monotonic() - self.policy.min_request_s)

    def skip_open_breaker(self, model: str) -> None:
        breaker = self.session.breakers[model]
        self.log.info("%smodel %s skipped: its circuit breaker is open", self.prefix, model)
        self.failures.setdefault(
            model,
            LLMError(
                breaker.last_error or "connection", f"circuit breaker open after {breaker.last_error or 'failures'}"
            ),
        )

    def request_failed(self, turn: _ModelTurn, exc: LLMError, duration: float) -> Next:
        self.tally.attempt(turn.model, exc.type, duration)
        self.tally.charge(turn.model, exc.usage)
        if exc.type == "authentication":
            self.stop_every_module(exc)
        self.session.breakers[turn.model].record_failure(exc.type)
        self.failures[turn.model] = exc
        if exc.type in TRANSIENT and turn.transient < self.policy.transient_retries:
            turn.transient += 1
            delay = min(self.policy.backoff(turn.transient), self.spare_s())
            self.log.warning("%s%s; retry %d in %.1fs", self.prefix, exc.message, turn.transient, delay)
            self.session.spend.wait(delay)
            return "retry"
        if exc.type == "invalid_response" and not turn.corrected and (exc.status is None or exc.status < 300):
            turn.corrected = True
            self.log.warning("%s%s; asking again once", self.prefix, exc.message)
            turn.conversation = list(self.messages) + [corrective_message(exc.message)]
            return "retry"
        self.move_on(turn, exc)
        return "next model"

    def stop_every_module(self, exc: LLMError) -> NoReturn:
        """A missing or rejected key fails every request of the run: stop them all, not this module only."""
        reason = f"LLM API key missing or rejected by {self.session.config.base_url} ({exc.message})"
        self.session.spend.abort(reason)
        self.log.error("%s%s: stopping every module's LLM requests", self.prefix, reason)
        raise self.tally.error("authentication", reason) from None

    def move_on(self, turn: _ModelTurn, exc: LLMError) -> None:
        """On to the next model; after a 429, first the wait the service asked for (within limits)."""
        if exc.type == "rate_limit" and turn.has_next:
            wait = exc.retry_after if exc.retry_after is not None else self.policy.default_retry_after_s
            wait = min(wait, self.policy.max_retry_after_s, self.spare_s())
            self.log.warning("%s%s; next model in %.1fs", self.prefix, exc.message, wait)
            self.session.spend.wait(wait)
        else:
            self.log.warning("%s%s; %s", self.prefix, exc.message, "next model" if turn.has_next else "no model left")

    def answered(self, turn: _ModelTurn, completion: Completion, duration: float) -> LLMGenerated | Next:
        self.tally.charge(turn.model, completion.usage)
        self.session.breakers[turn.model].record_success()  # the service answered; what it said is judged below
        try:
            source = self.accept(completion.text)
        except LLMError as exc:
            return self.rejected(turn, completion, exc, duration)
        self.tally.attempt(turn.model, "ok", duration)
        self.log.info(
            "%s%s answered in %.1fs (%d+%d tokens)",
            self.prefix,
            turn.model,
            duration,
            completion.prompt_tokens,
            completion.completion_tokens,
        )
        tally = self.tally
        return LLMGenerated(
            source=source,
            model=turn.model,
            attempts=tally.attempts,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
            tokens_used=tally.tokens_used,
            cost_usd=round(tally.cost_usd, 6),
            retries=tally.retries,
            duration_s=round(time.monotonic() - self.started, 3),
            conversation=list(self.messages) + [{"role": "assistant", "content": completion.text}],
        )

    def rejected(self, turn: _ModelTurn, completion: Completion, exc: LLMError, duration: float) -> Next:
        """An answer `accept` refused: the model is asked once to correct it, then the chain moves on."""
        message = f"{turn.model}: {exc.message}"
        if completion.finish_reason == "length":
            message += " (the answer was cut off at the token limit: write fewer, shorter tests)"
        self.tally.attempt(turn.model, "invalid_response", duration)
        self.failures[turn.model] = LLMError("invalid_response", message)
        if not turn.corrected:
            turn.corrected = True
            self.log.warning("%sanswer rejected: %s; asking again once", self.prefix, message)
            turn.conversation = list(self.messages) + [
                {"role": "assistant", "content": completion.text},
                corrective_message(message.removeprefix(f"{turn.model}: ")),
            ]
            return "retry"
        self.log.warning(
            "%sanswer rejected again: %s; %s",
            self.prefix,
            message,
            "next model" if turn.has_next else "no model left",
        )
        return "next model"
