"""Runs whose worker or host is lost half-way: a run outlives its killed worker; a run whose processes
die too is marked Crashed by the silent-run automation, and a resubmission finishes its work, reusing
the modules it had done. A real server, a real process worker and the real sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from tests.conftest import sandbox_containers
from tests.helpers import write_project
from tests.service_fixtures import Service, api, submit, wait_for_report, wait_until

pytestmark = pytest.mark.docker

SILENT_RUN_S = 90  # Prefect's least heartbeat interval is 30 s: three missed ones


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"COVSWEEP_SILENT_RUN_S": str(SILENT_RUN_S)}


def test_a_run_outlives_its_killed_worker(service, example):
    run_id = submit(service, example)

    def running() -> bool:
        with api(service) as client:
            return client.read_flow_run(uuid.UUID(run_id)).state.type.value == "RUNNING"

    wait_until("the run running", running, 120, poll=0.2)
    assert service.flow_run_processes(), "no process of the flow run found"
    os.killpg(service.worker.pid, signal.SIGKILL)  # a worker restarted for an upgrade, or OOM-killed
    service.worker.wait()
    try:
        # The run logs on after its worker is gone: to the API, and to no pipe that could break.
        report = wait_for_report(service, run_id)
        assert report["run_id"] == run_id and report["totals"]["failed"] == 0
        with api(service) as client:
            assert client.read_flow_run(uuid.UUID(run_id)).state.type.value == "COMPLETED"
    finally:
        service.start_worker()


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
PYNGUIN = ("--generator", "pynguin", "--timeout", "40", "--max-iterations", "1", "--reruns", "1", "--concurrency", "1")


def module_states(service: Service, run_id: str) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api(service) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)])))
    return {t.name.removeprefix("generate "): t.state.name for t in tasks if t.name.startswith("generate ")}


def test_killed_worker_run_is_finished_by_a_resubmission_reusing_done_modules(service, tmp_path):
    import docker

    from tasks.core.settings import load

    target = write_project(tmp_path / "calc", TWO_MODULES)
    run_id = submit(service, target, *PYNGUIN)
    workspaces = load().cache_dir / "runs" / run_id

    # Kill while one module is done and Pynguin works on the other: its log is opened as its sandbox
    # container starts, which then runs for the whole search time.
    def half_way():
        states = module_states(service, run_id)
        done = [m for m, s in states.items() if s == "Completed"]
        going = [m for m, s in states.items() if s == "Running"]
        started = going and (workspaces / going[0].replace("/", "__") / "pynguin-1.log").exists()
        return done if len(done) == 1 and started and sandbox_containers(tmp_path) else None

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
    try:
        service.start_worker(name="covsweep-test-2")
        report = wait_for_report(service, submit(service, target, *PYNGUIN))
        modules = {m["module"]: m for m in report["modules"]}
        assert [m for m, r in modules.items() if r["status"] == "skipped"] == done_before_kill  # reused, not redone
        assert all(r["success"] for r in modules.values())
        # The killed run never wrote the reused module's tests: the resubmission does.
        reused = modules[done_before_kill[0]]["generated_files"]
        assert reused and all((target / f).is_file() for f in reused)

        # Its heartbeats stopped with it: the silent-run automation marks it Crashed, freeing its pool slot.
        def crashed():
            with api(service) as client:
                state = client.read_flow_run(uuid.UUID(run_id)).state
            return state if state.type.value == "CRASHED" else None

        state = wait_until("the killed run Crashed", crashed, SILENT_RUN_S + 120, poll=2)
        assert "no heartbeat" in state.message
        assert orphans, "the killed run left no sandbox container behind"
    finally:
        # The killed run's sandbox container kills itself after its budget, the next run's plan removes
        # it ten minutes later; its workspace stays behind.
        for container in sandbox_containers(tmp_path):
            docker.from_env().api.remove_container(container, force=True)
        shutil.rmtree(workspaces, ignore_errors=True)
