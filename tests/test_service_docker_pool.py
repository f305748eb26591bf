"""The Docker work pool: `spec-to-production/docker` runs the flow in a container of the flow image
(deployments/flow-image, built offline), which starts the sandboxes on the host's Docker daemon."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import EXAMPLE, REPO
from tests.service_fixtures import (
    PREFECT,
    Service,
    api,
    start_process,
    stop,
    wait_for_report,
    wait_until,
)

pytestmark = pytest.mark.docker

FLOW_IMAGE = "covsweep-flow:latest"  # the image prefect.yaml's docker deployment names


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("docker-pool") / "shop"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture(scope="module")
def service_env(shop) -> dict[str, str]:
    # The Docker deployment mounts only the sweep's targets (and the cache and results).
    return {"COVSWEEP_SWEEP_TARGETS": str(shop)}


@pytest.fixture(scope="module")
def docker_worker(service: Service, sandbox_image) -> Iterator[Path]:
    """What `make worker-docker` does: build the flow image, start a Docker worker for covsweep-docker."""
    built = subprocess.run(
        ["bash", "deployments/flow-image/build.sh", FLOW_IMAGE], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    log = service.home / "docker-worker.log"
    worker = start_process(
        [PREFECT, "worker", "start", "--pool", "covsweep-docker", "--type", "docker", "--name", "covsweep-test-docker"],
        service.env,
        log,
    )
    try:
        yield log
    finally:
        stop(worker)


def gone_or_image(container_id: str) -> str | None:
    """The image of the container, None once it is gone."""
    try:
        return docker.from_env().containers.get(container_id).image.tags[0]
    except docker.errors.NotFound:
        return None


def test_a_run_of_the_docker_deployment_runs_in_the_flow_image(service, docker_worker, shop):
    with api(service) as client:
        deployment = client.read_deployment_by_name("spec-to-production/docker")
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"target": str(shop), "generator": "none", "timeout": 120}
        )
    report = wait_for_report(service, str(run.id), timeout=600)
    assert report["run_id"] == str(run.id) and report["target"] == str(shop)
    assert report["totals"]["failed"] == 0 and report["totals"]["modules"] >= 3
    # The baseline ran the project's own tests in a sandbox that the flow's container started.
    assert report["totals"]["line_before"] > 0
    assert (shop / ".covsweep" / "report.json").is_file()
    with api(service) as client:
        done = client.read_flow_run(uuid.UUID(str(run.id)))
    assert done.state.is_completed() and done.work_pool_name == "covsweep-docker"
    # The Docker worker records the run's container as "<docker host>:<container id>"; auto_remove takes it.
    container_id = (done.infrastructure_pid or "").rpartition(":")[2]
    assert container_id, done.infrastructure_pid
    wait_until("the flow's container removed", lambda: not gone_or_image(container_id), 60)
