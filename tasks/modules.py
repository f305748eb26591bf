"""The per-module tasks: one job per module, the task that processes it, and where those tasks run:
threads of the flow's process, or the workers of a Dask cluster (prefect-dask)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress

from prefect import task
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks.cluster.scheduler import dask_runner, killed_workers, lost_scheduler, remove_workspaces, run_api_url
from tasks.cluster.worker import clone_for_workers, localized, worker_name
from tasks.core.errors import ModuleError, RunError
from tasks.core.llm import LLMSpec
from tasks.core.models import ErrorInfo, ModuleResult
from tasks.core.names import MODULE_TASK_PREFIX
from tasks.core.options import RunOptions
from tasks.core.plan import ModuleJob, Plan
from tasks.core.settings import load
from tasks.coverage.ledger import module_fingerprint, tests_fingerprint
from tasks.coverage.measurement import Measurement
from tasks.generators.module import not_changed, process_module
from tasks.llm.session import llm_session


def failed_result(job: ModuleJob, error: ErrorInfo, worker: str | None) -> ModuleResult:
    """A module that could not be processed where it was sent."""
    result = ModuleResult(
        module=job.module.path, status="failed", success=False, generator=job.generator, error=error, worker=worker
    )
    if job.baseline is not None:
        result.coverage_before = result.coverage = job.baseline.percentages()
    return result


@task(name="generate-module", task_run_name=MODULE_TASK_PREFIX + "{job.module.path}")
def generate_module(job: ModuleJob) -> ModuleResult:
    """In whatever process or host it runs: the job made this host's (workspace, clone, sandbox image),
    the run's LLM session from the job's spec, shared with the other module tasks of this process."""
    worker = worker_name()
    try:
        job = localized(job)
    except ModuleError as exc:
        return failed_result(job, exc.info, worker)
    with llm_session(job.llm) if job.llm else nullcontext():
        result = process_module(job)
    result.worker = worker
    return result


@task(name="measure-only")
def measure_only(jobs: list[ModuleJob]) -> list[ModuleResult]:
    """`--generator none`: every module's result from the baseline, in one task run, not hundreds."""
    worker = worker_name()
    return [process_module(job).model_copy(update={"worker": worker}) for job in jobs]


def mutation_settings(options: RunOptions) -> dict:
    """A job's mutation fields from --mutation, --mutants and --mutation-target."""
    return {
        "mutation": options.mutation == "on",
        "mutants": options.mutants,
        "mutation_target": options.mutation_target,
    }


@task(name="module-jobs")
def module_jobs(plan: Plan, baseline: Measurement, llm: LLMSpec | None = None) -> list[ModuleJob]:
    """One job per module to process, with the fingerprint that tells an unchanged module from a changed one.
    A job refers to the project by place, not by its module list: its size does not grow with it.
    On a cluster a job carries no image of this host's: each worker finds or builds its own."""
    tests = tests_fingerprint(plan.project.test_paths, plan.repo)
    options = plan.options
    project = plan.project.ref()
    portable = plan.cluster is not None
    sandbox = plan.sandbox
    if portable and sandbox.kind == "docker":
        sandbox = sandbox.model_copy(update={"image": plan.sandbox_image or ""})
    repository = clone_for_workers(plan.source, plan.repo) if portable else None
    return [
        ModuleJob(
            project=project,
            module=m,
            baseline=baseline.coverage.files.get(m.path),
            baseline_problem=baseline.problem(),
            generator=plan.generator,
            coverage_target=options.coverage_target,
            max_iterations=options.max_iterations,
            reruns=options.reruns,
            timeout=options.timeout,
            sandbox=sandbox,
            workspace=plan.workspace / m.path.replace("/", "__"),
            fingerprint=module_fingerprint(m, tests, plan.fingerprint_settings(), plan.repo),
            llm=llm,
            framework=plan.framework,
            changed_lines=plan.changed.get(m.path) if plan.changed is not None else None,
            portable=portable,
            repository=repository,
            **mutation_settings(options),
        )
        for m in plan.processed()
    ]


def with_not_changed(plan: Plan, baseline: Measurement, results: list[ModuleResult]) -> list[ModuleResult]:
    """Every module's result in the project's order: with --changed-since, the modules the change did not
    touch are skipped with their baseline figures."""
    by_module = {r.module: r for r in results}
    ref = plan.options.changed_since
    return [
        by_module.get(m.path) or not_changed(m.path, baseline.coverage.files.get(m.path), ref)
        for m in plan.project.modules
    ]


@contextmanager
def module_runner(plan: Plan) -> Iterator[TaskRunner]:
    """Where the module tasks run: `concurrency` threads here, or the workers of the run's Dask cluster."""
    if plan.cluster is None:
        with ThreadPoolTaskRunner(max_workers=plan.options.concurrency) as runner:
            yield runner
        return
    # A worker runs its task in the flow's Prefect settings, sent with it: `covsweep run`'s temporary
    # server has no PREFECT_API_URL, so its address is put there for them.
    with temporary_settings({PREFECT_API_URL: run_api_url()}):
        with dask_runner(plan.cluster, load().cluster_timeout) as runner:
            try:
                runner.client  # noqa: B018 - connect now: a scheduler gone since the plan is one line, not a trace
            except OSError as exc:
                raise RunError(f"the Dask scheduler at {plan.cluster} cannot be reached any more: {exc}") from None
            try:
                yield runner
            finally:
                with suppress(Exception):  # the scheduler may be gone: a later run removes them when stale
                    remove_workspaces(runner.client, plan.run_id, plan.workspace)


def _outcome(future: PrefectFuture, job: ModuleJob, cluster: str | None, done: int, total: int) -> ModuleResult:
    try:
        return future.result()
    except Exception as exc:
        if lost_scheduler(exc):
            raise RunError(
                f"the Dask scheduler at {cluster} was lost mid-run ({done} of {total} modules finished): "
                "run again to resume from the finished modules"
            ) from None
        if killed_workers(exc):  # a module that kills whatever worker runs it: the others go on
            return failed_result(
                job, ErrorInfo(type="internal", message=f"the Dask workers running it died: {exc}"), None
            )
        raise


def generated(runner: TaskRunner, jobs: list[ModuleJob], plan: Plan) -> Iterator[ModuleResult]:
    """Each module's result as it finishes, `concurrency` modules at a time on the runner. On a cluster a
    module whose worker died is run again by Dask on another worker (same task run); a lost scheduler
    raises RunError."""
    finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()
    waiting, running = iter(jobs), {}

    def submit_next() -> None:
        if (job := next(waiting, None)) is not None:
            future = runner.submit(generate_module, parameters={"job": job})
            running[future] = job
            future.add_done_callback(finished.put)

    for _ in range(plan.options.concurrency):
        submit_next()
    for done in range(len(jobs)):
        future = finished.get()
        yield _outcome(future, running.pop(future), plan.cluster, done, len(jobs))
        submit_next()
