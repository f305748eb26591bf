"""What dead runs leave behind is removed by the runs after them, and nothing a live run still uses."""

from __future__ import annotations

import os
import time
import uuid
from contextlib import suppress

import docker
import pytest
from docker.errors import NotFound

from tasks.sandbox.containers import DEADLINE_LABEL, LABEL
from tasks.sandbox.leftovers import remove_leftovers, remove_stale_workspaces
from tests.helpers import deep_tree

DAY = 24 * 3600


@pytest.mark.docker
def test_an_ended_sandbox_container_is_removed_once_it_is_old_enough(sandbox_image, tmp_path):
    client = docker.from_env()
    # A sweep this eager would take the just-ended containers of other sessions on the daemon: only
    # this test's are swept.
    labels = {LABEL: "1", "covsweep.test": uuid.uuid4().hex}
    # Mounting tmp_path ties it to this test for the no-container-left-behind check.
    ended = client.containers.run(
        sandbox_image,
        ["true"],
        labels=labels,
        detach=True,
        volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
    )
    going = client.containers.run(
        sandbox_image,
        ["sleep", "60"],
        labels=labels,
        detach=True,
        volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
    )
    try:
        ended.wait(timeout=60)
        assert ended.id[:12] not in remove_leftovers(client, older_than_s=3600)  # may still be its run's
        time.sleep(1.5)
        removed = remove_leftovers(client, older_than_s=1, among=f"covsweep.test={labels['covsweep.test']}")
        assert ended.id[:12] in removed and going.id[:12] not in removed  # a running one is a live run's
        with pytest.raises(NotFound):
            client.containers.get(ended.id)
        going.reload()
        assert going.status == "running"
    finally:
        for container in (ended, going):
            with suppress(NotFound):
                container.remove(force=True)


@pytest.mark.docker
def test_a_container_running_long_past_its_deadline_is_removed(sandbox_image, tmp_path):
    # An image whose entrypoint does not run covsweep's command as given never ends itself.
    client = docker.from_env()
    now = time.time()
    deadlines = {"overdue": now - 3600, "within": now + 3600, "older": None}
    containers = {
        name: client.containers.run(
            sandbox_image,
            ["sleep", "60"],
            labels={LABEL: "openhands", **({DEADLINE_LABEL: str(int(at))} if at else {})},
            detach=True,
            volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
        )
        for name, at in deadlines.items()
    }
    try:
        removed = remove_leftovers(client, older_than_s=600)
        assert containers["overdue"].id[:12] in removed
        assert not {containers["within"].id[:12], containers["older"].id[:12]} & set(removed)
        with pytest.raises(NotFound):
            client.containers.get(containers["overdue"].id)
        for name in ("within", "older"):
            containers[name].reload()
            assert containers[name].status == "running"
    finally:
        for container in containers.values():
            with suppress(NotFound):
                container.remove(force=True)


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_workspaces_untouched_for_a_day_are_removed(tmp_path):
    runs = tmp_path / "runs"
    dead = runs / "dead-run"
    (dead / "shop__money.py").mkdir(parents=True)
    (dead / "shop__money.py" / "pynguin-1.log").write_text("...")
    deep_tree(dead / "shop__money.py", 1500)  # what a sandbox may leave: too deep for shutil.rmtree
    age(dead / "shop__money.py", 2 * DAY)
    age(dead, 2 * DAY)
    # A long run: its folder is old, but one of its modules started a minute ago.
    long = runs / "long-run"
    (long / "a.py").mkdir(parents=True)
    (long / "b.py").mkdir()
    age(long / "a.py", 2 * DAY)
    age(long, 2 * DAY)
    (runs / "new-run").mkdir()

    assert remove_stale_workspaces(runs) == ["dead-run"]
    assert sorted(p.name for p in runs.iterdir()) == ["long-run", "new-run"]
    assert remove_stale_workspaces(tmp_path / "no-runs-yet") == []
