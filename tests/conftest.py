"""Shared fixtures: one ephemeral Prefect API and one sandbox image per session, real Docker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker
import pytest

pytest_plugins = ["tests.fake_llm", "tests.service_fixtures"]  # the scripted LLM server, the Prefect service

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


def sandbox_containers(below: Path) -> list[str]:
    """Sandbox containers mounting something below `below`: this session's, not those of
    another session using the same daemon at the same time."""
    from tasks.sandbox import LABEL

    return [c["Id"][:12] for c in docker.from_env().api.containers(all=True, filters={"label": LABEL})
            if any(Path(m.get("Source", "/")).is_relative_to(below) for m in c.get("Mounts", []))]


@pytest.fixture(autouse=True)
def no_container_left_behind(request, tmp_path_factory):
    """Every Docker test ends with no sandbox container left, whatever happened in it."""
    yield
    if request.node.get_closest_marker("docker"):
        assert sandbox_containers(tmp_path_factory.getbasetemp()) == []


@pytest.fixture
def example(tmp_path) -> Path:
    """A fresh copy of the bundled example project."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target)
    return target
