"""Helpers the tests share: writing small projects, snapshots of a tree, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below root with its bytes: to show a run changed nothing it should not have."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "covsweep", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def host_processes_with(token: str) -> list[str]:
    """Command lines of the host's processes (containers' included) that mention token."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmdline:
            found.append(cmdline)
    return found
