"""covsweep as a service: a real `prefect server start`, `deployments/deploy.py`, a real process worker,
and the `covsweep submit/status/results/queue` commands a user types against them."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from tests.helpers import free_port, run_cli
from tests.service_fixtures import (
    Service,
    api,
    deploy,
    submit,
    wait_for_report,
)

pytestmark = pytest.mark.docker

DEPLOYMENTS = {"spec-to-production/default", "spec-to-production/docker", "coverage-sweep/nightly"}


def server_objects(service: Service) -> dict:
    """What deploy.py is responsible for, with the ids: a second deploy must not make new ones."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with api(service) as client:
        flows = {
            f.id: f.name
            for f in client.read_flows(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["spec-to-production", "coverage-sweep"]))
            )
        }
        deployments = {
            f"{flows[d.flow_id]}/{d.name}": (d.id, d.work_pool_name, d.work_queue_name, len(d.schedules))
            for d in client.read_deployments()
            if d.flow_id in flows
        }
        pools = {p.name: (p.id, p.type) for p in client.read_work_pools()}
        queues = {
            (pool, q.name): (q.id, q.priority)
            for pool in ("covsweep", "covsweep-docker")
            for q in client.read_work_queues(work_pool_name=pool)
        }
        blocks = sorted((b.block_type.slug, b.name, str(b.id)) for b in client.read_block_documents())
        variables = {v.name: v.value for v in client.read_variables()}
        automations = {a.name: (a.id, a.trigger.within) for a in client.read_automations()}
    return {
        "deployments": deployments,
        "pools": pools,
        "queues": queues,
        "blocks": blocks,
        "variables": variables,
        "automations": automations,
    }


def assert_one_error_line(result, fragment: str, status: int = 2) -> str:
    assert result.returncode == status, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def test_deploy_is_idempotent(service):
    before = server_objects(service)
    again = deploy(service)
    assert "work pool covsweep (process): exists" in again.stdout
    assert server_objects(service) == before
    assert set(before["deployments"]) == DEPLOYMENTS
    assert {name: kind for name, (_, kind) in before["pools"].items()} == {
        "covsweep": "process",
        "covsweep-docker": "docker",
    }
    for pool in ("covsweep", "covsweep-docker"):
        priorities = {name: p for (owner, name), (_, p) in before["queues"].items() if owner == pool}
        assert {k: priorities[k] for k in ("critical", "high", "normal", "low")} == {
            "critical": 1,
            "high": 2,
            "normal": 3,
            "low": 4,
        }
    assert {
        ("local-file-system", "covsweep-results"),
        ("covsweep-llm", "default"),
        ("covsweep-sandbox", "default"),
        ("covsweep-cluster", "default"),
    } <= {(slug, name) for slug, name, _ in before["blocks"]}
    assert before["automations"]["covsweep-crash-silent-runs"][1] == timedelta(seconds=300)
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
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"target": str(tmp_path / "gone")}, work_queue_name="high"
        )
    result = run_cli("results", str(run.id), "--wait", "--timeout", "300", "--poll", "1", env=service.env)
    line = assert_one_error_line(result, "Failed", status=1)
    assert "does not exist" in line


def test_results_of_unknown_or_malformed_ids(service):
    missing = str(uuid.uuid4())
    assert_one_error_line(run_cli("results", missing, env=service.env), f"no flow run {missing}")
    assert_one_error_line(run_cli("status", missing, env=service.env), f"no flow run {missing}")
    assert_one_error_line(run_cli("results", "not-a-run", env=service.env), "not a flow run id")


def test_no_server_is_one_line(service):
    env = {**service.env, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    assert_one_error_line(run_cli("results", str(uuid.uuid4()), env=env), "not reachable")
