"""What runs that died (a killed worker, a lost host) leave behind, removed by the runs after them:
their containers (the sandbox's and OpenHands') and their workspaces. A live run removes its own as it goes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import docker
from docker.errors import APIError
from docker.models.containers import Container

from tasks.sandbox.containers import DEADLINE_LABEL, LABEL, remove_container
from tasks.sandbox.nofollow import remove_tree

# A live run removes each container the moment it ends: one still there this long after lost its run.
# A running one this long past the deadline it was to end itself at did not (an image whose entrypoint
# does not run covsweep's command as given).
CONTAINER_AGE_S = 600
# A live run touches its workspace each time one of its modules starts.
WORKSPACE_AGE_S = 24 * 3600


def remove_leftovers(
    client: docker.DockerClient, older_than_s: float = CONTAINER_AGE_S, among: str | None = None
) -> list[str]:
    """covsweep's containers that ended `older_than_s` ago, or still run that long past their deadline:
    left by runs that died before removing them. Returns their ids. `among` (a label, `key=value`)
    narrows the sweep to those carrying it too."""
    now = time.time()
    removed = []
    labels = [LABEL, among] if among else [LABEL]
    # Listing inspects each one: those another run removes in between (or is removing) are left out.
    for container in client.containers.list(all=True, filters={"label": labels}, ignore_removed=True):
        since = _overdue_since(container)
        if since is None or now - since <= older_than_s:
            continue
        try:
            if remove_container(container):
                removed.append(container.id[:12])
        except APIError:
            continue  # Docker cannot remove it now (a busy mount): the sweep of a later run tries again
    return removed


def _overdue_since(container: Container) -> float | None:
    """Since when the container is of no use to a live run: when it ended, or when it was to have ended
    itself."""
    state = container.attrs["State"]
    if state.get("Status") in ("exited", "dead"):
        return _timestamp(state.get("FinishedAt", ""))
    try:  # running, or created and never started (its waiter died in between)
        return float(container.labels[DEADLINE_LABEL])
    except (KeyError, ValueError):
        return None  # an older covsweep's: it ends itself, and is removed once it has


def _timestamp(docker_time: str) -> float | None:
    """Docker's RFC 3339 times carry nanoseconds, which datetime does not parse."""
    try:
        return datetime.fromisoformat(docker_time[:19]).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def remove_stale_workspaces(runs: Path, older_than_s: float = WORKSPACE_AGE_S) -> list[str]:
    """Workspaces under `runs` in which nothing was created or removed for `older_than_s`."""
    removed = []
    for workspace in runs.iterdir() if runs.is_dir() else []:
        try:
            touched = max(p.stat().st_mtime for p in [workspace, *workspace.iterdir()])
        except OSError:
            continue  # removed meanwhile, or not a directory
        if time.time() - touched > older_than_s:
            if remove_tree(workspace):
                removed.append(workspace.name)
    return removed
