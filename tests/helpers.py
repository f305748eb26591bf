"""Helpers the tests share: writing small projects, snapshots of a tree, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Tests of examples/shop/src/shop/discounts.py an LLM or an agent might write: they pass and add coverage.
SHOP_COUPON_TESTS = '''\
def test_coupons():
    assert coupon_percent(" ") == 0
    assert coupon_percent("save20") == 20
    assert coupon_percent("SAVE90") == 0
    assert coupon_percent("WELCOME") == 15
    assert coupon_percent("other") == 0


def test_best_price():
    assert best_price(1000, ["SAVE10", "WELCOME"]) == 850
'''


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


def in_threads(work: Callable[[], T], count: int) -> list[T]:
    """`work` called by `count` threads at once, as module tasks call it; what each returned. Any
    exception raised in a thread fails the test."""
    with ThreadPoolExecutor(count) as pool:
        return [f.result() for f in [pool.submit(work) for _ in range(count)]]


def assert_key_left_nowhere(key: str, target: Path, capfd, caplog) -> None:
    """Not in a file of the target, not in what the run printed or logged, not in Prefect's home."""
    from prefect.settings import PREFECT_HOME

    assert [p for p in target.rglob("*") if p.is_file() and key.encode() in p.read_bytes()] == []
    captured = capfd.readouterr()
    assert key not in captured.out + captured.err + caplog.text
    found = subprocess.run(["grep", "-rl", key, str(PREFECT_HOME.value())], capture_output=True, text=True)
    assert found.returncode == 1, f"the key is stored in {found.stdout}{found.stderr}"  # 1: grep found nothing
