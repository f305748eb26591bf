"""One generation round per generator: each writes a candidate test file into the module's
workspace and charges what it cost to the module's result; filtering is the same for all."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tasks.core.errors import ModuleError
from tasks.core.models import Attempt, FileCoverage, ModuleResult
from tasks.core.settings import load
from tasks.coverage.filtering import Covered, FilterResult
from tasks.generators.examples import offline_round
from tasks.generators.llm import generate_with_llm
from tasks.generators.openhands import OpenHandsSetup, generate_with_openhands
from tasks.generators.pynguin import Aim, generate_with_pynguin
from tasks.llm.fallback import LLMGenerated, LLMGenerationError
from tasks.llm.session import session_in_use

PYNGUIN_SEARCH_SHARE = 0.15


class Round(Protocol):
    def __call__(self, round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path: ...


def covered_as_file(baseline: FileCoverage, covered: Covered) -> FileCoverage:
    return FileCoverage(
        **(
            baseline.model_dump()
            | {"executed_lines": sorted(covered.lines), "executed_branches": sorted(covered.branches)}
        )
    )


def pynguin_aim(job, covered: Covered, feedback: FilterResult | None) -> Aim:
    """The lines Pynguin's search is spent on: the changed ones no test runs yet (--changed-since), else,
    once earlier rounds kept tests, every line no test runs yet, else (coverage done, mutation score not)
    the surviving mutants' lines; nothing kept yet: the whole module (line ranges would add nothing,
    and 0.48 fails on some modules with them). It stops at its plateau at --coverage-target of them."""
    baseline = job.baseline or FileCoverage()
    missed = set(baseline.statements) - covered.lines
    changed = missed.intersection(job.changed_lines or [])
    kept_some = bool(covered.lines - set(baseline.executed_lines))
    survivors = {m.line for m in feedback.survivors} if feedback else set()
    lines = changed or (missed or survivors if kept_some else set())
    return Aim(lines=sorted(lines), plateau_at=job.coverage_target)


def pynguin_round(job, result: ModuleResult) -> Round:
    # Functions a round found Pynguin hangs in: later rounds leave them out from the start.
    ignored: list[str] = []

    def run(round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        search_s = int(min(30, max(5, remaining * PYNGUIN_SEARCH_SHARE)))
        generated = generate_with_pynguin(
            job.sandbox,
            job.project,
            job.module,
            job.workspace,
            seed=round_no,
            search_s=search_s,
            timeout=remaining,
            ignore=ignored,
            aim=pynguin_aim(job, covered, feedback),
        )
        ignored[:] = generated.ignored
        result.validation.issues.extend(generated.issues)
        result.timings.generate += generated.duration_s - generated.start_s
        result.timings.sandbox_start += generated.start_s
        return generated.file

    return run


def _charge(result: ModuleResult, spent: LLMGenerated | LLMGenerationError) -> None:
    """Failed and rejected answers were paid for too."""
    meta = result.metadata
    meta.tokens_used += spent.tokens_used
    meta.cost = round(meta.cost + spent.cost_usd, 6)
    meta.retries += spent.retries
    meta.attempts.extend(spent.attempts)


def llm_round(job, result: ModuleResult) -> Round:
    session = session_in_use(job.llm)
    conversation: list[dict[str, str]] | None = None

    def run(round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        nonlocal conversation
        try:
            generated = generate_with_llm(
                session,
                job.project,
                job.module,
                covered_as_file(job.baseline, covered),
                timeout=remaining,
                conversation=conversation,
                failures=feedback.output if feedback else "",
                kept=feedback.kept if feedback else None,
                changed_lines=job.changed_lines,
                framework=job.framework,
                survivors=feedback.survivors if feedback else None,
            )
        except LLMGenerationError as exc:
            _charge(result, exc)
            raise
        _charge(result, generated)
        result.model_used, conversation = generated.model, generated.conversation
        result.timings.generate += generated.duration_s
        candidate = job.workspace / f"test_covsweep_{round_no}.py"
        candidate.write_text(generated.source)
        return candidate

    return run


def openhands_round(job, result: ModuleResult) -> Round:
    setup = OpenHandsSetup.resolve(load(), session_in_use(job.llm).config)

    def run(round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        started = time.monotonic()

        def attempt(outcome: str) -> None:
            result.metadata.attempts.append(
                Attempt(model=setup.model, outcome=outcome, duration_s=round(time.monotonic() - started, 3))
            )

        try:
            generated = generate_with_openhands(
                setup,
                job.project,
                job.module,
                covered_as_file(job.baseline, covered),
                job.workspace,
                round_no=round_no,
                timeout=remaining,
                failures=feedback.output if feedback else "",
                kept=feedback.kept if feedback else None,
                survivors=feedback.survivors if feedback else None,
                changed_lines=job.changed_lines,
            )
        except ModuleError as exc:
            attempt(exc.info.type)
            raise
        attempt("ok")
        result.model_used = setup.model
        result.timings.generate += generated.duration_s - generated.start_s
        result.timings.sandbox_start += generated.start_s
        return generated.file

    return run


def offline(job, result: ModuleResult) -> Round:
    """The offline generator (--generator pynguin, and the fallback of the others): the examples
    generator first, Pynguin on what it leaves (tasks/generators/examples.py `offline_round`)."""
    return offline_round(job, result, pynguin_round(job, result))


ROUNDS: dict[str, Callable[..., Round]] = {"pynguin": offline, "llm": llm_round, "openhands": openhands_round}
