"""What runs that died (a killed worker, a lost host) leave behind, removed by the runs after them:
their ended sandbox containers and their workspaces. A live run removes its own as it goes."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import docker
from docker.errors import APIError

from tasks.sandbox import LABEL

# A live run removes each container the moment it ends: one still there this long after lost its run.
CONTAINER_AGE_S = 600
# A live run touches its workspace each time one of its modules starts.
WORKSPACE_AGE_S = 24 * 3600


def remove_leftovers(client: docker.DockerClient, older_than_s: float = CONTAINER_AGE_S) -> list[str]:
    """Sandbox containers that ended long ago, left by runs that died before removing them; a live
    run removes each of its containers as soon as it ends. Returns their ids."""
    now = time.time()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL, "status": "exited"}):
        ended = _timestamp(container.attrs["State"].get("FinishedAt", ""))
        if ended and now - ended > older_than_s:
            try:
                container.remove(force=True)
                removed.append(container.id[:12])
            except APIError:
                pass  # another run removed it meanwhile
    return removed


def _timestamp(docker_time: str) -> float | None:
    """Docker's RFC 3339 times carry nanoseconds, which datetime does not parse."""
    try:
        return datetime.fromisoformat(docker_time[:19]).replace(tzinfo=timezone.utc).timestamp()
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
            shutil.rmtree(workspace, ignore_errors=True)
            removed.append(workspace.name)
    return removed
