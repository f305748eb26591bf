"""The per-module task: generate tests, keep the ones that earn their place, repeat until the
module reaches its coverage target, its rounds or its time budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tasks.core.errors import STOPS_THE_RUN, ModuleError
from tasks.core.log import get_logger
from tasks.core.models import Coverage, ErrorInfo, FileCoverage, Issue, ModuleResult, TestCounts, Validation
from tasks.core.plan import ModuleJob
from tasks.core.progress import Lines, ModulePhase, module_phase
from tasks.coverage.filtering import Covered, FilterResult, filter_tests
from tasks.coverage.ledger import finished_entry, record_generated
from tasks.coverage.testfile import TestFileBuilder
from tasks.coverage.unittest_style import to_unittest, unittest_class_name
from tasks.generators.quality import (
    MUTATION_SHARE,
    Checks,
    MutationState,
    finish,
    finishing_reserve,
    keep_mutant_killers,
    score_accepted,
)
from tasks.generators.review import NeedsReview, publish_review
from tasks.generators.rounds import ROUNDS, Round, covered_as_file
from tasks.project.changes import NOT_CHANGED
from tasks.sandbox.probe import probe_import
from tasks.sandbox.runner import prepare_workspace

PROBE_TIMEOUT_S = 30
MIN_ROUND_S = 20
FALLS_BACK = {"llm", "openhands"}  # generators that Pynguin replaces when every attempt failed

RoundFactory = Callable[[ModuleJob, ModuleResult], Round]


class Filter(Protocol):
    def __call__(self, job: ModuleJob, candidate: Path, covered: Covered, timeout: float) -> FilterResult: ...


def sandbox_filter(job: ModuleJob, candidate: Path, covered: Covered, timeout: float) -> FilterResult:
    """Each test of `candidate` in the sandbox: kept when it passes every rerun and adds coverage."""
    return filter_tests(
        job.sandbox, job.project, job.module, candidate, job.baseline, covered, job.reruns, timeout, job.framework
    )


def sandbox_probe(job: ModuleJob, timeout: float) -> float:
    """Raise ModuleError unless the module imports in the sandbox; the sandbox's start time."""
    return probe_import(job.sandbox, job.project, job.module, job.workspace, timeout)


@dataclass(frozen=True)
class Steps:
    """What a module's work calls beyond this file: the generators' rounds (by generator name,
    Pynguin's the fallback), the filter, the import probe, the review artifact, the clock, and the
    checks beyond coverage (mutation runs, the readable rewrite)."""

    rounds: Mapping[str, RoundFactory] = field(default_factory=lambda: dict(ROUNDS))
    filter: Filter = sandbox_filter
    probe: Callable[[ModuleJob, float], float] = sandbox_probe
    review: Callable[[str, ModuleResult, NeedsReview], None] = publish_review
    clock: Callable[[], float] = time.monotonic
    checks: Checks = Checks()


SANDBOX = Steps()


def _line_pct(baseline: FileCoverage, covered: Covered) -> float:
    statements = set(baseline.statements)
    return 100.0 * len(covered.lines & statements) / len(statements) if statements else 100.0


def _add_counts(total: TestCounts, more: TestCounts) -> TestCounts:
    return TestCounts(**{k: getattr(total, k) + getattr(more, k) for k in TestCounts.model_fields})


def _charge(result: ModuleResult, feedback: FilterResult) -> None:
    result.timings.validate_ += feedback.duration_s - feedback.sandbox_start_s
    result.timings.sandbox_start += feedback.sandbox_start_s
    result.tests = _add_counts(result.tests, feedback.counts)


def report_phase(
    job: ModuleJob,
    result: ModuleResult,
    phase: ModulePhase,
    round_no: int | None = None,
    covered: Covered | None = None,
) -> None:
    """The module's phase, line coverage and LLM spend so far, for whoever shows the run's progress."""
    before = Lines.of(job.baseline)
    now = (
        Lines(statements=before.statements, covered=len(covered.lines & set(job.baseline.statements)))
        if covered
        else None
    )
    meta = result.metadata
    module_phase(
        job.module.path,
        phase,
        round=round_no,
        lines_before=before,
        lines=now,
        tokens_used=meta.tokens_used,
        cost_usd=meta.cost,
    )


