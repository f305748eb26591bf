"""What a module's accepted tests are worth beyond coverage: the mutation score that steers its rounds,
the tests kept because they kill a mutant the others let through, and the readable rewrite of what is
delivered, scored again so that the score describes the file the user gets.

The sandbox steps are the `Checks` of the module's Steps (tasks/generators/module.py): tests run this
logic with fakes, and the real steps in end-to-end runs."""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tasks.core.errors import ModuleError
from tasks.core.log import get_logger
from tasks.core.models import Issue, ModuleResult, Mutant, MutationScore
from tasks.core.plan import ModuleJob
from tasks.coverage.filtering import FilterResult
from tasks.coverage.readable.check import make_readable
from tasks.coverage.validation import assertion_free
from tasks.delivery.write import test_file_name
from tasks.mutation.run import MutationRun, kills_by_group, mutate_module
from tasks.project.style import detect_style
from tasks.sandbox.runner import prepare_workspace

MUTATION_SHARE = 0.3  # of the module's --timeout, for one mutation run at most
# Of the module's --timeout, kept from its rounds for the delivered file: its rewrite, and its score.
READABLE_RESERVE, MUTATION_RESERVE = 0.1, 0.1
KILLS_SHARE = 0.2  # of the module's --timeout, for one round's check of which tests kill a survivor
READABLE_MAX_S = 120
MIN_STEP_S = 10.0  # a container's start and a pytest run or two: less than this is not worth starting
# Tests that added no coverage, checked against the survivors per round: each is a mutmut run of its
# own in the check's one container (2-3 s on a quiet host).
MAX_KILL_CHECKS = 6


class Mutate(Protocol):
    def __call__(self, job: ModuleJob, tests: Path, timeout: float) -> MutationRun: ...


class Kills(Protocol):
    def __call__(
        self,
        job: ModuleJob,
        candidate: Path,
        groups: list[list[str]],
        mutants: list[Mutant],
        timeout: float,
        together_from: int,
    ) -> list[list[Mutant]]: ...


class Readable(Protocol):
    def __call__(self, job: ModuleJob, source: str, timeout: float) -> str: ...


def sandbox_mutate(job: ModuleJob, tests: Path, timeout: float) -> MutationRun:
    return mutate_module(
        job.sandbox,
        job.project,
        job.module,
        [tests],
        job.workspace / "mutation",
        max_mutants=job.mutants,
        timeout=timeout,
    )


def sandbox_kills(
    job: ModuleJob, candidate: Path, groups: list[list[str]], mutants: list[Mutant], timeout: float, together_from: int
) -> list[list[Mutant]]:
    workspace = job.workspace / "mutation"
    return kills_by_group(
        job.sandbox,
        job.project,
        job.module,
        candidate,
        groups,
        mutants,
        workspace,
        timeout,
        together_from=together_from,
    )


def sandbox_readable(job: ModuleJob, source: str, timeout: float) -> str:
    style = detect_style(job.project)
    return make_readable(job.sandbox, job.project, job.module, source, style, job.workspace, timeout).source


@dataclass(frozen=True)
class Checks:
    """The sandbox steps beyond coverage: a mutation run, which tests kill which mutants, the rewrite."""

    mutate: Mutate = sandbox_mutate
    kills: Kills = sandbox_kills
    readable: Readable = sandbox_readable


@dataclass
class MutationState:
    """What the module's last mutation run found: the score of the test file it ran, and its survivors."""

    score: MutationScore | None = None
    survivors: list[Mutant] = field(default_factory=list)
    unfinished: int = 0
    scored: str | None = None  # the test file's text the score is of
    failed: bool = False  # a run failed: no more runs for this module, coverage alone decides

    def below(self, target: float) -> bool:
        """A score is known and under `target`: another round may raise it."""
        return self.score is not None and self.score.score < target


def _issue(result: ModuleResult, level: str, rule: str, message: str) -> None:
    result.validation.issues.append(Issue(level=level, rule=rule, message=message))


def score_accepted(
    job: ModuleJob,
    result: ModuleResult,
    source: str,
    state: MutationState,
    checks: Checks,
    timeout: float,
    *,
    final: bool = False,
) -> None:
    """The mutation score of the test file `source` into `state`. A failed run is a WARNING and ends the
    module's mutation runs, never the module; a run between rounds that only ran out of time is tried
    again for the delivered file, with the time left then, and if that too runs out it is an INFO."""
    if not job.mutation or state.failed or source == state.scored or timeout < MIN_STEP_S:
        return
    folder = prepare_workspace(job.workspace / "accepted")
    tests = folder / test_file_name(job.module, set())
    tests.write_text(source)
    try:
        run = checks.mutate(job, tests, timeout)
    except ModuleError as exc:
        if exc.info.type == "timeout" and not final:
            get_logger("covsweep").info("%s: %s", job.module.path, exc.info.message)
            return
        state.failed, state.score, state.survivors = True, None, []
        if exc.info.type == "timeout":  # the module's time ran out, as for a score skipped: nothing failed
            _issue(result, "INFO", "mutation-skipped", f"no mutation score: {exc.info.message}")
        else:
            _issue(result, "WARNING", "mutation-failed", f"no mutation score: {exc.info.type}: {exc.info.message}")
        return
    result.timings.validate_ += run.duration_s - run.sandbox_start_s
    result.timings.sandbox_start += run.sandbox_start_s
    state.score, state.survivors, state.unfinished, state.scored = run.score, run.survivors, run.unfinished, source


