"""Helpers the tests share: writing small projects, snapshots of a tree, running the CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Tests of examples/shop/src/shop/discounts.py an LLM or an agent might write: they pass and add coverage.
SHOP_COUPON_TESTS = """\
def test_coupons():
    assert coupon_percent(" ") == 0
    assert coupon_percent("save20") == 20
    assert coupon_percent("SAVE90") == 0
    assert coupon_percent("WELCOME") == 15
    assert coupon_percent("other") == 0


def test_best_price():
    assert best_price(1000, ["SAVE10", "WELCOME"]) == 850
"""

# Tests of examples/shop/src/shop/inventory.py that cover every one of its lines. No test of the
# project imports that module: its def and class lines run only when a generated test imports it.
SHOP_INVENTORY_TESTS = """\
import pytest

from shop.inventory import Inventory, OutOfStock


def test_stock_and_reservations():
    inventory = Inventory()
    inventory.add("apple", 10)
    inventory.add("pear", 2)
    inventory.reserve("apple", 4)
    assert inventory.available("apple") == 6
    assert inventory.low_stock() == ["pear"]
    with pytest.raises(OutOfStock):
        inventory.reserve("pear", 3)


def test_release():
    inventory = Inventory()
    inventory.add("apple", 10)
    inventory.reserve("apple", 4)
    inventory.release("apple", 1)
    assert inventory.available("apple") == 7
    inventory.release("apple", 3)
    assert inventory.available("apple") == 10
    with pytest.raises(ValueError):
        inventory.release("apple", 1)


def test_add_rejects_nothing():
    with pytest.raises(ValueError):
        Inventory().add("apple", 0)
"""


# Tests of shop/discounts.py for mutant-guided rounds: the first call every function and check nothing,
# the second check what the functions return; SURVIVOR_LINE reads the prompt's "Surviving mutants".
CALLS_ONLY = """\
from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_calls_every_function():
    percent_off(1000, 10)
    try:
        percent_off(1, 101)
    except ValueError:
        pass
    threshold_discount(20_000)
    threshold_discount(5)
    for code in ("  ", "save20", "SAVE90", "SAVEX", "WELCOME", "OTHER"):
        coupon_percent(code)
    best_price(1000, ["SAVE10", "WELCOME"])
"""

# Each checks one function: none executes a line the calls above do not.
CHECKS = """\
import pytest

from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_percent_off_takes_the_percentage_off():
    assert percent_off(1000, 10) == 900
    assert percent_off(999, 0) == 999
    assert percent_off(1000, 100) == 0
    assert percent_off(250, 15) == 213
    with pytest.raises(ValueError, match="between 0 and 100"):
        percent_off(1, 101)
    with pytest.raises(ValueError):
        percent_off(1, -1)


def test_threshold_discount_from_the_threshold_on():
    assert threshold_discount(10_000) == 9_000
    assert threshold_discount(9_999) == 9_999
    assert threshold_discount(20_000) == 18_000
    assert threshold_discount(500, threshold_cents=500, percent=20) == 400


def test_coupon_percent_reads_the_codes():
    assert coupon_percent("  save20 ") == 20
    assert coupon_percent("SAVE50") == 50
    assert coupon_percent("SAVE51") == 0
    assert coupon_percent("SAVEX") == 0
    assert coupon_percent("welcome") == 15
    assert coupon_percent("") == 0
    assert coupon_percent("OTHER") == 0


def test_best_price_takes_the_best_single_coupon():
    assert best_price(1000, ["SAVE10", "WELCOME", "NOPE"]) == 850
    assert best_price(1000, []) == 1000
    assert best_price(0, ["SAVE50"]) == 0
"""
SURVIVOR_LINE = re.compile(r"^- (\S+):(\d+): `(.+)` -> `(.+)`$")


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def download_sdist(name: str, version: str, into: Path, timeout: float | None = None) -> Path:
    """The source distribution of `name==version` from PyPI (no wheel, no dependencies), unpacked in `into`:
    its folder."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(into),
        ],
        check=True,
        timeout=timeout,
    )
    archive = next(into.glob(f"{name}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"{name}-{version}"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below root with its bytes: to show a run changed nothing it should not have."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "covsweep", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


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


def independent_measurement(target: Path, scratch: Path, source: str = "src/shop") -> dict:
    """`coverage run --branch -m pytest` of the project as it is on disk, on the host, no covsweep code;
    `source`: the folder measured, relative to `target`."""
    data = scratch / ".coverage"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COVERAGE_FILE": str(data)}
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--branch", f"--source={source}", "-m", "pytest"]
        + ["-q", "-p", "no:cacheprovider"],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = scratch / "coverage.json"
    subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)], cwd=target, env=env, check=True)
    return json.loads(out.read_text())


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 100.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deep_tree(root: Path, depth: int, link_to: Path | None = None) -> None:
    """`depth` nested folders below `root` (deeper than a path may be long), a link at the bottom."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    if link_to is not None:
        os.symlink(link_to, "link", dir_fd=fd)
    os.close(fd)
