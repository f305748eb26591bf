"""The one lifecycle of covsweep's containers: how a command is made to end itself after its budget, and
that a container another process removes first is as good as gone."""

from __future__ import annotations

import docker
import pytest
from docker.errors import NotFound

from tasks.sandbox.containers import (
    LABEL,
    SELF_KILL_GRACE_S,
    covsweep_container,
    docker_client,
    remove_container,
    self_ending,
)
from tests.helpers import in_threads


def test_a_sandbox_command_is_killed_outright_after_its_budget_and_the_grace():
    assert self_ending(["sh", "-c", "x"], 4.7) == ["timeout", "-s", "KILL", str(4 + SELF_KILL_GRACE_S), "sh", "-c", "x"]


def test_a_command_that_cleans_up_gets_sigterm_first_and_sigkill_after_its_grace():
    command = self_ending(["python", "-m", "openhands.core.main"], 60, term_grace_s=10)
    assert command == [
        "timeout",
        "-k",
        "10",
        "-s",
        "TERM",
        str(60 + SELF_KILL_GRACE_S),
        "python",
        "-m",
        "openhands.core.main",
    ]


@pytest.mark.docker
def test_a_container_removed_by_another_process_meanwhile_ends_its_block_quietly(sandbox_image, tmp_path):
    client = docker_client()
    volumes = {str(tmp_path): {"bind": "/mnt", "mode": "ro"}}  # ties it to this test for the leftover check
    with covsweep_container(client, sandbox_image, ["sleep", "60"], kind="sandbox", budget_s=60, volumes=volumes) as c:
        docker.from_env().containers.get(c.id).remove(force=True)  # as another run's sweep would
    with pytest.raises(NotFound):
        client.containers.get(c.id)
    assert remove_container(c) is False  # gone already: nothing to do, nothing raised


@pytest.mark.docker
def test_removals_racing_each_other_remove_it_once_and_raise_nothing(sandbox_image, tmp_path):
    """Docker answers 404, or 409 "removal already in progress", to all but one of them."""
    client = docker.from_env()
    for _ in range(3):
        container = client.containers.run(
            sandbox_image,
            ["sleep", "60"],
            labels={LABEL: "sandbox"},
            detach=True,
            volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
        )
        removed = in_threads(lambda c=container: remove_container(c), 6)
        assert removed.count(True) <= 1
        with pytest.raises(NotFound):
            client.containers.get(container.id)
