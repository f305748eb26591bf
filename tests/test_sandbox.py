"""The sandbox's promises, each shown by what a script inside it can and cannot do (real Docker)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from tasks.core.errors import ModuleError
from tasks.core.models import SandboxConfig
from tasks.sandbox import runner as sandbox
from tasks.sandbox.containers import DEADLINE_LABEL, LABEL
from tasks.sandbox.runner import prepare_workspace
from tests.conftest import REPO
from tests.helpers import host_processes_with

SECRET = "sk-test-secret"


@pytest.fixture
def workspace(tmp_path) -> Path:
    return prepare_workspace(tmp_path / "ws")


@pytest.fixture
def target(tmp_path) -> Path:
    root = tmp_path / "target"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("VALUE = 1\n")
    return root


def run(
    config: SandboxConfig,
    script: str,
    workspace: Path,
    target: Path,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> sandbox.ExecResult:
    return sandbox.run(config, script, workspace=workspace, read_only=[target], timeout=timeout, env=env)


def py(code: str) -> str:
    """A script running `code` with the sandbox's Python."""
    return f"\"$PY\" -c '{code}'"


def assert_container_gone(container_id: str) -> None:
    assert container_id, "the script did not report its container id"
    client = docker.from_env()
    with pytest.raises(NotFound):
        client.containers.get(container_id)
    # Whatever the label filter shows belongs to other runs, never to this one (which may come and go).
    for other in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        assert not other.id.startswith(container_id)


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def dies_within(pid: int, seconds: float) -> bool:
    """SIGKILL is delivered asynchronously: give a killed process a moment to be gone."""
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- Docker ------------------------------------------------------------------------------------


@pytest.mark.docker
def test_script_runs_as_non_root_user(docker_config, workspace, target):
    result = run(docker_config, "id -u; id -g", workspace, target)
    assert result.exit_code == 0, result.output
    uid, gid = result.output.split()
    assert uid != "0" and gid != "0"
    assert int(uid) == sandbox.CONTAINER_UID


@pytest.mark.docker
def test_no_network_only_an_idle_loopback(docker_config, workspace, target):
    code = """
import socket
def attempt(what, call):
    try:
        call()
        print(what, "OK")
    except OSError as exc:
        print(what, "FAILED", type(exc).__name__)
attempt("outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3))
attempt("outside-http", lambda: socket.create_connection(("93.184.215.14", 80), timeout=3))
attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
attempt("loopback", lambda: socket.create_connection(("127.0.0.1", 80), timeout=3))
attempt("loopback-high", lambda: socket.create_connection(("127.0.0.1", 8080), timeout=3))
print("interfaces", sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
"""
    result = run(docker_config, py(code), workspace, target)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" ", 1) for line in result.output.strip().splitlines())
    for what in ("outside", "outside-http", "dns", "loopback", "loopback-high"):
        assert lines[what].startswith("FAILED"), (what, result.output)
    assert lines["loopback"] == "FAILED ConnectionRefusedError"
    assert lines["interfaces"] == "['lo']"


@pytest.mark.docker
def test_target_is_read_only_and_workspace_writable(docker_config, workspace, target):
    mod = target / "pkg" / "mod.py"
    before = mod.read_bytes()
    script = (
        f"echo 'VALUE = 2' > {mod}; echo overwrite=$?; "
        f"touch {target}/planted.py; echo create=$?; "
        f"rm -f {target}/pkg/__init__.py; echo delete=$?; "
        f"echo from-sandbox > {workspace}/out.txt; echo workspace=$?; "
        f"touch /etc/planted; echo rootfs=$?"
    )
    result = run(docker_config, script, workspace, target)
    assert result.exit_code == 0, result.output
    assert "Read-only file system" in result.output
    assert "overwrite=0" not in result.output
    assert "create=0" not in result.output
    assert "delete=0" not in result.output
    assert "rootfs=0" not in result.output
    assert "workspace=0" in result.output
    assert mod.read_bytes() == before
    assert not (target / "planted.py").exists()
    assert (target / "pkg" / "__init__.py").exists()
    assert (workspace / "out.txt").read_text() == "from-sandbox\n"


@pytest.mark.docker
def test_links_and_fifos_the_sandbox_leaves_in_its_workspace_are_gone_when_it_ends(
    docker_config, workspace, target, tmp_path
):
    host_file = tmp_path / "host-file"
    host_file.write_text("the host's")
    script = (
        f"mkdir -p {workspace}/deep/er && echo kept > {workspace}/deep/er/out.txt && "
        f"ln -s {host_file} {workspace}/test_covsweep_2.py && ln -s {tmp_path} {workspace}/accepted && "
        f"ln -s / {workspace}/deep/er/root && mkfifo {workspace}/deep/pipe && echo planted"
    )
    result = run(docker_config, script, workspace, target)
    assert "planted" in result.output, result.output
    left = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    assert left == ["deep", "deep/er", "deep/er/out.txt"]
    assert host_file.read_text() == "the host's"


