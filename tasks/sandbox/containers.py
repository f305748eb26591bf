"""The Docker side of covsweep: one client per thread, and the one lifecycle every container it starts
goes through (the sandbox's and OpenHands'): labelled for the sweep of later runs, ending itself after
its budget, removed on every way out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import requests
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from tasks.core.errors import InputError

# Every container covsweep starts carries LABEL (its value: "sandbox" or "openhands"), and DEADLINE_LABEL:
# when, in seconds since the epoch, it ends itself at the latest. Past that it is a dead run's leftover.
LABEL = "covsweep.container"
DEADLINE_LABEL = "covsweep.deadline"
# A container also ends itself this long after its budget: its waiter may be dead (a killed worker).
SELF_KILL_GRACE_S = 30

# What Docker answers (409 Conflict) about a container another process is removing: as good as gone.
BEING_REMOVED = ("removal of container", "marked for removal", "is being removed")

# One client per thread, made and pinged once: docker-py promises no thread safety, and a client per
# sandbox run would cost two extra requests each (the API version and the ping).
_clients = threading.local()


def docker_client() -> docker.DockerClient:
    client = getattr(_clients, "client", None)
    if client is None:
        try:
            client = docker.from_env(timeout=60)
            client.ping()
        except (DockerException, requests.RequestException) as exc:
            raise InputError(
                f"Docker is not reachable ({exc.__class__.__name__}): start the daemon "
                "(`sudo systemctl start docker` or `dockerd &`) or use --sandbox local"
            ) from None
        _clients.client = client
    return client


def self_ending(command: list[str], budget_s: float, term_grace_s: int = 0) -> list[str]:
    """`command` under coreutils' timeout, SELF_KILL_GRACE_S after `budget_s`: SIGKILL at once, or with
    `term_grace_s`, SIGTERM first (a process that cleans up after itself) and SIGKILL that much later."""
    after = str(int(budget_s) + SELF_KILL_GRACE_S)
    if term_grace_s:
        return ["timeout", "-k", str(term_grace_s), "-s", "TERM", after, *command]
    return ["timeout", "-s", "KILL", after, *command]


@contextmanager
def covsweep_container(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    *,
    kind: str,
    budget_s: float,
    term_grace_s: int = 0,
    labels: dict[str, str] | None = None,
    **options,
) -> Iterator[Container]:
    """A started container running `command`, labelled, ending itself after its budget; removed when the
    block ends, however it ends. `options` go to docker-py's containers.create."""
    deadline = time.time() + int(budget_s) + SELF_KILL_GRACE_S + term_grace_s
    container = client.containers.create(
        image,
        self_ending(command, budget_s, term_grace_s),
        labels={**(labels or {}), LABEL: kind, DEADLINE_LABEL: str(int(deadline) + 1)},
        **options,
    )
    try:
        container.start()
        yield container
    finally:
        remove_container(container)


def gone(error: APIError) -> bool:
    """Whether Docker refused because the container is no more, or is being removed (the sweep of
    another run, or of another host's session on the same daemon): the end its owner wanted anyway."""
    if isinstance(error, NotFound):
        return True
    text = str(error.explanation or error).lower()
    return error.status_code == 409 and any(sign in text for sign in BEING_REMOVED)


def remove_container(container: Container) -> bool:
    """Remove it, running or not; False when it was gone already or another process is removing it."""
    try:
        container.remove(force=True)
    except APIError as exc:
        if not gone(exc):
            raise
        return False
    return True