def _as_unittest(job: ModuleJob, result: ModuleResult, candidate: Path) -> None:
    """The candidate's tests as TestCase classes, in place; a test unittest has no form for is rejected as failing."""
    try:
        conversion = to_unittest(candidate.read_text(), unittest_class_name(job.module))
    except SyntaxError:
        return  # the filter runs it as it is, and reports why it fails
    candidate.write_text(conversion.source)
    dropped = len(conversion.dropped)
    result.tests = _add_counts(result.tests, TestCounts(proposed=dropped, rejected_failing=dropped))


def _reached(job: ModuleJob, covered: Covered, mutation: MutationState) -> bool:
    """Coverage at its target and, with --mutation on, the kept tests' score too (when they have one)."""
    return _line_pct(job.baseline, covered) >= job.coverage_target and not mutation.below(job.mutation_target)


def _score_for_next_round(
    job: ModuleJob, builder: TestFileBuilder, round_no: int, deadline: float, steps: Steps
) -> float:
    """The time a mutation run of the kept tests may take now: none when no round could follow it."""
    room = deadline - steps.clock() - MIN_ROUND_S
    return min(room, MUTATION_SHARE * job.timeout) if round_no < job.max_iterations and builder.body else 0.0


def _stopped_early(result: ModuleResult, exc: ModuleError, round_no: int) -> None:
    """Why no round came after `round_no - 1`. A stop of the whole run (key, budget, breakers) is also the
    module's error: it did not get the rounds it was given, and a later run does it again."""
    reason = f"{exc.info.type}: {exc.info.message}"
    message = f"round {round_no} failed ({reason}); the tests earlier rounds accepted are kept"
    result.validation.issues.append(Issue(level="WARNING", rule="stopped-early", message=message))
    if exc.run_wide:
        result.success, result.error = False, exc.info


def run_rounds(
    job: ModuleJob,
    result: ModuleResult,
    deadline: float,
    next_round: Round,
    steps: Steps = SANDBOX,
    mutation: MutationState | None = None,
) -> TestFileBuilder:
    """Rounds until the targets (coverage, and mutation score with --mutation on), max_iterations or a
    deadline too close for one more round. Each round is told the mutants the kept tests let through."""
    builder, mutation = TestFileBuilder(), mutation or MutationState()
    covered, feedback = Covered.of(job.baseline), None
    for round_no in range(1, job.max_iterations + 1):
        remaining = deadline - steps.clock()
        if _reached(job, covered, mutation) or remaining < MIN_ROUND_S:
            break
        try:
            report_phase(job, result, "generating", round_no, covered)
            candidate = next_round(round_no, remaining, covered, feedback)
            if job.framework == "unittest":
                _as_unittest(job, result, candidate)
            report_phase(job, result, "filtering", round_no, covered)
            feedback = steps.filter(job, candidate, covered, max(10.0, deadline - steps.clock()))
        except ModuleError as exc:
            if not builder.body:
                raise
            _stopped_early(result, exc, round_no)
            break  # a later round failed: what earlier rounds kept still stands
        left = deadline - steps.clock()
        feedback = keep_mutant_killers(job, result, candidate, feedback, mutation, steps.checks, left)
        _charge(result, feedback)
        builder.add(candidate.read_text(), set(feedback.kept))
        covered = feedback.covered
        timeout = _score_for_next_round(job, builder, round_no, deadline, steps)
        if timeout > 0 and job.mutation:
            report_phase(job, result, "mutation", round_no, covered)
        score_accepted(job, result, builder.render(), mutation, steps.checks, timeout)
        feedback = feedback.model_copy(update={"survivors": mutation.survivors})
    result.coverage = covered_as_file(job.baseline, covered).percentages()
    return builder


def generate(
    job: ModuleJob,
    result: ModuleResult,
    deadline: float,
    steps: Steps = SANDBOX,
    mutation: MutationState | None = None,
) -> TestFileBuilder:
    """The module's generator; when every LLM model failed, Pynguin instead."""
    report_phase(job, result, "probe")
    result.timings.sandbox_start += steps.probe(job, min(PROBE_TIMEOUT_S, deadline - steps.clock()))
    try:
        return run_rounds(job, result, deadline, steps.rounds[job.generator](job, result), steps, mutation)
    except ModuleError as exc:
        if job.generator not in FALLS_BACK or exc.info.type in STOPS_THE_RUN:
            raise
        llm_error = exc.info
    return _fall_back(job, result, deadline, steps, llm_error, mutation)