def _checks_first(candidate: Path, names: list[str]) -> list[str]:
    """`names` with the tests that assert or expect an exception first: they are the likely killers."""
    unchecked = set(assertion_free(ast.parse(candidate.read_text())))
    return [n for n in names if n not in unchecked] + [n for n in names if n in unchecked]


def _moved_to_kept(feedback: FilterResult, rescued: list[str]) -> FilterResult:
    counts = feedback.counts.model_copy(
        update={
            "accepted": feedback.counts.accepted + len(rescued),
            "rejected_no_gain": feedback.counts.rejected_no_gain - len(rescued),
        }
    )
    return feedback.model_copy(
        update={
            "kept": feedback.kept + rescued,
            "no_gain": [n for n in feedback.no_gain if n not in rescued],
            "counts": counts,
        }
    )


def keep_mutant_killers(
    job: ModuleJob,
    result: ModuleResult,
    candidate: Path,
    feedback: FilterResult,
    state: MutationState,
    checks: Checks,
    time_left: float,
) -> FilterResult:
    """`feedback` with the tests that added no coverage but kill a mutant that survived every test kept
    before them (the earlier rounds' and, first, this round's) moved to the kept ones."""
    timeout = min(time_left, KILLS_SHARE * job.timeout)
    if not (job.mutation and state.survivors and feedback.no_gain) or timeout < MIN_STEP_S:
        return feedback
    checked = _checks_first(candidate, feedback.no_gain)[:MAX_KILL_CHECKS]
    groups = ([feedback.kept] if feedback.kept else []) + [[name] for name in checked]
    started = time.monotonic()
    try:
        # This round's kept tests alone; the others together first, most of them kill nothing new.
        killed = checks.kills(job, candidate, groups, state.survivors, timeout, len(groups) - len(checked))
    except ModuleError as exc:
        get_logger("covsweep").info("%s: which tests kill a mutant: %s", job.module.path, exc.info.message)
        return feedback
    finally:
        result.timings.validate_ += time.monotonic() - started
    alive = {m.name for m in state.survivors} - {m.name for m in (killed[0] if feedback.kept else [])}
    rescued = []
    for name, kills in zip(checked, killed[len(groups) - len(checked) :], strict=True):
        if names := {m.name for m in kills} & alive:
            rescued.append(name)
            alive -= names
    return _moved_to_kept(feedback, rescued) if rescued else feedback


def _readable(job: ModuleJob, result: ModuleResult, source: str, time_left: float, checks: Checks) -> str:
    """`source` rewritten for a reader; as it is when time is short or the rewrite fails: it is cosmetic."""
    if time_left < MIN_STEP_S:
        _issue(result, "INFO", "readable-skipped", f"{time_left:.0f}s left of --timeout: not rewritten for a reader")
        return source
    started = time.monotonic()
    try:
        return checks.readable(job, source, min(READABLE_MAX_S, time_left))
    except Exception as exc:  # noqa: BLE001 - a failed rewrite must not cost the module its tests
        get_logger("covsweep").warning("%s: readable rewrite failed", job.module.path, exc_info=True)
        _issue(result, "WARNING", "readable-failed", f"not rewritten for a reader: {exc.__class__.__name__}: {exc}")
        return source
    finally:
        result.timings.validate_ += time.monotonic() - started


def _final_score(
    job: ModuleJob, result: ModuleResult, source: str, time_left: float, state: MutationState, checks: Checks
) -> None:
    timeout = min(time_left, MUTATION_SHARE * job.timeout)
    if source != state.scored and timeout < MIN_STEP_S:
        _issue(result, "INFO", "mutation-skipped", f"{time_left:.0f}s left of --timeout: no mutation score")
        return
    score_accepted(job, result, source, state, checks, timeout, final=True)
    if state.scored != source or state.score is None:
        return
    result.mutation = state.score
    if state.unfinished:
        tried = state.score.mutants
        message = f"{state.unfinished} of {tried + state.unfinished} mutants not tried in time: the score is of {tried}"
        _issue(result, "INFO", "mutation-unfinished", message)


def finishing_reserve(job: ModuleJob) -> float:
    """The seconds the rounds leave for `finish`: the rewrite, and with --mutation on the final score."""
    return (READABLE_RESERVE + MUTATION_RESERVE * job.mutation) * job.timeout


def finish(
    job: ModuleJob,
    result: ModuleResult,
    source: str,
    deadline: float,
    clock: Callable[[], float],
    state: MutationState,
    checks: Checks,
) -> str:
    """The accepted tests as they will be delivered: rewritten for a reader, then (--mutation on) their
    mutation score, each step within what is left of the module's --timeout."""
    source = _readable(job, result, source, deadline - clock(), checks)
    if job.mutation and not state.failed:
        _final_score(job, result, source, deadline - clock(), state, checks)
    return source
