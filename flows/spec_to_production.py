"""The flow `spec-to-production`: discover, baseline, generate per module, write, validate, report."""

from __future__ import annotations

import shutil
import time
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from tasks.conclude import conclude
from tasks.generate import generate_module, measure_only, module_jobs
from tasks.llm_session import close_session, open_run_session
from tasks.measure import measure_coverage
from tasks.plan import RunOptions, plan_run
from tasks.report import Progress, now, publish_report
from tasks.write import WriteRequest, write_tests


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
):
    """Raise the test coverage of the project at `target` with generated tests that pass reliably.

    Args:
        target: project directory (src/ or flat layout) or one .py file, as the worker sees it
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
    """
    started_at, started = now(), time.monotonic()
    options = RunOptions(**{k: v for k, v in locals().items() if k in RunOptions.model_fields})
    plan = plan_run(options, run_id=str(flow_run.get_id() or "") or None)
    logger = get_run_logger()
    if plan.generator in ("llm", "openhands"):
        # One pooled HTTP client, breakers and spend for all modules of this run.
        open_run_session(plan.run_id, options.models, options.llm_base_url, options.budget_usd, options.concurrency)
    try:
        baseline = measure_coverage(plan.sandbox, plan.project, plan.test_paths(),
                                    plan.workspace / "baseline", timeout=max(plan.options.timeout, 600))
        logger.info("baseline: line %.1f%%, branch %.1f%% over %d modules",
                    baseline.coverage.totals.line, baseline.coverage.totals.branch, len(plan.project.modules))
        jobs = module_jobs(quote(plan), quote(baseline))
        progress = Progress(len(jobs))
        if plan.generator == "none":
            results = measure_only(quote(jobs))
            progress.advance(len(results))
            logger.info("[%d/%d] modules measured", progress.done, progress.total)
        else:
            results = []
            with ThreadPoolTaskRunner(max_workers=options.concurrency) as runner:
                # quote(): Prefect would walk each job, which holds the whole Project, on submit: O(modules²)
                futures = [runner.submit(generate_module, parameters={"job": quote(job)}) for job in jobs]
                for future in as_completed(futures):
                    result = future.result()
                    results.append(result)
                    progress.advance()
                    logger.info("[%d/%d] %s: %s, line %.1f%% -> %.1f%%, %d tests kept, %.1fs",
                                progress.done, progress.total, result.module, result.status,
                                result.coverage_before.line, result.coverage.line, result.tests.accepted,
                                result.execution_time)
        order = {m.path: i for i, m in enumerate(plan.project.modules)}
        results.sort(key=lambda r: order[r.module])
        requests = [WriteRequest(module=m, source=r.accepted_source)
                    for m, r in zip(plan.project.modules, results) if r.accepted_source]
        written = write_tests(plan.project, plan.out, requests) if requests else []
        final = baseline
        if any(w.changed for w in written):
            final = measure_coverage(plan.sandbox, plan.project, plan.test_paths(),
                                     plan.workspace / "final", timeout=max(plan.options.timeout, 600))
        report = conclude(quote(plan), quote(baseline), quote(final), quote(results), quote(written), started_at,
                          time.monotonic() - started)
        return publish_report(quote(report), plan.report)
    finally:
        close_session(plan.run_id)
        shutil.rmtree(plan.workspace, ignore_errors=True)
