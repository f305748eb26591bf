"""The per-module task: generate tests, keep the ones that earn their place, repeat until the
module reaches its coverage target, its rounds or its time budget."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from covsweep.objects import MODULE_TASK_PREFIX
from tasks.filtering import Covered, filter_tests
from tasks.ledger import finished_result, module_fingerprint, record_finished, tests_fingerprint
from tasks.measure import Measurement
from tasks.review import NeedsReview, publish_review
from tasks.rounds import ROUNDS, Round, covered_as_file, pynguin_round
from tasks.models import (
    FileCoverage, GeneratorName, Issue, Module, ModuleError, ModuleResult, Project, SandboxConfig, TestCounts,
)
from tasks.plan import Plan
from tasks.probe import probe_import
from tasks.sandbox import prepare_workspace
from tasks.testfile import TestFileBuilder

PROBE_TIMEOUT_S = 30
MIN_ROUND_S = 20
# A rejected key or a spent budget ends every module's work, not just this one's.
STOPS_THE_RUN = {"authentication", "budget"}


class ModuleJob(BaseModel):
    project: Project
    module: Module
    baseline: FileCoverage | None = Field(description="None: the baseline run did not measure this module")
    baseline_problem: str = ""
    generator: GeneratorName
    coverage_target: float
    max_iterations: int
    reruns: int
    timeout: float
    sandbox: SandboxConfig
    workspace: Path
    fingerprint: str = Field(default="", description="its source, the project's tests and the settings")
    run_id: str = Field(default="", description="finds the run's LLM session")


def _line_pct(baseline: FileCoverage, covered: Covered) -> float:
    statements = set(baseline.statements)
    return 100.0 * len(covered.lines & statements) / len(statements) if statements else 100.0


def _add_counts(total: TestCounts, more: TestCounts) -> TestCounts:
    return TestCounts(**{k: getattr(total, k) + getattr(more, k) for k in TestCounts.model_fields})


def _run_rounds(job: ModuleJob, result: ModuleResult, deadline: float, next_round: Round) -> TestFileBuilder:
    builder = TestFileBuilder()
    covered, feedback = Covered.of(job.baseline), None
    for round_no in range(1, job.max_iterations + 1):
        remaining = deadline - time.monotonic()
        if _line_pct(job.baseline, covered) >= job.coverage_target or remaining < MIN_ROUND_S:
            break
        try:
            candidate = next_round(round_no, remaining, covered, feedback)
            feedback = filter_tests(job.sandbox, job.project, job.module, candidate, job.baseline,
                                    covered, job.reruns, max(10.0, deadline - time.monotonic()))
        except ModuleError as exc:
            if builder.body and exc.info.type not in STOPS_THE_RUN:
                break  # a later round failed: what earlier rounds kept still stands
            raise
        result.timings.validate_ += feedback.duration_s - feedback.sandbox_start_s
        result.timings.sandbox_start += feedback.sandbox_start_s
        result.tests = _add_counts(result.tests, feedback.counts)
        builder.add(candidate.read_text(), set(feedback.kept))
        covered = feedback.covered
    result.coverage = covered_as_file(job.baseline, covered).percentages()
    return builder


def _generate(job: ModuleJob, result: ModuleResult, deadline: float) -> TestFileBuilder:
    """The module's generator; when every LLM model failed, Pynguin instead."""
    result.timings.sandbox_start += probe_import(job.sandbox, job.project, job.module, job.workspace,
                                                 min(PROBE_TIMEOUT_S, deadline - time.monotonic()))
    try:
        return _run_rounds(job, result, deadline, ROUNDS[job.generator](job, result))
    except ModuleError as exc:
        if job.generator not in ("llm", "openhands") or exc.info.type in STOPS_THE_RUN:
            raise
        llm_error = exc.info
    result.generator = "pynguin"
    result.validation.issues.append(Issue(level="WARNING", rule="llm-fallback",
                                          message=f"every model failed ({llm_error.type}: {llm_error.message}); "
                                                  "generated with Pynguin instead"))
    try:
        return _run_rounds(job, result, deadline, pynguin_round(job, result))
    except ModuleError as exc:
        raise NeedsReview(llm_error, exc.info) from None


def process_module(job: ModuleJob) -> ModuleResult:
    """Tests for one module; a failure is recorded in the result, never raised."""
    started = time.monotonic()
    result = ModuleResult(module=job.module.path, status="unchanged", success=True, generator=job.generator)
    try:
        if job.module.syntax_error:
            raise ModuleError("target", job.module.syntax_error)
        if job.baseline is None:
            raise ModuleError("sandbox", f"its baseline coverage could not be measured: {job.baseline_problem}")
        result.coverage_before = result.coverage = job.baseline.percentages()
        finished = finished_result(job.fingerprint) if job.generator != "none" else None
        if finished:
            # Its tests are written again (a no-op when they are there): a killed run never wrote them.
            result.status, result.accepted_source = "skipped", finished.accepted_source
            result.validation.issues.append(Issue(level="INFO", rule="unchanged",
                                                  message="unchanged since its last successful run: not generated again"))
        elif job.generator != "none":
            prepare_workspace(job.workspace)
            builder = _generate(job, result, started + job.timeout)
            if builder.body:
                result.accepted_source = builder.render()
            result.status = result.coverage_status(job.coverage_target)
            record_finished(job.fingerprint, result)
        else:
            result.status = result.coverage_status(job.coverage_target)
    except NeedsReview as exc:
        result.status, result.success, result.error = "needs_review", False, exc.llm
        publish_review(job.module.path, result, exc)
    except ModuleError as exc:
        result.status, result.success, result.error = "failed", False, exc.info
    except Exception as exc:  # noqa: BLE001 - one module's bug must not end the run
        get_logger("covsweep").exception("module %s: internal error", job.module.path)
        result.status, result.success = "failed", False
        result.error = ModuleError("internal", f"{exc.__class__.__name__}: {exc}").info
    result.execution_time = round(time.monotonic() - started, 3)
    return result


@task(name="generate-module", task_run_name=MODULE_TASK_PREFIX + "{job.module.path}")
def generate_module(job: ModuleJob) -> ModuleResult:
    return process_module(job)


@task(name="measure-only")
def measure_only(jobs: list[ModuleJob]) -> list[ModuleResult]:
    """`--generator none`: every module's result from the baseline, in one task run, not hundreds."""
    return [process_module(job) for job in jobs]


@task(name="module-jobs")
def module_jobs(plan: Plan, baseline: Measurement) -> list[ModuleJob]:
    """One job per module, with the fingerprint that tells an unchanged module from a changed one."""
    tests = tests_fingerprint(plan.project.test_paths)
    options = plan.options
    return [ModuleJob(
        project=plan.project, module=m, baseline=baseline.coverage.files.get(m.path),
        baseline_problem=baseline.problem(), generator=plan.generator, coverage_target=options.coverage_target,
        max_iterations=options.max_iterations, reruns=options.reruns, timeout=options.timeout,
        sandbox=plan.sandbox, workspace=plan.workspace / m.path.replace("/", "__"),
        fingerprint=module_fingerprint(m, tests, plan.fingerprint_settings()), run_id=plan.run_id,
    ) for m in plan.project.modules]
