"""What the Docker sandbox's snapshot of the target costs (tasks/sandbox/snapshot.py).

Times, on this host, taking the snapshot of examples/shop and of a synthetic 2000-module project
(bench/synth.py), each readable by everyone (0755/0644) and private (0700/0600, as a umask of 077 makes
them): as covsweep takes it (files copied, large readable ones linked), and, for comparison, with every
readable file hard-linked (what a snapshot without a consistent view would cost). Also the check of
whether everyone may read a target (a coverage-only run of such a target takes no snapshot), and the
refresh of an --out folder holding one test file per module, which each whole-project measurement does.

Writes JSON to bench/results/snapshot-<timestamp>.json and bench/results/snapshot-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from run import RESULTS, machine  # noqa: E402
from synth import generate  # noqa: E402

from tasks.core.models import Snapshot  # noqa: E402
from tasks.sandbox import snapshot as snapshots  # noqa: E402

SCHEMA = "covsweep.bench.snapshot/1"
EXAMPLE = BENCH.parent / "examples" / "shop"


def make_private(root: Path) -> None:
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(Path(folder) / name, 0o600)


def projects(scratch: Path, modules: int) -> dict[str, Path]:
    shop = scratch / "shop"
    shutil.copytree(EXAMPLE, shop)
    synthetic = generate(scratch / f"synth-{modules}", modules)
    found = {"shop": shop, f"synth-{modules}": synthetic}
    for name, root in list(found.items()):
        private = scratch / f"{name}-private"
        shutil.copytree(root, private)
        make_private(private)
        found[f"{name}-private"] = private
    return found


def time_take(target: Path, scratch: Path, repeats: int, link_everything: bool) -> list[float]:
    link_min = snapshots.LINK_MIN_BYTES
    snapshots.LINK_MIN_BYTES = 0 if link_everything else link_min
    times = []
    try:
        for n in range(repeats):
            snapshot = Snapshot(target=target, folder=scratch / f"run-{n}" / "snapshot")
            started = time.perf_counter()
            snapshots.take_snapshot(snapshot)
            times.append(time.perf_counter() - started)
            shutil.rmtree(scratch / f"run-{n}")
    finally:
        snapshots.LINK_MIN_BYTES = link_min
    return times


def time_refresh(target: Path, scratch: Path, repeats: int) -> list[float]:
    """An --out folder with one test file per module, copied again as a whole-project measurement does."""
    output = scratch / "out"
    shutil.copytree(target / "tests", output)
    snapshot = Snapshot(target=target, folder=scratch / "run" / "snapshot", output=output)
    snapshots.take_snapshot(snapshot)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        snapshots.refresh_output(snapshot)
        times.append(time.perf_counter() - started)
    shutil.rmtree(scratch / "run")
    shutil.rmtree(output)
    return times


def time_check(target: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        snapshots.readable_by_all([target])
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4), "runs": len(times)}


def size(root: Path) -> dict:
    files = snapshots.project_files(root)
    return {"files": len(files), "bytes": sum(p.lstat().st_size for p in files)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results = {"schema": SCHEMA, "at": datetime.now(UTC).isoformat(), "machine": machine(), "projects": {}}
    with tempfile.TemporaryDirectory(prefix="covsweep-bench-snapshot-") as tmp:
        scratch = Path(tmp)
        for name, root in projects(scratch, args.modules).items():
            entry = {
                **size(root),
                "readable_check": summary(time_check(root, args.repeats)),
                "take": summary(time_take(root, scratch, args.repeats, link_everything=False)),
            }
            if not name.endswith("-private"):  # a private file cannot be linked: it must be copied
                entry["take_linking_everything"] = summary(time_take(root, scratch, args.repeats, True))
                entry["refresh_output"] = summary(time_refresh(root, scratch, args.repeats))
            results["projects"][name] = entry
            print(f"{name}: {json.dumps(entry)}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"snapshot-{stamp}.json", RESULTS / "snapshot-latest.json"):
        path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
