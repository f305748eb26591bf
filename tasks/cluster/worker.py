"""A module job as the Dask worker that runs it makes it its own: its workspace under this host's cache,
its own clone of a repository target, the sandbox image built (or found) on this host's Docker daemon.

Everything here runs in the worker's process: `localized` in the module task, `worker_view` and
`remove_run_workspace` through distributed's `Client.run` on every worker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from tasks.core.errors import InputError, ModuleError
from tasks.core.models import Source
from tasks.core.plan import ModuleJob, RepositoryRef
from tasks.core.settings import Settings, load
from tasks.project.remote import is_repository_url
from tasks.project.repository import checkout_cached
from tasks.sandbox.containers import docker_client
from tasks.sandbox.leftovers import remove_leftovers, remove_stale_workspaces
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.target_image import prepare_target_image

M = TypeVar("M", bound=BaseModel)


def worker_name() -> str:
    """The Dask worker running this code (its name, else its address), or this host's name outside Dask."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return socket.gethostname()
    return str(worker.name if worker.name is not None else worker.address)


def moved(value: Any, old: Path, new: Path) -> Any:
    """`value` (a model's dump: dicts, lists, paths) with every path below `old` put below `new` instead."""
    if isinstance(value, Path):
        return new / value.relative_to(old) if value.is_relative_to(old) else value
    if isinstance(value, dict):
        return {key: moved(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(moved(item, old, new) for item in value)
    return value


def rebased(model: M, old: Path, new: Path) -> M:
    """The model with its paths below `old` below `new`: the same files, where this host keeps them."""
    if old == new:
        return model
    return type(model).model_validate(moved(model.model_dump(), old, new))


class _Once:
    """Values computed once per key in this process, however many module threads ask at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[tuple, Any] = {}
        self.locks: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self.lock:
            key_lock = self.locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self.values:
                self.values[key] = compute()
            return self.values[key]


_images = _Once()


def host_image(settings: Settings, named: str | None, project_dir: Path, run: str) -> str:
    """The sandbox image of this host for the project, with its declared dependencies: built here on
    first use (images are tagged by a hash of their recipe, so a host builds each once), looked up once
    per run and process."""
    if named:
        settings = settings.model_copy(update={"sandbox_image": named})
    return _images.get((run, named, str(project_dir)), lambda: prepare_target_image(settings, project_dir).tag)


def clone_for_workers(source: Source | None, root: Path | None) -> RepositoryRef | None:
    """How a worker gets the run's clone (`root`, at `source`): the repository's URL, or the user's work
    tree as a file:// URL (which a host sees on a shared file system), at the run's commit."""
    if source is None or root is None:
        return None
    url = source.repository if is_repository_url(source.repository) else Path(source.repository).as_uri()
    return RepositoryRef(url=url, commit=source.commit, root=root)


def localized(job: ModuleJob, settings: Settings | None = None) -> ModuleJob:
    """The job with this host's workspace, clone and sandbox image; a job not `portable` as it is. Raises
    ModuleError when this host cannot clone the repository target or have the sandbox image."""
    if not job.portable:
        return job
    settings = settings or load()
    run_folder = job.workspace.parent  # the flow host's CACHE_DIR/runs/<run id>
    job = rebased(job, run_folder, settings.cache_dir / "runs" / run_folder.name)
    if job.repository and not job.repository.root.is_dir():
        try:
            clone = checkout_cached(job.repository.url, job.repository.commit, settings.cache_dir, settings)
        except InputError as exc:
            raise ModuleError("connection", f"{worker_name()} cannot clone the target: {exc}") from None
        job = rebased(job, job.repository.root, clone.path)
    if job.sandbox.kind == "docker":
        try:
            image = host_image(settings, job.sandbox.image or None, job.project.target, run_folder.name)
        except InputError as exc:
            raise ModuleError("sandbox", f"{worker_name()} has no sandbox image: {exc}") from None
        job = job.model_copy(update={"sandbox": job.sandbox.model_copy(update={"image": image})})
    return job


class WorkerView(BaseModel):
    """What one worker found before a run's modules start: None where all is well."""

    target_missing: bool = False
    api_problem: str | None = None
    docker_problem: str | None = None


def _api_problem(api_url: str, timeout: float) -> str | None:
    try:
        httpx.get(api_url.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"[:200]
    return None


def worker_view(target: str | None, api_url: str | None, docker: bool, timeout: float) -> WorkerView:
    """Whether this worker sees the directory target at its path, reaches the run's Prefect API and, for
    Docker sandboxes, a Docker daemon. Also removes what runs that died on this host left (containers,
    workspaces), as a run's plan does on the flow's host."""
    view = WorkerView(
        target_missing=target is not None and not Path(target).is_dir(),
        api_problem=_api_problem(api_url, timeout) if api_url else None,
    )
    remove_stale_workspaces(load().cache_dir / "runs")
    if docker:
        try:
            remove_leftovers(docker_client())
        except InputError as exc:  # "Docker is not reachable ..."
            view.docker_problem = str(exc)
    return view


def remove_run_workspace(run_id: str, flow_host: str, flow_workspace: str) -> bool:
    """This host's workspace of the run (snapshots, scratch folders), unless it is the flow's own: that
    one the flow removes when it is done with it. True if removed."""
    folder = load().cache_dir / "runs" / run_id
    if socket.gethostname() == flow_host and folder.resolve() == Path(flow_workspace).resolve():
        return False
    return remove_tree(folder)
