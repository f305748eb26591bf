"""`make bench`, the cluster part: module tasks in threads of covsweep's process against a local Dask
cluster of two workers on this machine, and a model of N hosts.

The scripted-LLM benchmark of bench/llm.py (its server, its answers, bench/synth.py's project: every
module takes the whole path, probe, LLM request, filtering, write, final measurement) runs

    covsweep run TARGET --generator llm ... --concurrency C                          (threads)
    covsweep run TARGET --generator llm ... --concurrency C --cluster tcp://...      (cluster)

on fresh copies, alternately, --repeats times each; the cluster is `dask scheduler` and --workers
`dask worker` processes of this venv with --threads threads each (C = workers x threads), started here.
The rate is bench/llm.py's: modules over the module phase, from covsweep's own output. The bar
(issue 10): the cluster path at most 10% slower than threads on one host, on the median of the rounds'
cluster/threads ratios (a round's two runs are back to back: on a shared host the load moves between
rounds more than within one). Slot use, the share of the module phase's concurrency x seconds spent
inside module tasks, shows what each path adds around a module whatever the load.

N hosts, modelled: each host adds what one host does on the cluster path (modules per minute), until
a shared limit stops it: the LLM provider's rate limit (--llm-rpm requests a minute for the run's key,
over the LLM requests a module takes here), or the Prefect server's writes: the task runs it records
a second and the shared-spend calls it answers a second (two per LLM request), both measured here
against a temporary server (SQLite), as `covsweep run` uses.

Writes JSON to bench/results/cluster-<timestamp>.json and bench/results/cluster-latest.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for entry in (str(BENCH), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from llm import API_KEY, Answering, HostSampler, answers, run_one  # noqa: E402
from run import RESULTS, machine  # noqa: E402
from spend import spend_costs  # noqa: E402
from synth import generate  # noqa: E402

from tests.dask_fixtures import DaskCluster  # noqa: E402
from tests.fake_llm import FakeLLM, Reply  # noqa: E402

SCHEMA = "covsweep.bench.cluster/1"
ALLOWED_SLOWDOWN = 0.10


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=8, help="modules in the generated project [8]")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the LLM server waits per answer [2]")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers on this machine [2]")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker; --concurrency is the product [2]")
    parser.add_argument("--repeats", type=int, default=3, help="rounds: a run of each path, back to back [3]")
    parser.add_argument("--llm-rpm", type=float, default=20.0, help="the provider's requests/minute per key [20]")
    parser.add_argument("--hosts", default="1,2,4,8,16,32", help="host counts to model [1,2,4,8,16,32]")
    parser.add_argument("--server-tasks", type=int, default=200, help="task runs timed against the server [200]")
    parser.add_argument("--budget", type=float, default=1800.0, help="stop starting runs after this many s [1800]")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("-v", "--verbose", action="store_true", help="echo covsweep's output")
    args = parser.parse_args(argv)
    if min(args.modules, args.workers, args.threads, args.repeats) < 1 or args.delay < 0 or args.llm_rpm <= 0:
        parser.error("--modules, --workers, --threads, --repeats >= 1; --delay >= 0; --llm-rpm > 0")
    # What bench/llm.py's run_one reads of its own options.
    args.max_iterations, args.coverage_target, args.sandbox, args.mutation = 1, 100.0, "docker", "on"
    return args


def _from_report(report: Path, phase_s: float | None, concurrency: int) -> dict:
    """Where the modules ran, and the share of the module phase's slots (concurrency x its length) they
    spent inside their module task: what the path adds around a module shows as the rest, under any load."""
    if not report.exists():
        return {"workers": {}, "slot_use": None}
    modules = json.loads(report.read_text())["modules"]
    busy = sum(m["execution_time"] for m in modules)
    return {
        "workers": dict(Counter(m.get("worker") or "?" for m in modules)),
        "slot_use": round(busy / (phase_s * concurrency), 3) if phase_s else None,
    }


class Comparison:
    """The runs of both paths against one scripted LLM and one local cluster."""

    def __init__(self, args: argparse.Namespace, scratch: Path):
        self.args, self.scratch = args, scratch
        self.cluster = DaskCluster(scratch / "dask", {"COVSWEEP_LLM_API_KEY": API_KEY})
        self.answering = Answering(answers(generate(scratch / "answers", args.modules)))
        self.fake = FakeLLM()
        self.deadline = time.monotonic() + args.budget
        self.runs: list[dict] = []

    def start_cluster(self) -> None:
        self.cluster.start_scheduler()
        for n in range(1, self.args.workers + 1):
            self.cluster.start_worker(f"w-{n}", threads=self.args.threads)
        self.cluster.wait_for_workers(self.args.workers)
        # A standing cluster has covsweep's code imported; a fresh worker would pay that in its first module.
        from distributed import Client

        with Client(self.cluster.address, timeout=60, set_as_default=False) as client:
            client.run(importlib.import_module, "tasks.modules")

    def run(self, mode: str, round_no: int, sampler: HostSampler) -> dict:
        args = self.args
        concurrency = args.workers * args.threads
        project = generate(self.scratch / f"{mode}-{round_no}" / "project", args.modules)
        reply = Reply(body=self.answering, headers={"Content-Type": "application/json"}, delay_s=args.delay)
        self.fake.script(*[reply] * (8 * args.modules))
        extra = ("--cluster", self.cluster.address) if mode == "cluster" else ()
        left = self.deadline - time.monotonic()
        run = run_one(
            concurrency, project, self.fake, args, self.scratch / "prefect-home", sampler, left, args.delay, extra
        )
        run |= {"mode": mode, "round": round_no}
        run |= _from_report(project.parent / f"report-c{concurrency}.json", run["module_phase_s"], concurrency)
        print(
            f"  {mode:<8} round {round_no}: {run['modules_done']}/{run['modules_total']} modules in "
            f"{run['module_phase_s']}s -> {run['modules_per_minute']} modules/min, slot use {run['slot_use']}, "
            f"workers {run['workers']}, load {run['host']['load1_max']}, exit {run['exit_code']}",
            flush=True,
        )
        return run

    def close(self) -> None:
        self.fake.close()
        self.cluster.stop()


def compare(args: argparse.Namespace, scratch: Path) -> list[dict]:
    """The runs of both paths, alternated so that the host's load drifts over both alike."""
    comparison = Comparison(args, scratch)
    try:
        comparison.start_cluster()
        with HostSampler() as sampler:
            for round_no in range(args.repeats):
                order = ("threads", "cluster") if round_no % 2 == 0 else ("cluster", "threads")
                for mode in order:
                    if comparison.deadline - time.monotonic() < 60:
                        print(f"  {mode} round {round_no}: skipped, out of budget", flush=True)
                        continue
                    comparison.runs.append(comparison.run(mode, round_no, sampler))
    finally:
        comparison.close()
    return comparison.runs


