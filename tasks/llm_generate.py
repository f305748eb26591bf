"""The LLM generator for one module round: walk the model chain, retry what a retry can fix,
return a test file's source (the caller writes and filters it, as with Pynguin's)."""

from __future__ import annotations

import ast
import logging
import random
import time
from typing import Callable

from prefect.client.orchestration import get_client
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.concurrency.sync import rate_limit
from prefect.context import TaskRunContext
from prefect.logging import get_logger, get_run_logger
from pydantic import BaseModel, Field

from tasks.llm_answer import extract_test_source, known_modules
from tasks.llm_client import LLMError, Usage
from tasks.llm_session import LLMSession
from tasks.models import Attempt, ErrorType, FileCoverage, Module, ModuleError, Project
from tasks.prompt import corrective_message, initial_messages, refinement_message

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
    source: str = Field(description="the test file, checked by tasks.llm_answer")
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

    def __init__(self, type: ErrorType, message: str, tally: "_Tally"):
        super().__init__(type, message)
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

    def error(self, type: ErrorType, message: str) -> LLMGenerationError:
        return LLMGenerationError(type, message, self)


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
    return "; ".join(exc.message if exc.message.startswith(f"{model}: ") else f"{model}: {exc.message}"
                     for model, exc in failures.items())[:800]


def complete_with_fallback(session: LLMSession, messages: list[dict[str, str]], *, accept: Callable[[str], str],
                           timeout: float, policy: RetryPolicy | None = None, label: str = "") -> LLMGenerated:
    """The first usable answer along the model chain; `accept` turns an answer's text into the
    result or raises LLMError("invalid_response", why). Raises LLMGenerationError (a ModuleError)."""
    policy = policy or RetryPolicy()
    log = _logger()
    prefix = f"{label}: " if label else ""
    started = time.monotonic()
    deadline = started + timeout
    tally = _Tally(session)
    failures: dict[str, LLMError] = {}
    models = session.config.models

    def stop_if_run_stopped() -> None:
        try:
            session.spend.check()
        except LLMError as exc:
            raise tally.error("authentication" if exc.type == "authentication" else "budget", exc.message) from None

    for index, model in enumerate(models):
        breaker = session.breakers[model]
        has_next = index + 1 < len(models)
        conversation, corrected, transient = list(messages), False, 0
        while True:
            stop_if_run_stopped()
            remaining = deadline - time.monotonic()
            if remaining < policy.min_request_s:
                raise tally.error("timeout", f"the LLM time budget of {timeout:.0f}s ran out after "
                                             f"{len(tally.attempts)} requests" +
                                  (f" ({_summary(failures)})" if failures else ""))
            if not breaker.allow():
                log.info("%smodel %s skipped: its circuit breaker is open", prefix, model)
                failures.setdefault(model, LLMError(breaker.last_error or "connection",
                                                    f"circuit breaker open after {breaker.last_error or 'failures'}"))
                break
            pace_requests()
            sent = time.monotonic()
            try:
                completion = session.client.complete(model, conversation, timeout=remaining)
            except LLMError as exc:
                tally.attempt(model, exc.type, time.monotonic() - sent)
                tally.charge(model, exc.usage)
                if exc.type == "authentication":
                    reason = f"LLM API key missing or rejected by {session.config.base_url} ({exc.message})"
                    session.spend.abort(reason)
                    log.error("%s%s: stopping every module's LLM requests", prefix, reason)
                    raise tally.error("authentication", reason) from None
                breaker.record_failure(exc.type)
                failures[model] = exc
                if exc.type in TRANSIENT and transient < policy.transient_retries:
                    transient += 1
                    delay = min(policy.backoff(transient), max(0.0, deadline - time.monotonic() - policy.min_request_s))
                    log.warning("%s%s; retry %d in %.1fs", prefix, exc.message, transient, delay)
                    session.spend.wait(delay)
                    continue
                if exc.type == "invalid_response" and not corrected and (exc.status is None or exc.status < 300):
                    corrected = True
                    log.warning("%s%s; asking again once", prefix, exc.message)
                    conversation = list(messages) + [corrective_message(exc.message)]
                    continue
                if exc.type == "rate_limit" and has_next:
                    wait = exc.retry_after if exc.retry_after is not None else policy.default_retry_after_s
                    wait = min(wait, policy.max_retry_after_s,
                               max(0.0, deadline - time.monotonic() - policy.min_request_s))
                    log.warning("%s%s; next model in %.1fs", prefix, exc.message, wait)
                    session.spend.wait(wait)
                else:
                    log.warning("%s%s; %s", prefix, exc.message, "next model" if has_next else "no model left")
                break
            duration = time.monotonic() - sent
            tally.charge(model, completion.usage)
            breaker.record_success()  # the service answered; what it said is judged below
            try:
                source = accept(completion.text)
            except LLMError as exc:
                message = f"{model}: {exc.message}"
                if completion.finish_reason == "length":
                    message += " (the answer was cut off at the token limit: write fewer, shorter tests)"
                tally.attempt(model, "invalid_response", duration)
                failures[model] = LLMError("invalid_response", message)
                if not corrected:
                    corrected = True
                    log.warning("%sanswer rejected: %s; asking again once", prefix, message)
                    conversation = list(messages) + [{"role": "assistant", "content": completion.text},
                                                     corrective_message(message.removeprefix(f"{model}: "))]
                    continue
                log.warning("%sanswer rejected again: %s; %s", prefix, message,
                            "next model" if has_next else "no model left")
                break
            tally.attempt(model, "ok", duration)
            log.info("%s%s answered in %.1fs (%d+%d tokens)", prefix, model, duration,
                     completion.prompt_tokens, completion.completion_tokens)
            return LLMGenerated(
                source=source, model=model, attempts=tally.attempts, prompt_tokens=tally.prompt_tokens,
                completion_tokens=tally.completion_tokens,
                tokens_used=tally.tokens_used, cost_usd=round(tally.cost_usd, 6),
                retries=tally.retries, duration_s=round(time.monotonic() - started, 3),
                conversation=list(messages) + [{"role": "assistant", "content": completion.text}],
            )
    last = list(failures.values())[-1] if failures else LLMError("connection", "no model configured")
    raise tally.error(REPORTED.get(last.type, last.type), f"no model gave a usable answer: {_summary(failures)}")


