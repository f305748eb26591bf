"""The flow `spec-to-production`: discover, baseline, generate per module, write, validate, report."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from tasks.conclude import conclude
from tasks.core.errors import InputError
from tasks.core.models import ModuleResult, now
from tasks.core.options import Percent, RunOptions
from tasks.core.plan import ModuleJob, Plan
from tasks.core.progress import baseline_lines, module_done, run_phase
from tasks.deliver import deliver_tests
from tasks.measure import Measurement, measure_coverage
from tasks.modules import generated, measure_only, module_jobs, module_runner, with_not_changed
from tasks.plan import discard_workspace, plan_run
from tasks.publish import Progress, publish_report, publish_summary
from tasks.session import close_run_llm, open_run_llm
from tasks.write import write_tests


# long: a parameter and an Args line per option (the UI's form of a run); the body is short
@flow(name="spec-to-production", persist_result=True, validate_parameters=True)
def spec_to_production(
    target: str,
    modules: list[str] | None = None,
    generator: Literal["auto", "llm", "openhands", "pynguin", "none"] = "auto",
    coverage_target: Annotated[float, Field(ge=0, le=100)] = 80.0,
    max_iterations: Annotated[int, Field(ge=1, le=100)] = 3,
    reruns: Annotated[int, Field(ge=1, le=50)] = 3,
    out: str | None = None,
    report: str | None = None,
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4,
    sandbox: Literal["docker", "local"] = "docker",
    timeout: Annotated[float, Field(gt=0)] = 300.0,
    models: str | None = None,
    llm_base_url: str | None = None,
    budget_usd: Annotated[float, Field(ge=0)] | None = None,
    ref: str | None = None,
    deliver: Literal["write", "patch", "branch"] | None = None,
    branch: str | None = None,
    cluster: str | None = None,
    mutation: Literal["on", "off"] = "on",
    mutants: Annotated[int, Field(ge=1, le=1000)] = 30,
    mutation_target: Percent = 70.0,
    changed_since: str | None = None,
    fail_under: Percent | None = None,
    fail_under_diff: Percent | None = None,
    summary_md: str | None = None,
    framework: Literal["auto", "pytest", "unittest"] = "auto",
):
    """Raise the test coverage of the project at `target` with generated tests that pass reliably.

    Args:
        target: project directory (src/ or flat layout) or one .py file, as the worker sees it, or a git
            repository URL (https://, ssh://, git@host:path, file://) the worker clones
        modules: restrict to these module path globs, relative to the target
        generator: auto (llm with an API key, else pynguin), llm, openhands, pynguin, or none (measure only)
        coverage_target: per-module line coverage (percent) at which refinement stops
        max_iterations: refinement rounds per module
        reruns: a generated test is kept only if it passes this many runs in a row
        out: where accepted tests are written; default TARGET/tests/generated
        report: the JSON report; default TARGET/.covsweep/report.json
        concurrency: modules processed at once
        sandbox: docker, or local (subprocesses with resource limits, not isolated)
        timeout: budget per module in seconds, all attempts together
        models: LLM fallback chain A,B,C, first preferred; default: the block's, ordered by score
        llm_base_url: any OpenAI-compatible endpoint
        budget_usd: no new LLM request once the run has spent this much
        ref: for a repository target: branch, tag or commit; default the remote's HEAD
        deliver: write (into the target), patch, or branch (pushed); default write for a directory,
            patch for a repository
        branch: the new branch of deliver=branch; default covsweep/<date>-<run id prefix>
        cluster: a Dask scheduler (tcp://host:8786): module tasks run on its workers
        mutation: on or off: the mutation score of the accepted tests
        mutants: mutants per module at most
        mutation_target: refinement continues below this mutation score (percent)
        changed_since: only modules changed since this git ref; diff coverage in the report
        fail_under: the run fails its gate when total line coverage after is below this (percent)
        fail_under_diff: the run fails its gate when diff coverage after is below this (percent)
        summary_md: a markdown summary for a pull-request comment, written to this file
        framework: auto, pytest or unittest: the style of the generated tests and their runner
    """
    started_at, started = now(), time.monotonic()
    options = RunOptions(**{k: v for k, v in locals().items() if k in RunOptions.model_fields})
    plan = plan_run(options, run_id=str(flow_run.get_id() or "") or None)
    logger = get_run_logger()
    run_phase("planned", modules=len(plan.processed()), skipped=len(plan.project.modules) - len(plan.processed()))
    llm = None
    if plan.generator in ("llm", "openhands"):
        # Module tasks on other hosts share the run's spend through the Prefect server; threads here, in memory.
        llm = open_run_llm(
            plan.run_id,
            options.models,
            options.llm_base_url,
            options.budget_usd,
            options.concurrency,
            shared_spend=plan.cluster is not None,
        )
    try:
        run_phase("baseline")
        baseline = _measure(plan, "baseline")
        logger.info(
            "baseline of the whole project: line %.1f%%, branch %.1f%%; %d modules planned",
            baseline.coverage.totals.line,
            baseline.coverage.totals.branch,
            len(plan.project.modules),
        )
        # quote(): the plan, the baseline, the job list and the results hold every module; Prefect need not walk them.
        run_phase("modules", baseline=baseline_lines(plan.project.modules, baseline.coverage))
        processed = _process_modules(plan, module_jobs(quote(plan), quote(baseline), llm))
        results = with_not_changed(plan, baseline, processed)
        run_phase("writing")
        written = write_tests(quote(plan), quote(results))
        run_phase("validating")
        final = _measure(plan, "final") if any(w.changed for w in written) else baseline
        report = conclude(
            quote(plan),
            quote(baseline),
            quote(final),
            quote(results),
            quote(written),
            started_at,
            time.monotonic() - started,
        )
        run_phase("reporting")
        delivered = deliver_tests(quote(plan), quote(report))
        published = publish_report(quote(delivered.report), plan.report)
        publish_summary(quote(published), options)
        if delivered.refused:
            raise InputError(delivered.refused)  # the report is saved, and the tests are in the patch
        return published
    finally:
        close_run_llm(llm)
        discard_workspace(plan)


def _measure(plan: Plan, phase: str) -> Measurement:
    """The project's coverage with its tests (and covsweep's written ones) as they are now."""
    return measure_coverage(
        plan.sandbox,
        plan.project,
        plan.test_paths(),
        plan.workspace / phase,
        timeout=plan.measurement_timeout(),
        framework=plan.framework,
    )


def _process_modules(plan: Plan, jobs: list[ModuleJob]) -> list[ModuleResult]:
    """Every module's result, in the project's order: measured only, or generated `concurrency` at a time
    on threads of this process or on the run's Dask cluster."""
    logger = get_run_logger()
    progress = Progress(len(jobs))
    if plan.generator == "none":
        results = measure_only(quote(jobs))
        progress.advance(len(results))
        for result in results:
            module_done(result)
        logger.info("[%d/%d] modules measured", progress.done, progress.total)
    else:
        results = []
        with module_runner(plan) as runner:
            for result in generated(runner, jobs, plan):
                results.append(result)
                progress.advance()
                module_done(result)
                logger.info(
                    "[%d/%d] %s: %s, line %.1f%% -> %.1f%%, %d tests kept, %.1fs",
                    progress.done,
                    progress.total,
                    result.module,
                    result.status,
                    result.coverage_before.line,
                    result.coverage.line,
                    result.tests.accepted,
                    result.execution_time,
                )
    order = {m.path: i for i, m in enumerate(plan.project.modules)}
    return sorted(results, key=lambda r: order[r.module])
