"""`covsweep run`'s temporary Prefect server: Prefect's own (SubprocessASGIServer), whose process is
spawned before this one imports Prefect, so that the server's imports and boot (3-4 s) overlap with
this process importing the flow instead of following Prefect's server app import here."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from tasks.project.git import WITHHELD_VARIABLES

# What Prefect's SubprocessASGIServer sets for its process: no UI, an ephemeral server's services.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def uvicorn_command(port: int) -> list[str]:
    """The command SubprocessASGIServer runs (tests/test_temporary_server.py holds them equal)."""
    prefect_package = importlib.util.find_spec("prefect").submodule_search_locations[0]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(prefect_package).parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def spawn() -> tuple[subprocess.Popen, int] | None:
    """The server's process on a port free now, unless the environment names a server or disables the
    temporary one. The process reads Prefect's settings from the same sources as this one (the
    environment, .env and prefect.toml here, the profile); a setting from those files that rules the
    temporary server out is read by `adopt`, which stops it. covsweep's own secrets are withheld."""
    if os.environ.get("PREFECT_API_URL") or not _ephemeral_allowed():
        return None
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {name: value for name, value in os.environ.items() if name not in WITHHELD_VARIABLES}
        process = subprocess.Popen(uvicorn_command(port), env=env | SERVER_ENV)
    except OSError:  # the flow's own start of Prefect's server says what is wrong
        return None
    atexit.register(_stop, process)  # whatever happens before Prefect takes it over
    return process, port


def _ephemeral_allowed() -> bool:
    """PREFECT_SERVER_EPHEMERAL_ENABLED (or its older name) as Prefect's settings read it, when set."""
    for name in ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"):
        if name in os.environ:
            with contextlib.suppress(ValidationError):
                return TypeAdapter(bool).validate_python(os.environ[name])
    return True


def adopting(spawned: tuple[subprocess.Popen, int] | None) -> threading.Thread | None:
    """A thread that hands the spawned process to Prefect (`adopt`) and ends when the server answers.
    A failure is left to the flow's own start, which reports it."""
    if spawned is None:
        return None
    thread = threading.Thread(target=_adopt_quietly, args=spawned, daemon=True, name="temporary-prefect-server")
    thread.start()
    return thread


def adopt(process: subprocess.Popen, port: int) -> None:
    """Prefect's temporary server, running `process`, made the one every Prefect client of this process
    asks for; or `process` stopped, if Prefect's settings name a server or disable the temporary one.
    Waits until the server answers, as Prefect's own start does; Prefect stops it at exit."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        _stop(process)
        return
    from prefect.server.api.server import SubprocessASGIServer

    class Adopted(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            spawned, self.spawned = self.spawned, None
            return spawned or super()._run_uvicorn_command()  # a second one: the port was taken meanwhile

    server = Adopted()  # Prefect's clients take the instance of port None
    if type(server) is not Adopted:  # Prefect's own started first: ours is not needed
        _stop(process)
        return
    server.spawned, server.port = process, port
    try:
        server.start()
    except Exception:
        # Killed, not asked to stop: it served nothing, and a server stopped in the middle of its start
        # prints a traceback of its own shutdown on the user's terminal.
        if server.server_process is not None:
            server.server_process.kill()
        server.stop()
        raise


def _adopt_quietly(process: subprocess.Popen, port: int) -> None:
    with contextlib.suppress(Exception):  # the flow's own start says what went wrong
        adopt(process, port)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