def _trim(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """system + first prompt + the last answer: earlier rounds' files are not needed any more."""
    head = conversation[:2]
    last = [m for m in conversation[2:] if m.get("role") == "assistant"][-1:]
    return head + last


def _top_level_imports(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def generate_with_llm(session: LLMSession, project: Project, module: Module, coverage: FileCoverage, *,
                      timeout: float, conversation: list[dict[str, str]] | None = None, failures: str = "",
                      kept: list[str] | None = None, policy: RetryPolicy | None = None) -> LLMGenerated:
    """One round of LLM tests for `module`.

    First round: conversation=None, coverage = the baseline. Later rounds: the previous result's
    `conversation`, coverage with what the kept tests execute now, and the filter's output as
    `failures`. Raises LLMGenerationError (a ModuleError: authentication, budget, timeout,
    connection, rate_limit or invalid_response) when no model gave a usable answer."""
    source = module.file.read_text(encoding="utf-8", errors="replace")
    if conversation:
        messages = _trim(conversation) + [refinement_message(module, coverage, failures, kept=kept, source=source)]
    else:
        messages = initial_messages(project, module, coverage, source=source)
    allowed = _top_level_imports(source)
    known = known_modules({m.dotted.split(".")[0] for m in project.modules}, allowed)

    def accept(text: str) -> str:
        return extract_test_source(text, allowed=allowed, known=known)

    return complete_with_fallback(session, messages, accept=accept, timeout=timeout, policy=policy,
                                  label=module.path)
