"""What a run's options must pass before anything runs. `covsweep run` calls `preflight` before Prefect
starts, so nothing here imports Prefect until a saved block or a cluster has to be read: a refused run
answers in about half a second."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import suppress
from pathlib import Path

from tasks.core.errors import InputError
from tasks.core.models import GeneratorName, Project
from tasks.core.options import RunOptions
from tasks.core.plan import directory_report
from tasks.core.settings import Settings, load
from tasks.delivery.branch import check_new_branch
from tasks.llm.config import resolve_llm_config
from tasks.project.changes import changed_since
from tasks.project.discover import discover
from tasks.project.remote import is_repository_url
from tasks.project.repository import origin_url
from tasks.project.source import check_source
from tasks.reporting.gates import check_gate_options
from tasks.sandbox.containers import docker_client
from tasks.sandbox.images import ensure_sandbox_image


def resolve_generator(requested: str, has_key: bool, blocks_read: bool = True) -> GeneratorName:
    if requested == "auto":
        return "llm" if has_key else "pynguin"
    if requested in ("llm", "openhands") and not has_key and blocks_read:
        raise InputError(
            f"--generator {requested} needs an API key: set COVSWEEP_LLM_API_KEY (or OPENROUTER_API_KEY), "
            "or save one in the covsweep-llm block"
        )
    return requested


def changed_modules(
    options: RunOptions, project: Project, ref_in_clone: str | None = None
) -> dict[str, list[int]] | None:
    """--changed-since: Module.path -> changed lines of the modules the change touched; None without it.
    Raises InputError when the target is no git work tree or REF names no commit. A repository target's
    shallow clone needs REF's history first: `ref_in_clone = fetch_history_for(checkout, REF)`
    (tasks.project.repository), the name REF has in the clone; the report still says REF."""
    if not options.changed_since:
        return None
    return changed_since(project.target, ref_in_clone or options.changed_since).modules(project.modules)


def check_generator(options: RunOptions, settings: Settings, load_blocks: bool) -> GeneratorName:
    """The generator; raises InputError for an LLM generator without a key, a local Pynguin that is missing."""
    llm = resolve_llm_config(
        models=options.models,
        llm_base_url=options.llm_base_url,
        budget_usd=options.budget_usd,
        settings=settings,
        load_block=load_blocks,
    )
    generator = resolve_generator(options.generator, llm.has_key, blocks_read=load_blocks)
    if options.sandbox == "local" and generator == "pynguin" and not shutil.which(settings.pynguin):
        raise InputError(
            f"--sandbox local needs Pynguin, and {settings.pynguin!r} is not an executable: install "
            "pynguin==0.48.0 in a venv of its own and set COVSWEEP_PYNGUIN to its bin/pynguin"
        )
    return generator


def cluster_address(options: RunOptions, settings: Settings, load_blocks: bool) -> str | None:
    """The Dask scheduler of the run: --cluster, else COVSWEEP_CLUSTER, else the saved covsweep-cluster block."""
    if options.cluster or settings.cluster or not load_blocks:
        return options.cluster or settings.cluster
    from blocks.cluster import CovsweepCluster  # Prefect's, imported only where a block is read
    from blocks.saved import load_saved

    block = load_saved(CovsweepCluster)
    return block.address if block else None


def check_options(
    options: RunOptions, settings: Settings, load_blocks: bool, target: Path | None = None
) -> tuple[Project, GeneratorName]:
    """The project (at `target`, the run's clone, when it has one) and the generator; raises InputError
    for what a user has to fix."""
    check_gate_options(options)
    project = discover(target or Path(options.target), options.modules)
    return project, check_generator(options, settings, load_blocks)


def check_delivery(options: RunOptions, settings: Settings) -> None:
    """Before Prefect starts: the repository can be read at --ref (one ls-remote, no clone) or the
    directory is a work tree; a branch has somewhere to go, and a --branch given is free there."""
    work_tree = check_source(options.target, options.ref, options.deliver, settings)
    if options.deliver != "branch":
        return
    url = origin_url(work_tree) if work_tree else options.target
    if options.branch:
        check_new_branch(url, options.branch, settings, load_block=False)


def check_writable(folder: Path) -> None:
    """The report's folder can be made and written: a report that cannot be written is bad input, not
    a lost run. Tried for real (root passes every permission check), and what the try made is removed."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise InputError(f"cannot write the report to {folder}: {exc.strerror or exc}") from None
    finally:
        for path in made:
            with suppress(OSError):
                path.rmdir()


def preflight(options: RunOptions) -> Project | None:
    """What `covsweep run` checks before Prefect starts, in about half a second: the target and its
    modules (a repository's are found once it is cloned), the LLM options, the repository or work
    tree delivered from, Docker and a sandbox image named in the environment. The run's plan checks
    all of it again with the saved blocks (a key or token saved only in a block is not seen here)
    and builds the images. Raises InputError."""
    settings = load()
    project = None
    if not is_repository_url(options.target):
        project, _ = check_options(options, settings, load_blocks=False)
        changed_modules(options, project)  # not a work tree, no such REF: refused before Prefect starts
    else:
        check_generator(options, settings, load_blocks=False)
    check_delivery(options, settings)
    if report := report_path(options, project):
        check_writable(report.parent)
    if options.sandbox == "docker":
        docker_client()  # raises "Docker is not reachable ..."
        if settings.sandbox_image:
            ensure_sandbox_image(settings)  # a named image is only looked up, never built
    if options.generator != "none" and (address := cluster_address(options, settings, load_blocks=False)):
        from tasks.cluster.scheduler import reach_scheduler  # Dask's and Prefect's imports: only for a cluster

        reach_scheduler(address, settings.cluster_timeout)
    return project


def report_path(options: RunOptions, project: Project | None) -> Path | None:
    """--report; by default in the target, or for a repository (its clone goes with the run) nowhere
    but result storage: `covsweep run` names one in the current directory for it."""
    if not options.report and is_repository_url(options.target):
        return None
    return directory_report(options, project.target if project else None)