@pytest.mark.docker
def test_a_workspace_too_deep_for_the_host_to_check_fails_the_step_as_the_sandboxs(docker_config, workspace, target):
    # 1600 folders of 5 characters: a path longer than PATH_MAX, made one folder at a time from the last.
    script = f"cd {workspace} && for i in $(seq 1600); do mkdir deep_ && cd deep_ || exit 1; done; ln -s / link"
    try:
        with pytest.raises(ModuleError) as raised:
            run(docker_config, script, workspace, target)
    finally:
        subprocess.run(["rm", "-rf", str(workspace / "deep_")], check=True)  # Python's rmtree recurses too deep
    assert raised.value.info.type == "sandbox" and "cannot check" in raised.value.info.message


@pytest.mark.docker
def test_tmp_inside_is_not_the_hosts_tmp(docker_config, workspace, target):
    token = uuid.uuid4().hex
    inside = Path(f"/tmp/covsweep-inside-{token}")
    host_only = Path(f"/tmp/covsweep-host-{token}")
    host_only.write_text("host secret")
    try:
        script = (
            f"echo planted > {inside} && cat {inside}; "
            f"test -e {host_only} && echo host-file-visible || echo host-file-invisible"
        )
        result = run(docker_config, script, workspace, target)
        assert result.exit_code == 0, result.output
        assert "planted" in result.output  # the write inside worked ...
        assert not inside.exists()  # ... and did not reach the host
        assert "host-file-invisible" in result.output
    finally:
        host_only.unlink()
        inside.unlink(missing_ok=True)


@pytest.mark.docker
def test_timeout_kills_the_script_and_removes_its_container(docker_config, workspace, target):
    sleeper = f"sleep 61.{uuid.uuid4().int % 10**6:06d}"
    script = f"hostname > {workspace}/cid; {sleeper}"
    started = time.monotonic()
    result = run(docker_config, script, workspace, target, timeout=2)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.exit_code is None
    assert not result.ok
    assert elapsed < 30
    assert_container_gone((workspace / "cid").read_text().strip())
    assert host_processes_with(sleeper) == []


