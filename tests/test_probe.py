"""probe_import on hostile modules, in the real Docker sandbox: each is told apart with the right
error, the test process survives, nothing keeps running and the project is left as it was."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tasks.core.errors import ModuleError
from tasks.project.discover import discover
from tasks.sandbox.probe import probe_import
from tasks.sandbox.runner import prepare_workspace
from tests.helpers import host_processes_with, snapshot, write_project

pytestmark = pytest.mark.docker

QUICK = 60  # generous: a well-behaved import ends long before


class Probe:
    """One project holding one hostile module, probed once."""

    def __init__(self, tmp_path: Path, config, source: str):
        self.name = f"hostile_{uuid.uuid4().hex[:10]}"
        self.root = write_project(
            tmp_path / "proj",
            {
                f"{self.name}.py": source,
                "tests/test_placeholder.py": "def test_nothing():\n    pass\n",
            },
        )
        self.project = discover(self.root)
        [self.module] = [m for m in self.project.modules if m.dotted == self.name]
        self.workspace = prepare_workspace(tmp_path / "ws")
        self.config = config
        self.before = snapshot(self.root)

    def run(self, timeout: float = QUICK) -> ModuleError | None:
        try:
            start_s = probe_import(self.config, self.project, self.module, self.workspace, timeout)
        except ModuleError as exc:
            error = exc
        else:
            assert start_s >= 0
            error = None
        assert snapshot(self.root) == self.before, "the probe changed the target project"
        return error


@pytest.fixture
def probe(tmp_path, docker_config):
    return lambda source: Probe(tmp_path, docker_config, source)


def test_clean_module_passes(probe):
    p = probe("""
        import json

        def double(x):
            return 2 * x

        TABLE = json.dumps({"a": double(2)})
    """)
    assert p.run() is None


@pytest.mark.parametrize("call", ["sys.exit(3)", "sys.exit(0)", "sys.exit('bye')"])
def test_sys_exit_on_import_is_a_target_error(probe, call):
    p = probe(f"""
        import sys
        {call}
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "target"
    assert "sys.exit" in error.info.message
    assert p.name in error.info.message


def test_hard_exit_on_import_is_a_target_error(probe):
    """os._exit(0) skips the probe's `except SystemExit`; the interpreter still ends mid-import
    with status 0, which must not pass for a clean import."""
    p = probe("""
        import os
        os._exit(0)
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "target"
    assert p.name in error.info.message


def test_import_error_is_a_target_error(probe):
    p = probe("""
        import covsweep_no_such_dependency_xyz
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "target"
    assert "ModuleNotFoundError" in error.info.message
    assert "covsweep_no_such_dependency_xyz" in error.info.message


def test_raised_import_error_is_a_target_error(probe):
    p = probe("""
        raise ImportError("this platform is not supported")
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "target"
    assert "ImportError: this platform is not supported" in error.info.message


def test_endless_loop_on_import_is_a_timeout(probe):
    p = probe("""
        while True:
            pass
    """)
    started = time.monotonic()
    error = p.run(timeout=4)
    assert time.monotonic() - started < 30
    assert error is not None
    assert error.info.type == "timeout"
    assert p.name in error.info.message
    assert host_processes_with(p.name) == []


def test_fork_loop_on_import_is_stopped_at_the_process_limit_and_leaves_nothing_running(probe):
    # Each child holds its process slot, so the loop meets the sandbox's pid limit (not the timeout,
    # as a loop whose children exit and free their slots may): the import fails there, every time.
    p = probe("""
        import os, time
        while True:
            if os.fork() == 0:
                time.sleep(3600)
    """)
    started = time.monotonic()
    error = p.run(timeout=30)
    assert time.monotonic() - started < 60
    assert error is not None
    assert error.info.type == "target"
    assert "BlockingIOError" in error.info.message
    assert host_processes_with(p.name) == []


def test_memory_hog_on_import_is_stopped(probe, docker_config):
    limit_mb = docker_config.limits.memory_mb
    p = probe(f"""
        HOARD = []
        for _ in range({4 * limit_mb // 16}):  # four times the limit, 16 MB at a time
            HOARD.append(b"x" * (16 << 20))
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "sandbox"
    assert "memory limit" in error.info.message


@pytest.mark.parametrize("address", [("127.0.0.1", 8080), ("1.1.1.1", 443)])
def test_socket_on_import_is_a_target_error(probe, address):
    p = probe(f"""
        import socket
        CONN = socket.create_connection({address!r}, timeout=3)
    """)
    error = p.run()
    assert error is not None
    assert error.info.type == "target"
    assert "Error" in error.info.message  # ConnectionRefusedError, OSError: unreachable, ...


def test_write_to_tmp_on_import_does_not_reach_the_host(probe):
    path = Path(f"/tmp/covsweep-hostile-{uuid.uuid4().hex}")
    # The module writes, then reports through a failing import that the write did happen.
    p = probe(f"""
        import os
        with open({str(path)!r}, "w") as f:
            f.write("planted")
        raise RuntimeError("wrote " + str(os.path.exists({str(path)!r})))
    """)
    try:
        error = p.run()
        assert error is not None
        assert error.info.type == "target"
        assert "RuntimeError: wrote True" in error.info.message
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_writes_into_the_project_on_import_fail_and_change_nothing(probe):
    p = probe("""
        from pathlib import Path
        Path(__file__).write_text("# overwritten by the module itself\\n")
        (Path(__file__).parent / "planted.py").write_text("x = 1\\n")
    """)
    error = p.run()  # Probe.run asserts that the project is byte for byte unchanged
    assert error is not None
    assert error.info.type == "target"
    assert "Read-only file system" in error.info.message
