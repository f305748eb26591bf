"""Run a shell script against a target in isolation: a locked-down Docker container, or
(`--sandbox local`) a subprocess with resource limits.

Both see the same absolute paths: the target read-only, a scratch workspace read-write. Docker shows
the run's snapshot of the target (tasks/sandbox/snapshot.py) at the target's path.
Scripts find the test runner's Python as $PY and Pynguin as $PYNGUIN.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from docker.errors import APIError
from pydantic import BaseModel

from tasks.core.errors import ModuleError
from tasks.core.log import get_logger
from tasks.core.models import SandboxConfig
from tasks.sandbox.containers import covsweep_container, docker_client, gone
from tasks.sandbox.nofollow import drop_planted
from tasks.sandbox.snapshot import read_only_volumes

OUTPUT_LIMIT = 200_000
CONTAINER_UID = 1000
# The output of a container that another process (the leftover sweep of another run) removed first.
REMOVED_BEFORE_READ = "the sandbox container was removed by another process before its output was read"
# Sandbox runs at once in this process, whatever --concurrency is: module threads spend most of
# their time waiting on the LLM, but a sandbox run is CPU-bound (interpreter starts, pytest,
# coverage), and more of them than cores only slow each other down (and trip per-test timeouts).
# Two per core: a container start waits on dockerd as much as it computes.
SLOTS = threading.BoundedSemaphore(2 * (os.cpu_count() or 1))


class ExecResult(BaseModel):
    exit_code: int | None
    output: str
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0
    start_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def prepare_workspace(path: Path) -> Path:
    """A scratch folder the sandbox's non-root user may write to."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def readable_file(path: Path, text: str) -> Path:
    """`path` with `text`, readable by the sandbox's user, whose uid is not the host's."""
    path.write_text(text)
    path.chmod(0o644)
    return path


def run(
    config: SandboxConfig,
    script: str,
    *,
    workspace: Path,
    read_only: list[Path],
    timeout: float,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> ExecResult:
    """Run `sh -c script` with the workspace as working directory and kill it after `timeout` s; `labels`
    go on its container (which whoever knows them may remove early)."""
    # `timeout` bounds the script, not the wait for a slot: a module's own deadline is checked
    # between its rounds, and a 30 s import probe must not time out for waiting its turn.
    with SLOTS:
        if config.kind == "docker":
            return _run_docker(config, script, workspace, read_only, timeout, dict(env or {}), labels)
        return _run_local(config, script, workspace, read_only, timeout, dict(env or {}))


def _run_docker(config, script, workspace, read_only, timeout, env, labels) -> ExecResult:
    limits = config.limits
    volumes = read_only_volumes(config.snapshot, read_only)
    volumes[str(workspace)] = {"bind": str(workspace), "mode": "rw"}
    env |= {"PY": "/opt/runner/bin/python", "PYNGUIN": "/opt/pynguin/bin/pynguin", "HOME": "/tmp"}
    started = time.monotonic()
    with covsweep_container(
        docker_client(),
        config.image,
        ["sh", "-c", script],
        kind="sandbox",
        budget_s=timeout,
        labels=labels,
        user=f"{CONTAINER_UID}:{CONTAINER_UID}",
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"size={limits.tmpfs_mb}m,mode=1777"},
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",
        pids_limit=limits.pids,
        nano_cpus=int(limits.cpus * 1e9),
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        volumes=volumes,
        working_dir=str(workspace),
        environment=env,
    ) as container:
        start_s = time.monotonic() - started
        exit_code, timed_out = _wait(container, timeout)
        oom, output = _ended(container)
    drop_planted_in(workspace)
    return ExecResult(
        exit_code=exit_code,
        output=output[-OUTPUT_LIMIT:],
        timed_out=timed_out,
        oom_killed=oom,
        duration_s=time.monotonic() - started,
        start_s=start_s,
    )


def drop_planted_in(workspace: Path) -> None:
    """With the sandbox gone, the links it left in its workspace go too: the host reads and writes there
    afterwards (candidates, reports, the next run's files) and must not land outside it."""
    try:
        planted = drop_planted(workspace)
    except OSError as exc:
        raise ModuleError("sandbox", f"the sandbox left what covsweep cannot check in {workspace}: {exc}") from exc
    if planted:
        shown = ", ".join(planted[:5]) + (f" and {len(planted) - 5} more" if len(planted) > 5 else "")
        get_logger("covsweep").warning("removed what the sandbox left in %s that is not a file: %s", workspace, shown)


def _wait(container, timeout: float) -> tuple[int | None, bool]:
    """Its exit status, or None and True when it outlived its budget (and was killed); None and False
    when another process removed it first."""
    try:
        return container.wait(timeout=timeout)["StatusCode"], False
    except APIError as exc:
        if not gone(exc):
            raise
        return None, False
    except requests.exceptions.RequestException:
        # wait() has its own read timeout: the script outlived its budget.
        try:
            container.kill()
        except APIError:
            pass  # it ended on its own meanwhile
        return None, True


def _ended(container) -> tuple[bool, str]:
    """Whether the memory limit killed it, and its output; what a removal by another process left of them."""
    try:
        container.reload()
        oom = bool(container.attrs["State"].get("OOMKilled"))
        return oom, container.logs(stdout=True, stderr=True, tail=2000).decode(errors="replace")
    except APIError as exc:
        if not gone(exc):
            raise
        return False, REMOVED_BEFORE_READ


def _limit_resources(limits):
    def apply():
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))

    return apply


def _run_local(config, script, workspace, read_only, timeout, env) -> ExecResult:
    bindir = Path(sys.executable).parent
    env |= {
        "PY": sys.executable,
        "PYNGUIN": config.pynguin,
        "HOME": str(workspace),
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "TMPDIR": str(workspace),
    }
    started = time.monotonic()
    log = workspace / ".sandbox-output"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            ["sh", "-c", script],
            cwd=workspace,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_limit_resources(config.limits),
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # The whole process group: a forking script leaves no child behind.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    output = log.read_bytes()[-OUTPUT_LIMIT:].decode(errors="replace")
    return ExecResult(
        exit_code=None if timed_out else proc.returncode,
        output=output,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
    )
