"""Shared fixtures: one ephemeral Prefect API and one sandbox image per session, real Docker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    from covsweep.settings import load
    from tasks.image import ensure_sandbox_image

    return ensure_sandbox_image(load())


@pytest.fixture(scope="session")
def docker_config(sandbox_image):
    from tasks.models import SandboxConfig

    return SandboxConfig(kind="docker", image=sandbox_image)


@pytest.fixture(scope="session")
def local_config():
    from tasks.models import SandboxConfig

    return SandboxConfig(kind="local")


def _sandbox_containers() -> list:
    from tasks.sandbox import LABEL

    return docker.from_env().containers.list(all=True, filters={"label": LABEL})


@pytest.fixture(autouse=True)
def no_container_left_behind(request):
    """Every Docker test ends with no sandbox container left, whatever happened in it."""
    yield
    if request.node.get_closest_marker("docker"):
        assert _sandbox_containers() == []


@pytest.fixture
def example(tmp_path) -> Path:
    """A fresh copy of the bundled example project."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target)
    return target
