"""covsweep as a service under load and faults: many submissions at once, a worker killed half-way
through a run, a server restarted. Real server, real process worker, real sandbox (service_fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, sandbox_containers
from tests.helpers import run_cli, write_project
from tests.service_fixtures import Service, api, submit, wait_for_report

pytestmark = pytest.mark.docker

LOAD = 20
POOL_LIMIT = 4  # flow runs at once on the work pool: 20 runs of `--generator none` in about a minute


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"COVSWEEP_POOL_CONCURRENCY": str(POOL_LIMIT)}


def flow_runs(service: Service, ids: list[str]) -> dict[str, object]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api(service) as client:
        found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[uuid.UUID(i) for i in ids])), limit=len(ids))
    return {str(r.id): r for r in found}


@contextmanager
def as_user_of(service: Service):
    """covsweep's own service functions, in this process, pointed at the service as its CLI would be."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from covsweep import service as covsweep_service

    with temporary_settings({PREFECT_API_URL: service.url}):
        yield covsweep_service


def read_report(service: Service, run_id: str) -> dict:
    """What `covsweep results RUN_ID` prints."""
    with as_user_of(service) as covsweep_service:
        return json.loads(covsweep_service.results(run_id))


def small_shop(root: Path) -> Path:
    """examples/shop cut down to one module and its tests: a quick run."""
    for part in ("pyproject.toml", "src/shop/__init__.py", "src/shop/money.py", "tests/test_money.py"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE / part, root / part)
    return root


def test_twenty_submissions_at_once_all_queue_and_complete(service, tmp_path):
    targets = [small_shop(tmp_path / f"shop{i}") for i in range(LOAD)]
    together = threading.Barrier(LOAD)

    def submit_one(target: Path) -> str:
        # What `covsweep submit TARGET --generator none` sends, all twenty released at the same moment:
        # twenty CLI processes would take a minute of CPU to start, and start one after the other.
        with as_user_of(service) as covsweep_service:
            together.wait()
            return str(covsweep_service.submit({"target": str(target), "generator": "none", "timeout": 120},
                                               "normal").id)

    started = time.monotonic()
    with ThreadPoolExecutor(LOAD) as pool:
        ids = list(pool.map(submit_one, targets))
    submitted_in = time.monotonic() - started

    runs = flow_runs(service, ids)
    assert len(set(ids)) == len(runs) == LOAD  # every submission is its own run, none lost
    assert {r.work_queue_name for r in runs.values()} == {"normal"}
    listed = run_cli("queue", env=service.env)
    assert listed.returncode == 0, listed.stderr
    still_open = [i for i, r in flow_runs(service, ids).items() if not r.state.is_final()]
    assert all(i in listed.stdout for i in still_open)  # open when `queue` ran, so listed by it

    # The pool's limit holds under load: never more runs going at once than it allows.
    most_at_once, deadline = 0, time.monotonic() + 360
    while True:
        states = {i: r.state.type.value for i, r in flow_runs(service, ids).items()}
        most_at_once = max(most_at_once, sum(s in ("PENDING", "RUNNING") for s in states.values()))
        if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
            break
        assert time.monotonic() < deadline, f"not done after 360s: {states}\n{service.worker_log.read_text()[-3000:]}"
        time.sleep(1)
    assert set(states.values()) == {"COMPLETED"}, states
    assert 1 <= most_at_once <= POOL_LIMIT

    for run_id, target in zip(ids, targets):
        report = read_report(service, run_id)
        assert (report["run_id"], report["target"]) == (run_id, str(target.resolve()))
        assert "shop/money.py" in [m["module"] for m in report["modules"]] and report["totals"]["failed"] == 0
        assert json.loads((target / ".covsweep" / "report.json").read_text()) == report
    print(f"{LOAD} runs: submitted in {submitted_in:.1f}s, all done in {time.monotonic() - started:.1f}s, "
          f"at most {most_at_once} at once")


def completed_reports(service: Service) -> dict[str, dict]:
    from prefect.client.schemas.filters import (
        FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with api(service) as client:
        done = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))), limit=200)
    return {str(r.id): read_report(service, str(r.id)) for r in done if r.deployment_id}


