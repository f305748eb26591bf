"""covsweep as a service, for the tests that need one: a real `prefect server start` in a PREFECT_HOME
of its own, `deployments/deploy.py` run against it, and a real process worker. conftest.py registers
this module's fixtures; tests import its helpers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import EXAMPLE, REPO, sandbox_containers
from tests.helpers import free_port, run_cli

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

PREFECT = str(Path(sys.executable).with_name("prefect"))


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A session of its own: stopping it signals it and its children, nothing else. Appending keeps
    # the log of an earlier start of the same process.
    with log.open("a") as out:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def descendants(pid: int) -> list[int]:
    """Every process below pid, through any number of generations."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@dataclass
class Service:
    url: str
    env: dict[str, str]
    home: Path
    port: int
    server: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def server_log(self) -> Path:
        return self.home / "server.log"

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"

    def start_server(self, timeout: float = 120) -> None:
        """On the same port and PREFECT_HOME (so the same database) every time."""
        env = {k: v for k, v in self.env.items() if k != "PREFECT_API_URL"}
        self.server = start_process(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
            env,
            self.server_log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"prefect server exited:\n{self.server_log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"prefect server not healthy after {timeout}s:\n{self.server_log.read_text()[-3000:]}")

    def stop_server(self) -> None:
        stop(self.server)
        self.server = None

    def start_worker(self, name: str = "covsweep-test") -> subprocess.Popen:
        self.worker = start_process(
            [PREFECT, "worker", "start", "--pool", "covsweep", "--name", name], self.env, self.worker_log
        )
        return self.worker

    def flow_run_processes(self) -> list[int]:
        """What the worker started for its flow runs: Prefect 3.8 gives each a session of its own."""
        if self.worker is None or self.worker.poll() is not None:
            return []
        return [p for p in descendants(self.worker.pid) if _group(p) not in (None, self.worker.pid)]

    def stop_worker(self) -> None:
        """The worker and the runs it started, which stopping its process group alone would leave running."""
        runs = self.flow_run_processes()
        stop(self.worker)
        self.worker = None
        groups = {g for g in map(_group, runs) if g is not None}
        # SIGTERM first: a run unwinds through its `finally`s, which remove its sandbox containers.
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            for group in groups:
                with suppress(ProcessLookupError):  # ended meanwhile
                    os.killpg(group, sig)
            deadline = time.monotonic() + grace
            while any(Path(f"/proc/{p}").exists() for p in runs) and time.monotonic() < deadline:
                time.sleep(0.2)


def deploy(service: Service) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "deployments/deploy.py"],
        cwd=REPO,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


DATABASE_SETTING = "PREFECT_API_DATABASE_CONNECTION_URL"
POSTGRES_SCRIPTS = REPO / "deployments" / "postgres"


@dataclass
class Postgres:
    """A PostgreSQL cluster of the test session's own, run by deployments/postgres/ as `make postgres` runs it."""

    env: dict[str, str]  # its COVSWEEP_CACHE_DIR and COVSWEEP_POSTGRES_PORT

    def start(self, database: str = "prefect") -> subprocess.CompletedProcess:
        """What `make postgres` does and prints, for one database."""
        command = ["bash", str(POSTGRES_SCRIPTS / "start.sh"), database]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=900)

    def database(self, name: str) -> str:
        """The connection URL of database `name`, created (with pg_trgm) if it is not there."""
        started = self.start(name)
        assert started.returncode == 0, started.stderr
        setting, _, url = started.stdout.strip().partition("=")
        assert setting == DATABASE_SETTING, started.stdout
        return url

    def stop(self) -> None:
        command = ["bash", str(POSTGRES_SCRIPTS / "stop.sh")]
        subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300, check=True)


def postgres_query(url: str, sql: str, *args: object, database: str | None = None) -> list:
    """The rows of one statement, through asyncpg with the URL as Prefect's server gets it (passfile included)."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql", database=database or make_url(url).database)

    async def fetch() -> list:
        connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(fetch())


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Installed if missing, created, started; in a directory and on a port of this session, stopped at its end."""
    root = Path(tempfile.mkdtemp(prefix="covsweep-tests-postgres-"))
    cluster = Postgres({**os.environ, "COVSWEEP_CACHE_DIR": str(root), "COVSWEEP_POSTGRES_PORT": str(free_port())})
    try:
        cluster.database("prefect")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def postgres_database(postgres) -> Iterator[str]:
    """The connection URL of an empty database of this test module's own, dropped after it."""
    name = f"covsweep_test_{uuid.uuid4().hex[:12]}"
    url = postgres.database(name)
    yield url
    postgres_query(url, f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """More environment for the service of one test module: override this fixture there to set some, e.g.
    {DATABASE_SETTING: postgres_database} for a server on PostgreSQL."""
    return {}


@pytest.fixture(scope="module")
def service(tmp_path_factory, sandbox_image, service_env) -> Iterator[Service]:
    """One server, deployed once, and one process worker polling every second, for the whole module."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    # Nothing of the user's Prefect or covsweep service configuration leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and k not in ("COVSWEEP_SWEEP_TARGETS", "COVSWEEP_RESULTS_DIR")
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        COVSWEEP_RESULTS_DIR=str(home / "results"),
        **service_env,
    )
    svc = Service(url=url, env=env, home=home, port=port)
    try:
        svc.start_server()
        deploy(svc)
        svc.start_worker()
        yield svc
    finally:
        send_events_held()
        svc.stop_worker()
        svc.stop_server()


def send_events_held() -> None:
    """Prefect's events worker in this process keeps the API URL of the first event it was given (a report
    read loads the results block, which is an event): it sends what it holds while this service is up, and
    stops, so that the next module's service gets a worker of its own instead of minutes of retries at exit
    against this one, gone by then."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60, at_exit=False)