def _fall_back(
    job: ModuleJob,
    result: ModuleResult,
    deadline: float,
    steps: Steps,
    llm_error: ErrorInfo,
    mutation: MutationState | None = None,
) -> TestFileBuilder:
    result.generator = "pynguin"
    result.validation.issues.append(
        Issue(
            level="WARNING",
            rule="llm-fallback",
            message=f"every model failed ({llm_error.type}: {llm_error.message}); generated with Pynguin instead",
        )
    )
    try:
        return run_rounds(job, result, deadline, steps.rounds["pynguin"](job, result), steps, mutation)
    except ModuleError as exc:
        raise NeedsReview(llm_error, exc.info) from None


def _skip_finished(job: ModuleJob, result: ModuleResult) -> bool:
    """A module an earlier run did with the same fingerprint, its file as that run left it: its tests, not
    a new round. Tests of a run killed before its conclusion are validated by this run's."""
    entry = finished_entry(job.fingerprint) if job.generator != "none" else None
    if entry is None or not entry.still_on_disk(job.module.file, job.project.target):
        return False
    # Its tests are written again (a no-op when they are there): a killed run never wrote them.
    result.status, result.accepted_source = "skipped", entry.accepted_source
    result.mutation = entry.result.mutation if job.mutation else None
    if entry.concluded:
        issue = Issue(
            level="INFO", rule="unchanged", message="unchanged since its last successful run: not generated again"
        )
    else:
        message = "generated by a run that ended before its conclusion: validated in this run, not generated again"
        issue = Issue(level="INFO", rule="resumed", message=message)
    result.validation.issues.append(issue)
    return True


def _work(job: ModuleJob, result: ModuleResult, started: float, steps: Steps) -> None:
    if job.module.syntax_error:
        raise ModuleError("target", job.module.syntax_error)
    if job.baseline is None:
        raise ModuleError("sandbox", f"its baseline coverage could not be measured: {job.baseline_problem}")
    result.coverage_before = result.coverage = job.baseline.percentages()
    if _skip_finished(job, result):
        return
    if job.generator != "none":
        prepare_workspace(job.workspace)
        deadline, mutation = started + job.timeout, MutationState()
        builder = generate(job, result, deadline - finishing_reserve(job), steps, mutation)
        if builder.body:
            result.accepted_source = finish(
                job, result, builder.render(), deadline, steps.clock, mutation, steps.checks
            )
    result.status = result.coverage_status(job.coverage_target)
    record_generated(result)


def not_changed(module: str, baseline: FileCoverage | None, ref: str | None) -> ModuleResult:
    """A module --changed-since leaves alone: skipped, neither probed nor generated for."""
    coverage = baseline.percentages() if baseline is not None else Coverage()
    issue = Issue(level="INFO", rule=NOT_CHANGED, message=f"not changed since {ref}")
    return ModuleResult(
        module=module,
        status="skipped",
        success=True,
        coverage_before=coverage,
        coverage=coverage,
        validation=Validation(issues=[issue]),
    )


def process_module(job: ModuleJob, steps: Steps = SANDBOX) -> ModuleResult:
    """Tests for one module; a failure is recorded in the result, never raised."""
    started = steps.clock()
    result = ModuleResult(module=job.module.path, status="unchanged", success=True, generator=job.generator)
    if job.generator != "none":
        result.fingerprint = job.fingerprint
    try:
        _work(job, result, started, steps)
    except NeedsReview as exc:
        result.status, result.success, result.error = "needs_review", False, exc.llm
        steps.review(job.module.path, result, exc)
    except ModuleError as exc:
        result.status, result.success, result.error = "failed", False, exc.info
    except Exception as exc:  # noqa: BLE001 - one module's bug must not end the run
        get_logger("covsweep").exception("module %s: internal error", job.module.path)
        result.status, result.success = "failed", False
        result.error = ModuleError("internal", f"{exc.__class__.__name__}: {exc}").info
    result.execution_time = round(steps.clock() - started, 3)
    return result
