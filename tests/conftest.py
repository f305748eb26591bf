"""Shared fixtures: one ephemeral Prefect API and one sandbox image per session, real Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import pytest

pytest_plugins = [
    "tests.fake_llm",
    "tests.service_fixtures",
    "tests.git_fixtures",
    "tests.dask_fixtures",
]  # scripted LLM, Prefect service, git remotes, Dask cluster

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
# A Prefect home of the session's own: `covsweep run` in a subprocess keeps its database and results there,
# never in the user's, and two test sessions at once do not share one SQLite file.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="covsweep-tests-prefect-")


# Tests using these fixtures get the marker by themselves: the fast tier (`-m "not docker and not
# server"`) cannot take one in by a forgotten marker.
SERVER_FIXTURES = {"prefect_api", "service"}  # prefect_test_harness or `prefect server start`
DOCKER_FIXTURES = {"sandbox_image", "docker_config", "service"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)
        if used & DOCKER_FIXTURES:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(autouse=True)
def no_prefect_server_unless_marked(request, monkeypatch):
    """A test not marked `server` cannot start a Prefect server, here or in a `covsweep run` it starts:
    Prefect raises "No Prefect API URL provided" instead (an optional block read takes that as no
    block), so a forgotten marker shows as a failure, never as a server in the fast tier."""
    if request.node.get_closest_marker("server"):
        yield
        return
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
        yield


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    from tasks.core.settings import load
    from tasks.sandbox.images import ensure_sandbox_image

    return ensure_sandbox_image(load())


@pytest.fixture(scope="session")
def pynguin(sandbox_image, tmp_path_factory) -> str:
    """Pynguin in a venv of its own (it pins pytest<9), from the wheelhouse the image is built from."""
    from tasks.core.settings import load

    venv = tmp_path_factory.mktemp("pynguin") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(load().cache_dir / "wheelhouse"),
            "pynguin==0.48.0",
        ],
        check=True,
    )
    return str(venv / "bin" / "pynguin")


@pytest.fixture(scope="session")
def docker_config(sandbox_image):
    from tasks.core.models import SandboxConfig

    return SandboxConfig(kind="docker", image=sandbox_image)


@pytest.fixture(scope="session")
def local_config():
    from tasks.core.models import SandboxConfig

    return SandboxConfig(kind="local")


def sandbox_containers(below: Path) -> list[str]:
    """covsweep's containers mounting something below `below`, or at a path below it (a target's
    snapshot is mounted at the target's path): this session's, not those of another session using the
    same daemon at the same time."""
    from tasks.sandbox.containers import LABEL

    return [
        c["Id"][:12]
        for c in docker.from_env().api.containers(all=True, filters={"label": LABEL})
        if any(
            Path(m.get(end) or "/").is_relative_to(below)
            for m in c.get("Mounts", [])
            for end in ("Source", "Destination")
        )
    ]


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
