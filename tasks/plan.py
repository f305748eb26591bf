"""Turn a run's options, checked again with the saved blocks, into a plan: the project, the generator,
the sandbox."""

from __future__ import annotations

import uuid
from contextlib import suppress
from pathlib import Path

from prefect import task

from blocks.sandbox import CovsweepSandbox
from blocks.saved import load_saved
from tasks.checks import changed_modules, check_options, cluster_address, report_path
from tasks.cluster.scheduler import check_cluster, run_api_url
from tasks.core.errors import InputError
from tasks.core.log import get_logger
from tasks.core.models import Project, SandboxConfig, SandboxLimits
from tasks.core.options import RunOptions
from tasks.core.plan import Plan, default_out
from tasks.core.settings import Settings, load
from tasks.delivery.branch import check_new_branch, default_branch_name
from tasks.project.framework import resolve_framework
from tasks.project.repository import Checkout, fetch_history_for
from tasks.project.source import (
    Cloned,
    check_no_ref,
    clone_target,
    delivery_kind,
    out_in_clone,
    push_url,
    runs_on_a_clone,
)
from tasks.sandbox.containers import docker_client
from tasks.sandbox.images import ensure_sandbox_image
from tasks.sandbox.leftovers import remove_leftovers, remove_stale_workspaces
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.snapshot import plan_snapshot
from tasks.sandbox.target_image import ensure_target_image


def named_image(settings: Settings, block: CovsweepSandbox | None) -> str | None:
    """The sandbox image the user named: COVSWEEP_SANDBOX_IMAGE, else the saved block's; None: covsweep's own."""
    return settings.sandbox_image or (block.image if block else None) or None


def sandbox_config(
    kind: str, settings: Settings, project: Project | None = None, block: CovsweepSandbox | None = None
) -> SandboxConfig:
    """The saved `covsweep-sandbox` block sets the limits, and the image unless COVSWEEP_SANDBOX_IMAGE does."""
    limits = block.limits if block else SandboxLimits()
    if kind == "local":
        return SandboxConfig(kind="local", pynguin=settings.pynguin, limits=limits)
    settings = settings.model_copy(update={"sandbox_image": named_image(settings, block)})
    # The project's declared dependencies ride in a layer of their own; none declared: the plain sandbox.
    image = ensure_target_image(settings, project.target) if project else ensure_sandbox_image(settings)
    return SandboxConfig(kind="docker", image=image, limits=limits)


def check_run_cluster(address: str, options: RunOptions, settings: Settings, directory: Path | None) -> None:
    """Before any module starts: every worker sees the `directory` target (None: a repository, which each
    worker clones), the run's Prefect API and, for Docker sandboxes, a daemon; InputError naming the first
    worker that does not."""
    names = check_cluster(address, directory, run_api_url(), options.sandbox == "docker", settings.cluster_timeout)
    get_logger("covsweep").info("Dask cluster %s: module tasks on workers %s", address, ", ".join(names))


def _clone(options: RunOptions, run_id: str, workspace: Path, settings: Settings, load_blocks: bool) -> Cloned | None:
    """The run's own clone, for a repository or a work tree delivered as a patch or a branch; for a
    branch, its name is checked free before anything runs."""
    if not runs_on_a_clone(options.target, options.deliver):
        check_no_ref(options.ref)
        return None
    cloned = clone_target(options.target, options.ref, options.deliver, workspace / "source", settings)
    if delivery_kind(options.target, options.deliver) == "branch":
        url = push_url(options.target, cloned.source)
        check_new_branch(url, options.branch or default_branch_name(run_id), settings, load_block=load_blocks)
    return cloned


@task(name="plan-run")
def plan_run(options: RunOptions, run_id: str | None = None, load_blocks: bool = True) -> Plan:
    """Raises InputError, before anything runs, for whatever a user has to fix. Without
    `load_blocks` the saved blocks are not read (a key saved only in one is not seen)."""
    settings = load()
    run_id = run_id or uuid.uuid4().hex
    workspace = settings.cache_dir / "runs" / run_id
    remove_stale_workspaces(settings.cache_dir / "runs")
    try:
        return _plan(options, run_id, workspace, settings, load_blocks)
    except BaseException:
        # The flow removes the workspace once it is planned: a refused plan takes its clone away itself.
        remove_tree(workspace)
        raise


def discard_workspace(plan: Plan) -> None:
    """The run's scratch folders, which sandboxes wrote in, gone."""
    remove_tree(plan.workspace)


def _plan(options: RunOptions, run_id: str, workspace: Path, settings: Settings, load_blocks: bool) -> Plan:
    cloned = _clone(options, run_id, workspace, settings, load_blocks)
    project, generator = check_options(options, settings, load_blocks, cloned.target if cloned else None)
    changed = changed_modules(options, project, _history_for_changes(options, cloned, settings))  # before any sandbox
    out = (out_in_clone(options.out, cloned) if cloned else None) or default_out(options, project)
    cluster = cluster_address(options, settings, load_blocks) if generator != "none" else None
    if cluster:  # a clone each worker makes its own; a directory must be where the flow sees it
        check_run_cluster(cluster, options, settings, None if cloned else project.target)
    block = load_saved(CovsweepSandbox) if load_blocks else None
    config = sandbox_config(options.sandbox, settings, project, block)
    if options.sandbox == "local":
        get_logger("covsweep").warning(
            "--sandbox local: modules and tests run as subprocesses of this host, NOT isolated"
        )
    if config.kind == "docker":
        # The sandbox reads a copy of the target, taken when it first runs (tasks/sandbox/snapshot.py).
        config.snapshot = plan_snapshot(project.target, out, workspace / "snapshot", reads_again=generator != "none")
    if config.kind == "docker" or generator == "openhands":
        with suppress(InputError):  # no Docker: OpenHands fails module by module, and says why
            remove_leftovers(docker_client())
    deliver = delivery_kind(options.target, options.deliver)
    return Plan(
        run_id=run_id,
        project=project,
        generator=generator,
        sandbox=config,
        out=out,
        report=_report(options, project, cloned),
        workspace=workspace,
        options=options,
        framework=resolve_framework(options.framework, project),
        changed=changed,
        deliver=deliver,
        source=cloned.source if cloned else None,
        repo=cloned.root if cloned else None,
        branch=(options.branch or default_branch_name(run_id)) if deliver == "branch" else None,
        cluster=cluster,
        sandbox_image=named_image(settings, block),
    )


def _history_for_changes(options: RunOptions, cloned: Cloned | None, settings: Settings) -> str | None:
    """A clone is shallow: --changed-since needs REF's history in it first; the name REF has there."""
    if not (options.changed_since and cloned):
        return None
    checkout = Checkout(
        path=cloned.root, repository=cloned.source.repository, ref=cloned.source.ref, commit=cloned.source.commit
    )
    return fetch_history_for(checkout, options.changed_since, settings)


def _report(options: RunOptions, project: Project, cloned: Cloned | None) -> Path | None:
    if options.report or cloned is None or cloned.work_tree is None:
        return report_path(options, project)
    # A work tree's: in the user's directory, as when the tests are written there.
    return cloned.work_tree / project.target.relative_to(cloned.root) / ".covsweep" / "report.json"