def test_server_restart_loses_no_report(service, example):
    run_id = submit(service, example)
    report = wait_for_report(service, run_id)
    before = completed_reports(service)  # this run's, and those of every earlier test of the module
    assert before[run_id] == report

    service.stop_server()
    down = run_cli("results", run_id, env=service.env)
    assert down.returncode == 2 and "not reachable" in down.stderr
    service.start_server()  # same port, same PREFECT_HOME: the same SQLite database

    again = run_cli("results", run_id, env=service.env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == report
    assert completed_reports(service) == before
    # The worker rode out the outage: the service takes new work without being restarted.
    assert service.worker.poll() is None, service.worker_log.read_text()[-3000:]
    assert wait_for_report(service, submit(service, example))["totals"]["failed"] == 0


TWO_MODULES = {
    "calc/__init__.py": "",
    "calc/arith.py": """
        def clamp(value: int, low: int, high: int) -> int:
            if value < low:
                return low
            if value > high:
                return high
            return value


        def sign(value: int) -> int:
            if value > 0:
                return 1
            if value < 0:
                return -1
            return 0
    """,
    "calc/words.py": """
        def shout(text: str) -> str:
            if not text:
                return ""
            return text.upper() + "!"


        def initials(name: str) -> str:
            parts = [p for p in name.split() if p]
            if len(parts) == 1:
                return parts[0][0].upper()
            return "".join(p[0].upper() for p in parts)
    """,
}
# One module at a time, one quick Pynguin round each: a kill finds one module done and one going.
PYNGUIN = ("--generator", "pynguin", "--timeout", "40", "--max-iterations", "1", "--reruns", "1",
           "--concurrency", "1")


def module_states(service: Service, run_id: str) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api(service) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)])))
    return {t.name.removeprefix("generate "): t.state.name for t in tasks if t.name.startswith("generate ")}


def wait_until(what: str, check, timeout: float, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def test_killed_worker_run_is_finished_by_a_resubmission_reusing_done_modules(service, tmp_path):
    import docker

    target = write_project(tmp_path / "calc", TWO_MODULES)
    run_id = submit(service, target, *PYNGUIN)

    # Kill while one module is done and the other is inside a sandbox container.
    def half_way():
        states = module_states(service, run_id)
        done = [m for m, s in states.items() if s == "Completed"]
        return done if len(done) == 1 and len(states) == 2 and sandbox_containers(tmp_path) else None

    done_before_kill = wait_until("one module done, the other going", half_way, 240)
    engine = service.flow_run_processes()
    assert engine, "no process of the flow run found"
    groups = {os.getpgid(pid) for pid in engine}
    os.killpg(service.worker.pid, signal.SIGKILL)
    service.worker.wait()
    # Prefect 3.8 starts a flow run in a session of its own: it outlives its worker's process group
    # (until its next log line hits the dead worker's pipe and it crashes itself).
    assert all(Path(f"/proc/{pid}").exists() for pid in engine)
    # What a lost host or container does too: the run's processes die with the worker.
    for group in groups:
        os.killpg(group, signal.SIGKILL)
    wait_until("the run's processes gone", lambda: not any(Path(f"/proc/{p}").exists() for p in engine), 30)

    orphans = sandbox_containers(tmp_path)
    service.start_worker(name="covsweep-test-2")
    again = submit(service, target, *PYNGUIN)
    report = wait_for_report(service, again)

    statuses = {m["module"]: m["status"] for m in report["modules"]}
    assert [m for m, s in statuses.items() if s == "skipped"] == done_before_kill  # reused, not generated again
    assert all(s in ("reached_target", "improved", "unchanged") for m, s in statuses.items()
               if m not in done_before_kill)
    for module in statuses:  # the killed run never wrote tests: the resubmission writes all of them
        assert (target / "tests" / "generated" / f"test_{module.removesuffix('.py').replace('/', '_')}.py").is_file()

    # Nothing marks the killed run: it stays Running (holding one of the pool's slots) and its
    # sandbox container stays behind. Tidy both up, as an operator would.
    from prefect.states import Crashed

    with api(service) as client:
        assert client.read_flow_run(uuid.UUID(run_id)).state.type.value == "RUNNING"
        client.set_flow_run_state(uuid.UUID(run_id), Crashed(message="worker killed by the test"), force=True)
    assert orphans, "the killed run left no sandbox container behind"
    for container in orphans:
        docker.from_env().api.remove_container(container, force=True)
    from covsweep.settings import load

    shutil.rmtree(load().cache_dir / "runs" / run_id, ignore_errors=True)  # the killed run's workspace