@contextmanager
def pointed_at(service: Service):
    """Prefect's settings in this process aimed at the service, as the covsweep CLI's would be."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: service.url}):
        yield


@contextmanager
def api(service: Service):
    from prefect.client.orchestration import get_client

    with pointed_at(service), get_client(sync_client=True) as client:
        yield client


def submit(service: Service, target: Path, *args: str) -> str:
    result = run_cli("submit", str(target), "--generator", "none", "--timeout", "120", *args, env=service.env)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    uuid.UUID(run_id)  # stdout is the id alone, for RUN=$(covsweep submit ...)
    # It returns at once, not when the run ends: on a loaded host a CLI's start alone may take half a
    # minute, and the run (a worker's poll, a process of its own, a sandbox) takes longer still.
    run = flow_runs(service, [run_id])[run_id]
    assert not (run.state and run.state.is_final()), f"submit returned after its run ended {run.state.name}"
    return run_id


def wait_for_report(service: Service, run_id: str, timeout: float = 300) -> dict:
    result = run_cli("results", run_id, "--wait", "--timeout", str(timeout), "--poll", "1", env=service.env)
    assert result.returncode == 0, result.stderr + service.worker_log.read_text()[-4000:]
    return json.loads(result.stdout)


def wait_until(what: str, check, timeout: float, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def wait_while_finishing(service: Service, ids: list[str], stalled_s: float, poll: float = 1.0) -> dict[str, str]:
    """Each run's state type once all of them are final. How long that takes depends on the host's load
    and is no promise of the service's: this fails only when no run became final for `stalled_s`."""
    finished, deadline = 0, time.monotonic() + stalled_s
    while True:
        states = {i: r.state.type.value for i, r in flow_runs(service, ids).items() if r.state is not None}
        final = [i for i, s in states.items() if s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
        if len(final) == len(ids):
            return states
        if len(final) > finished:
            finished, deadline = len(final), time.monotonic() + stalled_s
        assert time.monotonic() < deadline, f"no run became final for {stalled_s:g}s: {finished} of {len(ids)}"
        time.sleep(poll)


def flow_runs(service: Service, ids: list[str]) -> dict[str, FlowRun]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api(service) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(i) for i in ids])), limit=len(ids)
        )
    return {str(r.id): r for r in found}


def read_report(service: Service, run_id: str) -> dict:
    """What `covsweep results RUN_ID` prints."""
    from covsweep import service as covsweep_service

    with pointed_at(service):
        return json.loads(covsweep_service.results(run_id))


@contextmanager
def cancelled_when_failing(service: Service, below: Path) -> Iterator[None]:
    """A failing test leaves no run of its own going into the next tests: `covsweep`'s runs that are not
    final are cancelled, which stops their processes and so removes their sandbox containers."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.states import Cancelling

    try:
        yield
    except BaseException:
        going = FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED", "PENDING", "RUNNING"]))
        )
        with api(service) as client:
            for run in client.read_flow_runs(flow_run_filter=going, limit=200):
                client.set_flow_run_state(run.id, Cancelling(), force=True)
        wait_until("the failing test's runs stopped", lambda: not sandbox_containers(below), 120)
        raise


def small_shop(root: Path) -> Path:
    """examples/shop cut down to one module and its tests: a quick run."""
    for part in ("pyproject.toml", "src/shop/__init__.py", "src/shop/money.py", "tests/test_money.py"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE / part, root / part)
    return root


class RunsGoing:
    """The most flow runs pending or running at once on the covsweep pool, sampled twice a second."""

    def __init__(self, service: Service):
        self.service, self.most, self._stop = service, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
            WorkPoolFilter,
            WorkPoolFilterName,
        )
        from prefect.exceptions import PrefectHTTPStatusError

        going = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PENDING", "RUNNING"])))
        pool = WorkPoolFilter(name=WorkPoolFilterName(any_=["covsweep"]))
        with api(self.service) as client:
            while not self._stop.wait(0.5):
                try:
                    count = client.count_flow_runs(flow_run_filter=going, work_pool_filter=pool)
                except (httpx.HTTPError, PrefectHTTPStatusError):
                    continue  # a server too busy to answer this once: one sample fewer, not a sampler gone
                self.most = max(self.most, count)

    def __enter__(self) -> RunsGoing:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