@pytest.mark.docker
def test_a_container_another_process_removes_mid_run_is_a_failed_run_not_an_error(docker_config, workspace, target):
    """The leftover sweep of another run (or session) on the same daemon may remove it before its waiter
    has read its output."""
    cid = workspace / "cid"
    sweeper_done = threading.Event()

    def sweep_it() -> None:
        deadline = time.monotonic() + 60
        while not (cid.exists() and cid.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        docker.from_env().containers.get(cid.read_text().strip()).remove(force=True)
        sweeper_done.set()

    sweeper = threading.Thread(target=sweep_it, daemon=True)
    sweeper.start()
    result = run(docker_config, f"hostname > {workspace}/cid; sleep 60; echo never", workspace, target, timeout=90)
    sweeper.join(30)
    assert sweeper_done.is_set(), "the container was never seen running"
    assert not result.ok and "never" not in result.output
    assert result.duration_s < 60  # it did not wait out the script's sleep
    assert_container_gone(cid.read_text().strip())


@pytest.mark.docker
def test_container_ends_itself_when_its_waiter_dies(docker_config, workspace, target):
    # The process waiting on the container is killed (a worker killed with its flow runs) before the timeout.
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
from pathlib import Path
from tasks.sandbox import containers, runner as sandbox
from tasks.core.models import SandboxConfig
containers.SELF_KILL_GRACE_S = 1
sandbox.run(SandboxConfig(kind="docker", image={docker_config.image!r}), "hostname > {workspace}/cid; sleep 600",
            workspace=Path({str(workspace)!r}), read_only=[Path({str(target)!r})], timeout=4)
""",
        ],
        cwd=REPO,
    )
    cid = workspace / "cid"
    deadline = time.monotonic() + 60
    while not (cid.exists() and cid.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    waiter.kill()
    waiter.wait()
    client = docker.from_env()
    container = client.containers.get(cid.read_text().strip())
    # Labelled for the sweep of later runs, with when it ends itself at the latest.
    assert container.labels[LABEL] == "sandbox" and float(container.labels[DEADLINE_LABEL]) < time.time() + 60
    try:
        deadline = time.monotonic() + 30
        while container.status != "exited" and time.monotonic() < deadline:
            time.sleep(0.2)
            container.reload()
        assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 137  # killed by itself
    finally:
        with suppress(NotFound):
            container.remove(force=True)


@pytest.mark.docker
def test_memory_hog_is_stopped_by_the_memory_limit(docker_config, workspace, target):
    limit_mb = docker_config.limits.memory_mb
    code = f"""
chunks = []
for _ in range({4 * limit_mb // 16}):  # four times the limit, 16 MB at a time
    chunks.append(b"x" * (16 << 20))
print("survived", len(chunks) * 16, "MB")
"""
    result = run(docker_config, py(code), workspace, target, timeout=60)
    assert "survived" not in result.output
    assert not result.timed_out
    assert result.oom_killed, result


@pytest.mark.docker
def test_fork_loop_is_stopped_by_the_pids_limit(docker_config, workspace, target):
    pids = docker_config.limits.pids
    code = f"""
import os, time
forked = 0
try:
    while forked < {pids * 8}:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
    print("forked", forked, "unlimited")
except OSError as exc:
    print("forked", forked, type(exc).__name__)
"""
    started = time.monotonic()
    result = run(docker_config, py(code), workspace, target, timeout=30)
    assert result.exit_code == 0, result.output
    assert not result.timed_out
    words = result.output.split()
    assert words[0] == "forked" and words[2] == "BlockingIOError", result.output
    assert 0 < int(words[1]) < pids
    # The sleeping children die with the container: the run ends with the parent.
    assert time.monotonic() - started < 30


@pytest.mark.docker
def test_fork_bomb_ends_and_leaves_nothing_running(docker_config, workspace, target):
    token = f"covsweepbomb{uuid.uuid4().hex[:8]}"
    script = f"hostname > {workspace}/cid; {token}() {{ {token} | {token} & }}; {token}; sleep 30"
    started = time.monotonic()
    result = run(docker_config, script, workspace, target, timeout=4)
    assert time.monotonic() - started < 60
    assert not result.ok
    assert_container_gone((workspace / "cid").read_text().strip())
    assert host_processes_with(token) == []


@pytest.mark.docker
def test_all_capabilities_dropped_and_no_new_privileges(docker_config, workspace, target):
    result = run(
        docker_config, "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status", workspace, target
    )
    assert result.exit_code == 0, result.output
    status = dict(line.split(":\t") for line in result.output.strip().splitlines())
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status)
    assert status["NoNewPrivs"] == "1"


@pytest.mark.docker
def test_host_secrets_do_not_reach_the_sandbox(docker_config, workspace, target, monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", SECRET)
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    result = run(
        docker_config,
        "env; cat /proc/1/environ | tr '\\0' '\\n'",
        workspace,
        target,
        env={"COVSWEEP_PASSED": "visible"},
    )
    assert result.exit_code == 0, result.output
    assert "COVSWEEP_PASSED=visible" in result.output  # what is passed does arrive
    assert SECRET not in result.output
    assert "COVSWEEP_LLM_API_KEY" not in result.output
    assert "OPENROUTER_API_KEY" not in result.output


# --- Local -------------------------------------------------------------------------------------


def test_local_timeout_kills_the_whole_process_group(local_config, workspace, target):
    survived = workspace / "survived"
    script = f"(sleep 2; touch {survived}) & echo $! > {workspace}/child.pid; sleep 30"
    started = time.monotonic()
    result = run(local_config, script, workspace, target, timeout=1)
    assert result.timed_out is True
    assert result.exit_code is None
    assert time.monotonic() - started < 10
    child = int((workspace / "child.pid").read_text())
    assert dies_within(child, 5)
    time.sleep(2.5)  # past the moment the child would have written its file
    assert not survived.exists()


def test_local_kills_background_children_of_a_script_that_finished(local_config, workspace, target):
    script = f"sleep 30 & echo $! > {workspace}/child.pid; exit 0"
    result = run(local_config, script, workspace, target, timeout=10)
    assert result.exit_code == 0 and not result.timed_out
    child = int((workspace / "child.pid").read_text())
    assert dies_within(child, 5)


def test_local_sandbox_does_not_see_host_secrets(local_config, workspace, target, monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", SECRET)
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    result = run(local_config, "env", workspace, target, env={"COVSWEEP_PASSED": "visible"})
    assert result.exit_code == 0, result.output
    assert "COVSWEEP_PASSED=visible" in result.output
    assert SECRET not in result.output