def server_writes(task_runs: int) -> dict:
    """Task runs a temporary Prefect server (SQLite) records a second, from one flow run's threads, and
    the shared-spend calls it answers a second (bench/spend.py)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # not a line per task run
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect.testing.utilities import prefect_test_harness

    @task
    def noop(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def many(count: int) -> str:
        noop.map(range(count)).wait()
        return str(flow_run.get_id())

    with prefect_test_harness(server_startup_timeout=120):
        started = time.monotonic()
        run_id = many(task_runs)
        done = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED])))
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        with get_client(sync_client=True) as client:
            while len(client.read_task_runs(flow_run_filter=runs, task_run_filter=done, limit=task_runs)) < task_runs:
                if time.monotonic() - started > 600:
                    raise TimeoutError("the server did not record the task runs within 600 s")
                time.sleep(0.2)
        seconds = time.monotonic() - started
        spend = spend_costs(200)["prefect_server"][-1]  # 8 threads at once
    return {
        "task_runs": task_runs,
        "seconds": round(seconds, 2),
        "task_runs_per_s": round(task_runs / seconds, 1),
        "spend_checks_per_s": spend["requests_per_s"],
        "spend_per_request_ms": spend["mean_ms"],
    }


def _median(runs: list[dict], mode: str, key: str = "modules_per_minute") -> float | None:
    values = [r[key] for r in runs if r["mode"] == mode and r[key]]
    return round(statistics.median(values), 3) if values else None


def _pair_ratios(runs: list[dict]) -> list[float]:
    """cluster over threads within each round: the two runs of a round are back to back, under one load."""
    rates = {(r["round"], r["mode"]): r["modules_per_minute"] for r in runs}
    return [
        round(rates[(n, "cluster")] / rates[(n, "threads")], 3)
        for n in sorted({r["round"] for r in runs})
        if rates.get((n, "cluster")) and rates.get((n, "threads"))
    ]


def _projection(per_host: float, limits: dict[str, float], hosts: list[int]) -> list[dict]:
    bound, by = min((value, name) for name, value in limits.items())
    rows = []
    for count in hosts:
        rate = min(count * per_host, bound)
        rows.append(
            {"hosts": count, "modules_per_minute": round(rate, 1), "limited_by": by if rate == bound else "hosts"}
        )
    return rows


def model(per_host: float, requests_per_module: float, server: dict, args) -> dict:
    """Modules per minute for N hosts: N times one host's, up to the first shared limit; also without the
    provider's limit (a paid key), where the server's writes are the next."""
    server_limits = {
        "server_task_runs": server["task_runs_per_s"] * 60,  # one task run a module
        "server_spend_calls": server["spend_checks_per_s"] * 60 / requests_per_module,
    }
    limits = {"llm_rate_limit": args.llm_rpm / requests_per_module, **server_limits}
    hosts = [int(h) for h in args.hosts.split(",")]
    return {
        "per_host_modules_per_minute": per_host,
        "llm_requests_per_module": round(requests_per_module, 2),
        "limits_modules_per_minute": {k: round(v, 1) for k, v in limits.items()},
        "hosts_until_the_first_limit": round(min(limits.values()) / per_host, 1),
        "hosts_until_the_server_limit": round(min(server_limits.values()) / per_host, 1),
        "projection": _projection(per_host, limits, hosts),
        "projection_without_llm_limit": _projection(per_host, server_limits, hosts),
    }


def verdict(runs: list[dict], server: dict, args) -> dict:
    """The bar on the median of the rounds' cluster/threads ratios; the medians and slot use beside it."""
    threads, cluster, ratios = _median(runs, "threads"), _median(runs, "cluster"), _pair_ratios(runs)
    found = {
        "threads_modules_per_minute": threads,
        "cluster_modules_per_minute": cluster,
        "cluster_over_threads_by_round": ratios,
        "threads_slot_use": _median(runs, "threads", "slot_use"),
        "cluster_slot_use": _median(runs, "cluster", "slot_use"),
        "allowed_slowdown_pct": 100 * ALLOWED_SLOWDOWN,
    }
    if not ratios:
        return found | {"met": False}
    slowdown = 1 - statistics.median(ratios)
    requests = sum(r["llm"]["requests"] for r in runs if r["mode"] == "cluster")
    modules = sum(r["modules_done"] for r in runs if r["mode"] == "cluster")
    return found | {
        "cluster_slowdown_pct": round(100 * slowdown, 1),
        "met": slowdown <= ALLOWED_SLOWDOWN,
        "n_hosts": model(cluster, requests / max(modules, 1), server, args),
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.pop("PREFECT_API_URL", None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = Path(tempfile.mkdtemp(prefix="covsweep-bench-cluster-"))
    print(
        f"covsweep cluster bench: {args.modules} modules, LLM delay {args.delay:g}s, threads vs {args.workers} "
        f"Dask workers x {args.threads} threads, {args.repeats} rounds",
        flush=True,
    )
    try:
        runs = compare(args, scratch)
        server = server_writes(args.server_tasks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"schema": SCHEMA, "timestamp": stamp, "machine": machine(), "options": vars(args) | {"results": None}}
    result |= {"server_writes": server, "verdict": verdict(runs, server, args), "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    (args.results / f"cluster-{stamp}.json").write_text(text)
    (args.results / "cluster-latest.json").write_text(text)
    print(json.dumps({"server_writes": server, "verdict": result["verdict"]}, indent=2))
    return 0 if result["verdict"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
