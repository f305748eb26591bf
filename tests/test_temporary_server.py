"""covsweep run's temporary Prefect server: spawned before Prefect is imported, then Prefect's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from covsweep import temporary_server
from tests.helpers import free_port, host_processes_with

pytestmark = pytest.mark.server

# Spawns and adopts a server as `covsweep run` does, then asks Prefect's clients, from a thread too.
ADOPT_AND_ASK = """
import json, sys, threading
from covsweep import temporary_server

process, port = temporary_server.spawn()
temporary_server.adopt(process, port)
from prefect.client.orchestration import get_client

urls = []
def ask():
    with get_client(sync_client=True) as client:
        client.hello().raise_for_status()
        urls.append(str(client.api_url))
thread = threading.Thread(target=ask)
thread.start()
thread.join()
ask()
with open(f"/proc/{process.pid}/environ", "rb") as environ:
    names = [line.split(b"=", 1)[0].decode() for line in environ.read().split(bytes(1)) if line]
print(json.dumps({"port": port, "pid": process.pid, "urls": urls, "alive": process.poll() is None, "names": names}))
"""


def _run(script: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        env={**_environment(), **env},
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _environment() -> dict[str, str]:
    """This process's, without what would pick another Prefect server or profile."""
    unset = ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH", "PREFECT_SERVER_EPHEMERAL_ENABLED")
    return {name: value for name, value in os.environ.items() if name not in unset}


def _environ_of(pid: int) -> list[bytes]:
    """A new process's environment, once the kernel has put it in place: it lags the return of exec."""
    for _ in range(100):
        if environ := Path(f"/proc/{pid}/environ").read_bytes():
            return environ.split(bytes(1))
        time.sleep(0.05)
    raise AssertionError(f"process {pid} shows no environment")


def test_the_spawned_process_runs_the_command_and_settings_prefect_would():
    from prefect.server.api.server import SubprocessASGIServer

    port = free_port()
    prefects = SubprocessASGIServer._run_uvicorn_command(types.SimpleNamespace(port=port))
    try:
        environ = _environ_of(prefects.pid)
    finally:
        prefects.kill()
        prefects.wait()
    assert temporary_server.uvicorn_command(port) == prefects.args
    settings = dict(line.decode().split("=", 1) for line in environ if line)
    assert {name: settings.get(name) for name in temporary_server.SERVER_ENV} == temporary_server.SERVER_ENV


def test_every_prefect_client_of_the_process_talks_to_the_adopted_server_and_it_stops_at_exit():
    found = _run(ADOPT_AND_ASK, COVSWEEP_LLM_API_KEY="sk-test-withheld", COVSWEEP_GIT_TOKEN="ghp-withheld")
    assert found["alive"]
    assert "COVSWEEP_LLM_API_KEY" not in found["names"] and "COVSWEEP_GIT_TOKEN" not in found["names"]
    assert "PREFECT__SERVER_EPHEMERAL" in found["names"]
    assert found["urls"] == [f"http://127.0.0.1:{found['port']}/api/"] * 2  # no second server
    assert not Path(f"/proc/{found['pid']}").exists()
    assert host_processes_with(f"--port {found['port']} ") == []


def test_a_profile_that_names_a_server_stops_the_spawned_one_and_prefects_server_is_never_imported(tmp_path):
    (tmp_path / "profiles.toml").write_text(
        'active = "remote"\n\n[profiles.remote]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n'
    )
    script = (
        "import json, sys\nfrom covsweep import temporary_server\n"
        "process, port = temporary_server.spawn()\ntemporary_server.adopt(process, port)\n"
        "print(json.dumps({'stopped': process.poll() is not None, "
        "'server_app': 'prefect.server.api.server' in sys.modules}))"
    )
    assert _run(script, PREFECT_HOME=str(tmp_path)) == {"stopped": True, "server_app": False}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PREFECT_API_URL", "http://127.0.0.1:9/api"),
        ("PREFECT_SERVER_EPHEMERAL_ENABLED", "false"),
        ("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "0"),
    ],
)
def test_a_server_named_or_the_temporary_one_disabled_in_the_environment_spawns_nothing(monkeypatch, name, value):
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_ENABLED", raising=False)
    monkeypatch.setenv(name, value)
    assert temporary_server.spawn() is None
