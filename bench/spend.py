"""What one LLM request pays for the run's spend accounting, and what a module job weighs.

Spend (module tasks in threads of one process): in memory, no API call. SharedSpend (module tasks
in several processes or hosts): a read of the run's global concurrency limit before each request
and an atomic add after its answer, on the Prefect server. Timed here, per request, alone and with
8 threads at once, against the server at PREFECT_API_URL, else a temporary local one (SQLite) as
the tests use. Also: the pickled size of a module job for synthetic projects of 10, 300 and 2000
modules (bench/synth.py), against the whole project's that jobs carried before.

Writes JSON to bench/results/spend-<timestamp>.json and bench/results/spend-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for entry in (str(BENCH), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from run import RESULTS, machine  # noqa: E402
from synth import generate  # noqa: E402

SCHEMA = "covsweep.bench.spend/1"


def _per_request_ms(spend, requests: int, threads: int) -> dict:
    """check() before, record() after: what the fallback chain does around each request."""
    from tasks.llm.client import Usage

    def one() -> float:
        started = time.perf_counter()
        spend.check()
        spend.record("paid", Usage(prompt_tokens=1000, completion_tokens=200))
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        times = sorted(pool.map(lambda _: one(), range(requests)))
        wall = time.perf_counter() - started
    return {
        "requests": requests,
        "threads": threads,
        "mean_ms": round(statistics.fmean(times), 4),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 4),
        "requests_per_s": round(requests / wall, 1),
    }


def spend_costs(requests: int) -> dict:
    from prefect.client.orchestration import get_client

    from tasks.core.llm import LLMSettings, LLMSpec, Price
    from tasks.llm.spend import SharedSpend, Spend, create_spend_limit, delete_spend_limit

    prices = {"paid": Price(prompt=1.0, completion=2.0)}
    spec = LLMSpec(
        run_id=f"bench-{os.getpid()}", settings=LLMSettings(prices=prices, budget_usd=1000.0), shared_spend=True
    )
    local = Spend(prices, budget_usd=1000.0)
    results = {"in_memory": [_per_request_ms(local, requests, n) for n in (1, 8)]}
    with get_client(sync_client=True) as client:
        create_spend_limit(client, spec)
        try:
            shared = SharedSpend(spec, client)
            _per_request_ms(shared, 10, 1)  # connections and the server's caches warm
            results["prefect_server"] = [_per_request_ms(shared, requests, n) for n in (1, 8)]
        finally:
            delete_spend_limit(client, spec)
    results["api_url"] = str(client.api_url)
    return results


def job_sizes(root: Path) -> list[dict]:
    from tasks.core.models import ProjectCoverage
    from tasks.core.options import RunOptions
    from tasks.core.plan import Plan
    from tasks.coverage.measurement import Measurement
    from tasks.modules import module_jobs
    from tasks.project.discover import discover

    sizes = []
    for modules in (10, 300, 2000):
        project = discover(generate(root / str(modules), modules))
        plan = Plan(
            run_id="bench",
            project=project,
            generator="pynguin",
            sandbox={"kind": "local"},
            out=root / "out",
            report=root / "report.json",
            workspace=root / "runs",
            options=RunOptions(target=str(project.target)),
        )
        jobs = module_jobs.fn(plan, Measurement(coverage=ProjectCoverage()))
        sizes.append(
            {
                "modules": modules,
                "job_bytes": max(len(pickle.dumps(job)) for job in jobs),
                "project_bytes": len(pickle.dumps(project)),
            }
        )
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="timed requests per case [400]")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="covsweep-bench-spend-") as scratch:
        if not os.environ.get("PREFECT_API_URL"):
            from prefect.testing.utilities import prefect_test_harness

            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        result = {
            "schema": SCHEMA,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "spend_per_request": spend_costs(args.requests),
            "module_job_size": job_sizes(Path(scratch)),
        }
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    stamp = result["at"].replace(":", "").replace("-", "")
    (args.results / f"spend-{stamp}.json").write_text(text)
    (args.results / "spend-latest.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
