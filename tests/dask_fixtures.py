"""A real Dask cluster for the tests: `dask scheduler` and `dask worker` processes of this venv on
127.0.0.1, each in a session of its own, so that a test can SIGKILL one worker (nanny and process) or the
scheduler. conftest.py registers the fixture; tests import the class."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_llm import API_KEY
from tests.helpers import free_port
from tests.service_fixtures import start_process, stop

DASK = str(Path(sys.executable).with_name("dask"))


class DaskCluster:
    """A scheduler on a free port and named workers, started and stopped by the test."""

    def __init__(self, root: Path, worker_env: dict[str, str]):
        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.worker_env = worker_env
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start_scheduler(self) -> None:
        command = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"]
        self.scheduler = start_process(command, dict(os.environ), self.log("scheduler"))

    def start_worker(self, name: str, threads: int = 2, prefix: tuple[str, ...] = ()) -> None:
        """`prefix`: a command the worker runs under (e.g. unshare), given the worker's command line."""
        command = [*prefix, DASK, "worker", self.address, "--name", name, "--nthreads", str(threads), "--no-dashboard"]
        command += ["--local-directory", str(self.root / name)]
        self.workers[name] = start_process(command, {**os.environ, **self.worker_env}, self.log(name))

    def wait_for_workers(self, count: int, timeout: float = 180) -> None:
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker's nanny and its worker process at once: the host is gone, nothing restarts it."""
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait()

    def kill_scheduler(self) -> None:
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            stop(proc)
        self.workers = {}

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))


def start_cluster(cluster: DaskCluster, workers: tuple[str, ...] = ("w-1", "w-2")) -> DaskCluster:
    cluster.start_scheduler()
    for name in workers:
        cluster.start_worker(name)
    cluster.wait_for_workers(len(workers))
    return cluster


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[DaskCluster]:
    """Two workers (w-1, w-2, two threads each) with the scripted LLM's key and a cache folder of their
    own, as on another host: their own workspaces and snapshots, the sandbox image looked up there."""
    root = tmp_path / "dask"
    cluster = DaskCluster(root, {"COVSWEEP_LLM_API_KEY": API_KEY, "COVSWEEP_CACHE_DIR": str(root / "worker-cache")})
    try:
        yield start_cluster(cluster)
    finally:
        cluster.stop()
