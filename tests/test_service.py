"""covsweep as a service: a real `prefect server start`, `deployments/deploy.py`, a real process worker,
and the `covsweep submit/status/results/queue` commands a user types against them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.helpers import run_cli

pytestmark = pytest.mark.docker

PREFECT = str(Path(sys.executable).with_name("prefect"))
DEPLOYMENTS = {"spec-to-production/default", "spec-to-production/docker", "coverage-sweep/nightly"}


@dataclass
class Service:
    url: str
    env: dict[str, str]
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A session of its own: the teardown signals it and its children, nothing else.
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def deploy(service: Service) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "deployments/deploy.py"], cwd=REPO, env=service.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def service(tmp_path_factory, sandbox_image) -> Iterator[Service]:
    """One server, deployed once, and one process worker polling every second, for the whole module."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    # Nothing of the user's Prefect or covsweep service configuration leaks in.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("COVSWEEP_SWEEP_TARGETS", "COVSWEEP_RESULTS_DIR")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_WORKER_QUERY_SECONDS="1", COVSWEEP_RESULTS_DIR=str(home / "results"))
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server = _start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                    server_env, home / "server.log")
    worker = None
    try:
        _wait_healthy(url, server, home / "server.log")
        svc = Service(url=url, env=env, home=home)
        deploy(svc)
        worker = _start([PREFECT, "worker", "start", "--pool", "covsweep", "--name", "covsweep-test"],
                        env, home / "worker.log")
        yield svc
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)


@contextmanager
def api(service: Service):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: service.url}):
        with get_client(sync_client=True) as client:
            yield client


def server_objects(service: Service) -> dict:
    """What deploy.py is responsible for, with the ids: a second deploy must not make new ones."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with api(service) as client:
        flows = {f.id: f.name for f in client.read_flows(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["spec-to-production", "coverage-sweep"])))}
        deployments = {f"{flows[d.flow_id]}/{d.name}": (d.id, d.work_pool_name, d.work_queue_name, len(d.schedules))
                       for d in client.read_deployments() if d.flow_id in flows}
        pools = {p.name: (p.id, p.type) for p in client.read_work_pools()}
        queues = {(pool, q.name): (q.id, q.priority)
                  for pool in ("covsweep", "covsweep-docker") for q in client.read_work_queues(work_pool_name=pool)}
        blocks = sorted((b.block_type.slug, b.name, str(b.id)) for b in client.read_block_documents())
        variables = {v.name: v.value for v in client.read_variables()}
    return {"deployments": deployments, "pools": pools, "queues": queues, "blocks": blocks, "variables": variables}


def assert_one_error_line(result, fragment: str, status: int = 2) -> str:
    assert result.returncode == status, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def submit(service: Service, target: Path, *args: str) -> str:
    started = time.monotonic()
    result = run_cli("submit", str(target), "--generator", "none", "--timeout", "120", *args, env=service.env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    uuid.UUID(run_id)  # stdout is the id alone, for RUN=$(covsweep submit ...)
    assert elapsed < 30, f"submit took {elapsed:.1f}s"
    return run_id


def wait_for_report(service: Service, run_id: str) -> dict:
    result = run_cli("results", run_id, "--wait", "--timeout", "300", "--poll", "1", env=service.env)
    assert result.returncode == 0, result.stderr + (service.home / "worker.log").read_text()[-4000:]
    return json.loads(result.stdout)


def test_deploy_is_idempotent(service):
    before = server_objects(service)
    again = deploy(service)
    assert "work pool covsweep (process): exists" in again.stdout
    assert server_objects(service) == before
    assert set(before["deployments"]) == DEPLOYMENTS
    assert {name: kind for name, (_, kind) in before["pools"].items()} == {"covsweep": "process",
                                                                        "covsweep-docker": "docker"}
    for pool in ("covsweep", "covsweep-docker"):
        priorities = {name: p for (owner, name), (_, p) in before["queues"].items() if owner == pool}
        assert {k: priorities[k] for k in ("critical", "high", "normal", "low")} == {
            "critical": 1, "high": 2, "normal": 3, "low": 4}
    assert ("local-file-system", "covsweep-results") in {(slug, name) for slug, name, _ in before["blocks"]}
    assert before["variables"]["covsweep_sweep_targets"] == []


def test_nightly_sweep_is_scheduled_at_two_utc(service):
    with api(service) as client:
        nightly = client.read_deployment_by_name("coverage-sweep/nightly")
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [("0 2 * * *", "UTC", True)]
    assert nightly.parameters == {"targets": []}
    assert (nightly.work_pool_name, nightly.work_queue_name) == ("covsweep", "low")


def test_submit_status_results(service, example):
    run_id = submit(service, example)
    status = run_cli("status", run_id, env=service.env)
    assert status.returncode == 0, status.stderr
    assert run_id in status.stdout and str(example) in status.stdout

    report = wait_for_report(service, run_id)
    assert report["schema"] == "covsweep.report/1"
    assert report["run_id"] == run_id
    assert report["target"] == str(example.resolve())
    assert report["totals"]["modules"] == len(report["modules"]) > 0
    assert json.loads((example / ".covsweep" / "report.json").read_text()) == report

    done = run_cli("status", run_id, env=service.env)
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stdout and "100%" in done.stdout
    assert all(m["module"] in done.stdout for m in report["modules"])


def test_priority_picks_the_queue(service, example):
    run_id = submit(service, example, "--priority", "critical")
    with api(service) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
    assert run.work_queue_name == "critical"
    assert "priority:critical" in run.tags
    queue = run_cli("queue", env=service.env)
    assert queue.returncode == 0, queue.stderr
    line = next(line for line in queue.stdout.splitlines() if run_id in line)
    assert "critical" in line and "spec-to-production/default" in line
    wait_for_report(service, run_id)


def test_bad_priority_is_refused(service, example):
    assert_one_error_line(run_cli("submit", str(example), "--priority", "urgent", env=service.env), "--priority")


def test_failed_run_exits_1_with_the_reason(service, tmp_path):
    # As `prefect deployment run spec-to-production/default --param target=...` would start it.
    with api(service) as client:
        deployment = client.read_deployment_by_name("spec-to-production/default")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"target": str(tmp_path / "gone")},
                                                     work_queue_name="high")
    result = run_cli("results", str(run.id), "--wait", "--timeout", "300", "--poll", "1", env=service.env)
    line = assert_one_error_line(result, "Failed", status=1)
    assert "does not exist" in line


def test_results_of_unknown_or_malformed_ids(service):
    missing = str(uuid.uuid4())
    assert_one_error_line(run_cli("results", missing, env=service.env), f"no flow run {missing}")
    assert_one_error_line(run_cli("status", missing, env=service.env), f"no flow run {missing}")
    assert_one_error_line(run_cli("results", "not-a-run", env=service.env), "not a flow run id")


def test_no_server_is_one_line(service):
    env = {**service.env, "PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api"}
    assert_one_error_line(run_cli("results", str(uuid.uuid4()), env=env), "not reachable")
