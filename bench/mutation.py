"""What the mutation step costs: `mutate_module` on every module of the bundled example (examples/shop)
with the example's own tests, in the Docker sandbox, beside one coverage measurement of the project.

Prints a line per module and round and writes JSON to bench/results/mutation-<timestamp>.json and
bench/results/mutation-latest.json: seconds per module (wall, the container's start, the driver's
listing and engine time), mutants, score, and the load average, which on a shared host moves the
seconds more than anything covsweep does.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tasks.core.models import SandboxConfig  # noqa: E402
from tasks.core.settings import load  # noqa: E402
from tasks.coverage.measurement import measure  # noqa: E402
from tasks.mutation.run import mutate_module  # noqa: E402
from tasks.project.discover import discover  # noqa: E402
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402

RESULTS = REPO / "bench" / "results"
SCHEMA = "covsweep.bench.mutation/1"


def one_round(config: SandboxConfig, scratch: Path, mutants: int, timeout: float) -> dict:
    target = scratch / "shop"
    shutil.copytree(REPO / "examples" / "shop", target)
    project = discover(target)
    started = time.monotonic()
    baseline = measure(config, project, project.test_paths, scratch / "measure", timeout)
    rows = {"coverage_measurement_s": round(time.monotonic() - started, 2), "baseline_ok": not baseline.timed_out}
    tests = sorted((target / "tests").glob("test_*.py"))
    for module in project.modules:
        started = time.monotonic()
        run = mutate_module(
            config, project, module, tests, scratch / f"ws-{module.dotted}", max_mutants=mutants, timeout=timeout
        )
        driver = json.loads((scratch / f"ws-{module.dotted}" / "result.json").read_text())["seconds"]
        rows[module.path] = {
            "seconds": round(time.monotonic() - started, 2),
            "sandbox_start_s": round(run.sandbox_start_s, 2),
            "list_s": round(driver["list"], 2),
            "engine_s": round(driver["engine"], 2),
            "listed": run.listed,
            "mutation": run.score.model_dump(),
            "unfinished": run.unfinished,
        }
        print(f"  {module.path}: {rows[module.path]['seconds']}s, {run.score}", flush=True)
    shutil.rmtree(target)
    return rows


def summary(rounds: list[dict]) -> dict:
    modules = [key for key in rounds[0] if key.endswith(".py")]
    median = {m: statistics.median(r[m]["seconds"] for r in rounds) for m in modules}
    return {
        "median_seconds_per_module": {m: round(s, 2) for m, s in median.items()},
        "median_seconds_all_modules": round(sum(median.values()), 2),
        "median_coverage_measurement_s": round(statistics.median(r["coverage_measurement_s"] for r in rounds), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all modules [3]")
    parser.add_argument("--mutants", type=int, default=30, help="--mutants [30]")
    parser.add_argument("--timeout", type=float, default=300.0, help="budget per module [300]")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    config = SandboxConfig(kind="docker", image=ensure_sandbox_image(load()))
    load_before = [round(x, 2) for x in os.getloadavg()]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="covsweep-bench-mutation-") as scratch:
        Path(scratch).chmod(0o755)
        for number in range(args.repeat):
            print(f"round {number + 1}/{args.repeat}, load {os.getloadavg()[0]:.1f}", flush=True)
            rounds.append(one_round(config, Path(scratch) / f"round-{number}", args.mutants, args.timeout))
    result = {
        "schema": SCHEMA,
        "at": datetime.now(UTC).isoformat(),
        "cpu_count": os.cpu_count(),
        "sandbox_cpus": config.limits.cpus,
        "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "mutants": args.mutants,
        "rounds": rounds,
        "summary": summary(rounds),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"mutation-{stamp}.json", "mutation-latest.json"):
        (args.results / name).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
