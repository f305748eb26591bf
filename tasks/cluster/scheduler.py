"""The Dask cluster as the flow's host sees it: its scheduler reached, every worker checked before a module
starts, and the task runner (prefect-dask's DaskTaskRunner) that sends the module tasks there."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import distributed
from distributed.comm import parse_address
from distributed.comm.addressing import parse_host_port
from prefect.client.orchestration import get_client
from prefect_dask import DaskTaskRunner

from tasks.cluster.worker import WorkerView, remove_run_workspace, worker_view
from tasks.core.errors import InputError

SCHEMES = ("tcp", "tls", "ws", "wss")
WHERE = "--cluster, COVSWEEP_CLUSTER or block covsweep-cluster"


def _host_port(address: str) -> tuple[str, int]:
    try:
        scheme, location = parse_address(address, strict=False)
        host, port = parse_host_port(location)
    except ValueError as exc:
        raise InputError(f"the Dask scheduler address {address!r} ({WHERE}) is not tcp://host:port: {exc}") from None
    if scheme not in SCHEMES or port is None:
        raise InputError(f"the Dask scheduler address {address!r} ({WHERE}) is not tcp://host:port")
    return host, int(port)


def _refused(address: str, timeout: float) -> None:
    """At once, not after Dask's connect timeout: nothing listens at the address."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({WHERE}): {exc.strerror or exc}") from None


@contextmanager
def connected(address: str, timeout: float) -> Iterator[distributed.Client]:
    """A client of the scheduler at `address`; InputError, one line, when it cannot be reached."""
    _refused(address, timeout)
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({WHERE}): {exc}") from None
    with client:
        yield client


def worker_names(client: distributed.Client) -> dict[str, str]:
    """Worker address -> how the report names it: its name, else its address."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {address: str(info.get("name") or address) for address, info in workers.items()}


def _no_workers(address: str) -> InputError:
    return InputError(
        f"the Dask scheduler at {address} has no workers: start some (make dask-worker SCHEDULER={address})"
    )


def _said(name: str, address: str) -> str:
    return f"Dask worker {name}" + (f" ({address})" if name != address else "")


def _problem(who: str, view: WorkerView | BaseException, target: str | None, api_url: str | None) -> str | None:
    if isinstance(view, BaseException):
        return (
            f"{who} cannot run covsweep's code ({view.__class__.__name__}: {str(view)[:160]}): start workers "
            "from the same checkout and venv (make dask-worker)"
        )
    if view.target_missing:
        return f"{who} cannot see {target}: a directory TARGET must be at the same path on every worker (a shared file system)"
    if view.api_problem:
        return (
            f"{who} cannot reach the Prefect API at {api_url} ({view.api_problem}): workers on other hosts "
            "need a server they reach (make server, PREFECT_API_URL)"
        )
    if view.docker_problem:
        return f"{who}: {view.docker_problem}"
    return None


def check_workers(
    client: distributed.Client, target: Path | None, api_url: str | None, docker: bool, timeout: float
) -> list[str]:
    """The workers' names, once every worker has shown that it sees the directory `target` (None: a
    repository, each worker clones it), the Prefect API and a Docker daemon where `docker`; InputError
    naming the first worker that does not."""
    names = worker_names(client)
    if not names:
        raise _no_workers(client.scheduler.address)
    seen = str(target) if target is not None else None
    views = client.run(worker_view, seen, api_url, docker, timeout, on_error="return")
    for worker, view in sorted(views.items()):
        if problem := _problem(_said(names.get(worker, worker), worker), view, seen, api_url):
            raise InputError(problem)
    return sorted(names.values())


def dask_runner(address: str, timeout: float) -> DaskTaskRunner:
    return DaskTaskRunner(address=address, client_kwargs={"timeout": timeout})


def remove_workspaces(client: distributed.Client, run_id: str, flow_workspace: Path) -> None:
    """Each worker host's workspace of the run, the flow's own excepted."""
    client.run(remove_run_workspace, run_id, socket.gethostname(), str(flow_workspace), on_error="ignore")


def reach_scheduler(address: str, timeout: float) -> list[str]:
    """The workers' names; InputError when the scheduler cannot be reached or has no workers."""
    with connected(address, timeout) as client:
        names = worker_names(client)
    if not names:
        raise _no_workers(address)
    return sorted(names.values())


def check_cluster(address: str, target: Path | None, api_url: str | None, docker: bool, timeout: float) -> list[str]:
    """check_workers on the cluster at `address`."""
    with connected(address, timeout) as client:
        return check_workers(client, target, api_url, docker, timeout)


def run_api_url() -> str:
    """The Prefect API this process talks to: `covsweep run`'s temporary server has no PREFECT_API_URL."""
    with get_client(sync_client=True) as client:
        return str(client.api_url)


def lost_scheduler(exc: BaseException) -> bool:
    """A module's future cancelled because the flow's client lost the scheduler."""
    return isinstance(exc, distributed.client.FutureCancelledError)


def killed_workers(exc: BaseException) -> bool:
    """A module whose workers died under it more often than the scheduler's allowed-failures."""
    return isinstance(exc, distributed.KilledWorker)
