"""Where a coverage-only sweep's time goes: `covsweep run TARGET --generator none` of a generated
project (bench/synth.py) under cProfile, in a temporary Prefect home warmed by an untimed run.

Writes the top entries by cumulative and by own time to bench/results/profile-<label>.txt. cProfile
sees the CLI's main thread, where the flow and its measure-only task run; time spent waiting on a
sandbox container shows as the Docker client's wait. Usage: bench/profile.py --modules 400 --label before
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import PYTHON, RESULTS, child_env  # noqa: E402
from synth import generate  # noqa: E402

TOP = 45


def _covsweep(project: Path, env: dict[str, str], profile: Path | None) -> float:
    wrapper = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [str(PYTHON), *wrapper, "-m", "covsweep", "run", str(project), "--generator", "none"]
    started = time.monotonic()
    subprocess.run(command, env=env, cwd=project, capture_output=True, timeout=1200, check=False)
    return time.monotonic() - started


def _top(profile: Path, seconds: float, label: str, modules: int) -> str:
    text = io.StringIO()
    text.write(
        f"covsweep run --generator none, {modules} modules, {label}: {seconds:.1f}s wall, load {os.getloadavg()}\n"
    )
    stats = pstats.Stats(str(profile), stream=text)
    for order in ("cumulative", "tottime"):
        text.write(f"\n=== top {TOP} by {order} ===\n")
        stats.sort_stats(order).print_stats(TOP)
    return text.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=400)
    parser.add_argument("--label", default="now")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="covsweep-profile-"))
    try:
        env = child_env(scratch / "home")
        (scratch / "home").mkdir()
        _covsweep(generate(scratch / "warmup", 1), env, None)
        profile = scratch / "covsweep.prof"
        seconds = _covsweep(generate(scratch / "project", args.modules), env, profile)
        RESULTS.mkdir(parents=True, exist_ok=True)
        written = RESULTS / f"profile-{args.label}.txt"
        written.write_text(_top(profile, seconds, args.label, args.modules))
        print(f"{seconds:.1f}s; profile: {written}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
