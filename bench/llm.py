"""`make bench`, second half: LLM generator throughput, in modules per minute, against concurrency.

Generates a small synthetic project (bench/synth.py, default 16 modules), starts the scripted
chat-completions server of the tests (tests/fake_llm.py) on 127.0.0.1 answering every request after
a fixed delay (2 s) with a valid test file for the module the prompt names, then for each
concurrency C (1, 4, 8, 16) runs, on a fresh copy of the project,

    covsweep run TARGET --generator llm --models bench/model --llm-base-url URL --concurrency C
                 --max-iterations N (1) --coverage-target 100

as a subprocess (env COVSWEEP_LLM_API_KEY, a temporary PREFECT_HOME, Docker sandbox by default).
Every answer is a test file computed here by running the module's functions on a fixed set of
inputs, so its tests pass and add coverage and every module takes the whole path: import probe,
LLM request, filtering (3 reruns under coverage), write, final measurement.

The module phase is timed from covsweep's own output, as bench/run.py does: from the "baseline:"
line to the last "[N/N]" line; modules/minute = N / that * 60. Also recorded per C: each module's
sandbox start, generate and validate times from the report, the LLM requests the server saw and
how many were in flight at once, the host's CPU use and load, and covsweep's own CPU time.

The issue's bar: the design notes promised 3-4 modules a minute with one worker and 15-20 with
five. Writes JSON to bench/results/llm-<timestamp>.json and bench/results/llm-latest.json. The
whole benchmark stops itself after --budget seconds (each covsweep run is killed, containers
removed by covsweep's SIGTERM handling, when the budget runs out).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for entry in (str(BENCH), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from run import COVSWEEP, RESULTS, child_env, machine, phases, run_streamed, with_log_lines  # noqa: E402
from synth import PACKAGE, generate  # noqa: E402

from tasks.generators.examples_driver import ArcTracer  # noqa: E402
from tests.fake_llm import FakeLLM, Reply, completion_body  # noqa: E402

SCHEMA = "covsweep.bench.llm-throughput/1"
MODEL = "bench/model"
API_KEY = "covsweep-bench-key-not-secret"
PROMISED = {"1 worker": (3, 4), "5 workers": (15, 20)}  # modules/minute, from the design notes

MODULE_IN_PROMPT = re.compile(r"The module under test is `([\w.]+)`")
PROGRESS = re.compile(r"\[(\d+)/(\d+)\] (\S+): (\w+), line ([\d.]+)% -> ([\d.]+)%, (\d+) tests kept, ([\d.]+)s")

# -- the answers --------------------------------------------------------------------------------

# What a test tries on every function (and every method of a fresh instance): synth's templates
# take one argument; each call whose outcome is a plain value or an exception becomes an assertion.
PROBES = [
    "",
    "-1000",
    "-1",
    "0",
    "1",
    "9",
    "1000",
    "2520",
    "[]",
    "[1, None, 2]",
    "[1000, 1000]",
    '" 10 "',
    '"zz!"',
    '"   "',
]
CONSTRUCTORS = ["3", ""]
PLAIN = (int, float, str, bool, type(None), list, tuple, dict)


def _outcome(expr: str, namespace: dict) -> tuple[set, str] | None:
    """(the arcs of the module `expr` executes, the assertion for what it gave), or None when the
    call does not fit the function (wrong arity or argument types)."""
    with ArcTracer(namespace["__file__"]).tracing() as arcs:
        try:
            value = eval(expr, namespace)  # noqa: S307 - the synthetic project's own functions
        except (TypeError, AttributeError):
            return None
        except Exception as exc:  # noqa: BLE001
            if type(exc).__module__ != "builtins":
                return None
            return arcs, f"    with pytest.raises({type(exc).__name__}):\n        {expr}"
    assertion = _value_assertion(expr, value)
    return (arcs, assertion) if assertion else None


def _value_assertion(expr: str, value: object) -> str | None:
    """`assert expr == value` for a plain value that its repr gives back, else None."""
    if value is None:
        return f"    assert {expr} is None"
    if not isinstance(value, PLAIN):
        return None
    try:
        if eval(repr(value)) != value:  # noqa: S307 - our own repr of a plain value
            return None
    except Exception:  # noqa: BLE001
        return None
    return f"    assert {expr} == {value!r}"


def _asserts(call: str, namespace: dict) -> list[str]:
    """An assertion for each probe that executes a line or branch the earlier ones did not: what
    a person writes to cover a function, each checking the value it returns now."""
    covered: set[tuple[int, int]] = set()
    body = []
    for probe in PROBES:
        if (found := _outcome(call.format(probe), namespace)) and not found[0] <= covered:
            covered |= found[0]
            body.append(found[1])
    return body


def _constructs(expr: str, namespace: dict) -> bool:
    try:
        eval(expr, namespace)  # noqa: S307
        return True
    except Exception:  # noqa: BLE001
        return False


def answer_for(path: Path, dotted: str) -> str:
    """A pytest file for the module at `path`: one test per function and method, asserting what
    the module returns now for the probes that reach new lines and branches."""
    spec = importlib.util.spec_from_file_location(f"_covsweep_bench_{dotted.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    namespace = vars(module)
    tree = ast.parse(path.read_text())
    names, tests = [], []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        names.append(node.name)
        if isinstance(node, ast.FunctionDef):
            if body := _asserts(f"{node.name}({{}})", namespace):
                tests.append((f"test_{node.name}", body))
            continue
        ctor = next((f"{node.name}({c})" for c in CONSTRUCTORS if _constructs(f"{node.name}({c})", namespace)), None)
        if ctor is None:
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                if body := _asserts(f"{ctor}.{item.name}({{}})", namespace):
                    tests.append((f"test_{node.name}_{item.name}", body))
    lines = ["import pytest", "", f"from {dotted} import {', '.join(names)}", ""]
    for name, body in tests:
        lines += ["", f"def {name}():", *body, ""]
    return "\n".join(lines)


def answers(project: Path) -> dict[str, str]:
    """dotted module name -> the test file the server answers with."""
    package = project / "src" / PACKAGE
    return {
        f"{PACKAGE}.{p.stem}": answer_for(p, f"{PACKAGE}.{p.stem}")
        for p in sorted(package.glob("*.py"))
        if p.name != "__init__.py"
    }


class Answering:
    """The reply body: the answer for the module the request's prompt names."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.unknown = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict) -> bytes:
        body = request.get("body") or {}
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))
        found = MODULE_IN_PROMPT.search(text)
        code = self.files.get(found.group(1)) if found else None
        if code is None:
            with self._lock:
                self.unknown += 1
            content = "I cannot tell which module to test."  # prose: covsweep asks again, then falls back
        else:
            content = f"Here are the tests:\n\n```python\n{code}```\n"
        prompt_tokens = max(1, len(text) // 4)
        completion_tokens = max(1, len(content) // 4)
        return json.dumps(
            completion_body(
                content,
                model=body.get("model") or MODEL,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        ).encode()


# -- measuring a run ----------------------------------------------------------------------------


class HostSampler:
    """Host CPU use (from /proc/stat) and the 1-minute load average, once a second, in a thread."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu busy share since last, load1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="host-sampler")

    @staticmethod
    def _cpu() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    def _run(self) -> None:
        started = self.started
        busy0, total0 = self._cpu()
        while not self._stop.wait(self.interval):
            busy, total = self._cpu()
            share = (busy - busy0) / (total - total0) if total > total0 else 0.0
            busy0, total0 = busy, total
            self.samples.append((round(time.monotonic() - started, 2), round(share, 3), os.getloadavg()[0]))

    def __enter__(self) -> HostSampler:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def between(self, start: float | None, end: float | None) -> dict:
        chosen = [s for s in self.samples if start is None or end is None or start <= s[0] <= end]
        if not chosen:
            return {"cpu_busy_pct_mean": None, "cpu_busy_pct_max": None, "load1_max": None}
        return {
            "cpu_busy_pct_mean": round(100 * statistics.mean(s[1] for s in chosen), 1),
            "cpu_busy_pct_max": round(100 * max(s[1] for s in chosen), 1),
            "load1_max": round(max(s[2] for s in chosen), 2),
        }


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "mean": round(statistics.mean(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
        "sum": round(sum(values), 3),
    }


def in_flight(arrivals: list[float], hold_s: float, start: float | None, end: float | None) -> dict:
    """How many LLM requests were waiting on the server at once (each held for hold_s)."""
    if not arrivals:
        return {"max": 0, "mean_over_module_phase": None}
    events = sorted([(a, 1) for a in arrivals] + [(a + hold_s, -1) for a in arrivals])
    level = peak = 0
    area, last = 0.0, None
    lo = start if start is not None else events[0][0]
    hi = end if end is not None else events[-1][0]
    for t, step in events:
        if last is not None:
            a, b = max(last, lo), min(t, hi)
            if b > a:
                area += level * (b - a)
        level += step
        peak = max(peak, level)
        last = t
    mean = round(area / (hi - lo), 2) if hi > lo else None
    return {"max": peak, "mean_over_module_phase": mean}


def never_began(run: dict) -> bool:
    return run["exit_code"] != 0 and not run["timed_out"] and run["at_s"]["flow_begins"] is None


def _command(concurrency: int, project: Path, base_url: str, args, report: Path, extra: tuple[str, ...]) -> list[str]:
    """`covsweep run` on `project` with the bench's LLM server and options."""
    return [
        str(COVSWEEP),
        "run",
        str(project),
        "--generator",
        "llm",
        "--models",
        MODEL,
        "--llm-base-url",
        base_url,
        "--concurrency",
        str(concurrency),
        "--max-iterations",
        str(args.max_iterations),
        "--coverage-target",
        str(args.coverage_target),
        "--sandbox",
        args.sandbox,
        "--mutation",
        args.mutation,
        "--report",
        str(report),
        *extra,
    ]


def _env(prefect_home: Path) -> dict[str, str]:
    """The run's environment: the bench's API key, no model or endpoint of the host's own."""
    env = child_env(prefect_home) | {"COVSWEEP_LLM_API_KEY": API_KEY}
    # Prefect's default of 20 s for the ephemeral server to come up is too short on a loaded host.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    for name in ("COVSWEEP_MODELS", "COVSWEEP_LLM_BASE_URL", "OPENROUTER_API_KEY"):
        env.pop(name, None)
    return env


def _progress(lines: list[tuple[float, str]]) -> list[dict]:
    """covsweep's "[k/N] module: ..." lines, each when it first came (on the console, or in Prefect's
    log) and what it says."""
    progress, seen = [], set()
    for t, line in lines:
        if (m := PROGRESS.search(line)) and m.group(3) not in seen:
            seen.add(m.group(3))
            progress.append(
                {
                    "t": round(t, 3),
                    "k": int(m.group(1)),
                    "n": int(m.group(2)),
                    "module": m.group(3),
                    "status": m.group(4),
                    "line_before": float(m.group(5)),
                    "line_after": float(m.group(6)),
                    "kept": int(m.group(7)),
                    "execution_s": float(m.group(8)),
                }
            )
    return progress


def _throughput(progress: list[dict], modules_s: float | None, concurrency: int, at: dict) -> dict:
    """Modules done of total and per minute, over the module phase and between the first and last module."""
    n = progress[-1]["n"] if progress else None
    done = len(progress)
    per_minute = round(60.0 * done / modules_s, 2) if modules_s and done == n else None
    # Steady state: between the first and the last module finishing (undefined when C >= N).
    steady = None
    if done >= 2 and progress[-1]["t"] > progress[0]["t"] and concurrency < done:
        steady = round(60.0 * (done - 1) / (progress[-1]["t"] - progress[0]["t"]), 2)
    return {
        "modules_done": done,
        "modules_total": n,
        "module_phase_s": modules_s,
        "modules_per_minute": per_minute,
        "modules_per_minute_first_to_last": steady,
        "first_module_after_baseline_s": (
            round(progress[0]["t"] - at["baseline_done"], 3) if progress and at["baseline_done"] is not None else None
        ),
    }


def _llm_figures(requests: list, unscripted: int, t0: float, at: dict, hold_s: float) -> dict:
    """The requests the server saw during the run (`requests`, `unscripted` of them) and how many waited at once."""
    arrivals = [r.at - t0 for r in requests]
    return {
        "requests": len(requests),
        "unscripted": unscripted,
        "first_request_after_baseline_s": (
            round(min(arrivals) - at["baseline_done"], 3) if arrivals and at["baseline_done"] is not None else None
        ),
        "in_flight": in_flight(arrivals, hold_s, at["baseline_done"], at["last_module"]),
        "arrivals_s": [round(a, 3) for a in sorted(arrivals)],
    }


def _report_figures(report: Path) -> dict:
    """What covsweep's report says of the run's modules: totals, statuses, errors, per-module times."""
    data = json.loads(report.read_text())
    modules = data.get("modules", [])
    return {
        "totals": data.get("totals"),
        "statuses": {s: sum(m.get("status") == s for m in modules) for s in sorted({m.get("status") for m in modules})},
        "generators": {
            g: sum(m.get("generator") == g for m in modules)
            for g in sorted({m.get("generator") or "" for m in modules})
        },
        "errors": [
            f"{m['module']}: {m['error']['type']}: {m['error']['message'][:200]}" for m in modules if m.get("error")
        ][:10],
        "per_module_s": _per_module_s(modules),
        "llm_attempts": sum(len(m["metadata"]["attempts"]) for m in modules),
    }


def _per_module_s(modules: list[dict]) -> dict:
    """Statistics of each module's time, whole and by phase, from the report."""
    return {
        "execution": _stats([m["execution_time"] for m in modules]),
        "generate": _stats([m["timings"]["generate"] for m in modules]),
        "validate": _stats([m["timings"]["validate"] for m in modules]),
        # probe + filter container starts together (two containers per module)
        "sandbox_start": _stats([m["timings"]["sandbox_start"] for m in modules]),
        "unaccounted": _stats(
            [
                m["execution_time"]
                - m["timings"]["generate"]
                - m["timings"]["validate"]
                - m["timings"]["sandbox_start"]
                for m in modules
            ]
        ),
    }


def _cpu_s(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2)


def run_one(
    concurrency: int,
    project: Path,
    fake: FakeLLM,
    args,
    prefect_home: Path,
    sampler: HostSampler,
    timeout: float,
    hold_s: float,
    extra: tuple[str, ...] = (),
) -> dict:
    """One covsweep run; `extra`: more of its options (bench/cluster.py's --cluster)."""
    report = project.parent / f"report-c{concurrency}.json"
    command = _command(concurrency, project, fake.base_url, args, report, extra)
    requests_before, unscripted_before = len(fake.requests), fake.unscripted
    load_before = [round(x, 2) for x in os.getloadavg()]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    sample_offset = t0 - sampler.started
    (report.parent / "covsweep.log").unlink(missing_ok=True)
    result = run_streamed(command, cwd=project, env=_env(prefect_home), timeout=timeout, echo=args.verbose)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = with_log_lines(result, report)
    timed = phases(lines, result["seconds"])
    at, spans = timed["at_s"], timed["phases_s"]
    progress = _progress(lines)
    out = {
        "concurrency": concurrency,
        "command": " ".join(command).replace(fake.base_url, "URL"),
        "seconds": round(result["seconds"], 3),
        "exit_code": result["exit_code"],
        "timed_out": result["timed_out"],
        **_throughput(progress, spans["modules"], concurrency, at),
        "phases_s": spans,
        "at_s": at,
        "progress": progress,
        "llm": _llm_figures(fake.requests[requests_before:], fake.unscripted - unscripted_before, t0, at, hold_s),
        "host": {
            "loadavg_before": load_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            **sampler.between(
                sample_offset + (at["baseline_done"] or 0), sample_offset + (at["last_module"] or result["seconds"])
            ),
        },
        # covsweep's process and its waited-for children (the ephemeral Prefect server); not the containers
        "covsweep_cpu_s": _cpu_s(children_before, children),
        "problem_lines": timed["problem_lines"],
        "problem_line_count": timed["problem_line_count"],
    }
    if report.exists():
        out["report"] = _report_figures(report)
    if result["exit_code"] != 0 or not report.exists():
        out["output_tail"] = [line for _, line in lines[-40:]]
    return out


# -- the benchmark ------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[int]]:
    """The options, checked, and the concurrency levels to measure."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modules", type=int, default=16, help="modules in the generated project [16]")
    parser.add_argument("--concurrency", default="1,4,8,16", help="comma-separated --concurrency values [1,4,8,16]")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the server waits before each answer [2]")
    parser.add_argument(
        "--coverage-target",
        type=float,
        default=100.0,
        help="covsweep's --coverage-target: 100 so that no module skips generation [100]",
    )
    parser.add_argument(
        "--max-iterations",
        type=int,
        default=1,
        help="covsweep's --max-iterations: more than 1 counts the requests refinement sends [1]",
    )
    parser.add_argument(
        "--no-project-tests",
        dest="project_tests",
        action="store_false",
        help="the project without tests of its own: a module's def and class lines run only when a generated "
        "test imports it",
    )
    parser.add_argument(
        "--sandbox", choices=["docker", "local"], default="docker", help="covsweep's --sandbox [docker]"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=540.0,
        help="the whole benchmark stops after this many seconds, runs not done are skipped [540]",
    )
    parser.add_argument(
        "--mutation", choices=["on", "off"], default="on", help="covsweep's --mutation: off is coverage alone [on]"
    )
    parser.add_argument("--prefect-home", type=Path, default=None, help="PREFECT_HOME for covsweep [a temporary one]")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects and print where")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes [bench/results]")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo covsweep's output")
    args = parser.parse_args(argv)
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency: comma-separated integers, e.g. 1,4,8,16")
    bounds = [
        not levels,
        min(args.modules, args.max_iterations, *levels) < 1,
        max(levels, default=0) > 64,
        args.delay < 0,
    ]
    if any(bounds) or args.budget <= 0:
        parser.error("--modules >= 1, --max-iterations >= 1, concurrency 1..64, --delay >= 0, --budget > 0")
    if not COVSWEEP.exists():
        parser.error(f"{COVSWEEP} is missing: run `make install`")
    return args, levels


class Levels:
    """The covsweep runs of one benchmark, one per concurrency level, kept as each ends: an
    interrupt or the budget running out keeps those measured."""

    def __init__(self, args: argparse.Namespace, levels: list[int], scratch: Path, deadline: float):
        self.args, self.levels, self.scratch, self.deadline = args, levels, scratch, deadline
        self.runs: list[dict] = []
        self.skipped: list[int] = []
        self.fake: FakeLLM | None = None
        self.answering: Answering | None = None

    def measure(self, info: dict) -> None:
        args = self.args
        self.answering = Answering(answers(generate(self.scratch / "answers", args.modules)))
        self.fake = FakeLLM()
        prefect_home = args.prefect_home or (self.scratch / "prefect-home")
        prefect_home.mkdir(parents=True, exist_ok=True)
        print(
            f"covsweep LLM throughput bench: {args.modules} modules, server delay {args.delay:g}s, "
            f"concurrency {self.levels}, {info['cpu_count']} CPUs, load {info['loadavg_at_start']}, "
            f"sandbox {args.sandbox}, budget {args.budget:.0f}s",
            flush=True,
        )
        with HostSampler() as sampler:
            for concurrency in self.levels:
                remaining = self.deadline - time.monotonic()
                if remaining < 30:
                    self.skipped.append(concurrency)
                    print(f"  C={concurrency}: skipped, {remaining:.0f}s of the budget left", flush=True)
                    continue
                run = self.run_level(concurrency, prefect_home, sampler, remaining)
                self.runs.append(run)
                _print_run(run)

    def run_level(self, concurrency: int, prefect_home: Path, sampler: HostSampler, remaining: float) -> dict:
        """One covsweep run at `concurrency`, tried once more when its Prefect server never came up."""
        args = self.args
        # A fresh copy per run: covsweep writes its tests into it and remembers finished modules by path.
        project = generate(self.scratch / f"project-c{concurrency}", args.modules, with_tests=args.project_tests)
        reply = Reply(body=self.answering, headers={"Content-Type": "application/json"}, delay_s=args.delay)
        self.fake.script(*[reply] * (args.modules * 8))
        run = run_one(concurrency, project, self.fake, args, prefect_home, sampler, remaining, args.delay)
        if not (never_began(run) and self.deadline - time.monotonic() > 60):
            return run
        # The ephemeral Prefect server did not come up (a loaded host): once more, on a fresh copy.
        print(f"  C={concurrency}: the flow never began (exit {run['exit_code']}); trying once more", flush=True)
        project = generate(self.scratch / f"project-c{concurrency}-retry", args.modules, with_tests=args.project_tests)
        self.fake.script(*[reply] * (args.modules * 8))
        failed = run
        run = run_one(
            concurrency, project, self.fake, args, prefect_home, sampler, self.deadline - time.monotonic(), args.delay
        )
        run["first_attempt"] = {
            "exit_code": failed["exit_code"],
            "seconds": failed["seconds"],
            "output_tail": failed.get("output_tail", [])[-10:],
        }
        return run

    def close(self) -> None:
        if self.fake is not None:
            self.fake.close()

    def complete(self) -> bool:
        """Every level ran, exited 0 and measured a rate."""
        return (
            not self.skipped
            and len(self.runs) == len(self.levels)
            and all(r["exit_code"] == 0 and r["modules_per_minute"] for r in self.runs)
        )


def _print_run(run: dict) -> None:
    per_module = (run.get("report") or {}).get("per_module_s") or {}
    sandbox = per_module.get("sandbox_start") or {}
    print(
        f"  C={run['concurrency']:<2} {run['modules_done']}/{run['modules_total']} modules in "
        f"{run['module_phase_s']}s -> {run['modules_per_minute']} modules/min; "
        f"sandbox start/module mean {sandbox.get('mean')}s max {sandbox.get('max')}s; "
        f"LLM in flight max {run['llm']['in_flight']['max']}; CPU {run['host']['cpu_busy_pct_mean']}%; "
        f"run {run['seconds']:.0f}s exit {run['exit_code']}{' TIMED OUT' if run['timed_out'] else ''}",
        flush=True,
    )
    if run["exit_code"] != 0 and "output_tail" in run:
        print("\n".join("    | " + line[:200] for line in run["output_tail"][-15:]), file=sys.stderr)


def _add_ratios(runs: list[dict], delay: float) -> None:
    """Each run's speedup over concurrency 1, and the rate the LLM's delay alone would allow."""
    base = next((r for r in runs if r["concurrency"] == 1 and r["modules_per_minute"]), None)
    for r in runs:
        r["speedup_vs_c1"] = (
            round(r["modules_per_minute"] / base["modules_per_minute"], 2) if base and r["modules_per_minute"] else None
        )
        # With only the LLM's delay to wait for, C modules would take `delay` s at a time.
        r["llm_only_bound_per_minute"] = round(60.0 * r["concurrency"] / delay, 1) if delay else None


def _summary_row(r: dict) -> dict:
    return {
        "concurrency": r["concurrency"],
        "modules_per_minute": r["modules_per_minute"],
        "speedup_vs_c1": r["speedup_vs_c1"],
        "module_phase_s": r["module_phase_s"],
        "sandbox_start_mean_s": (((r.get("report") or {}).get("per_module_s") or {}).get("sandbox_start") or {}).get(
            "mean"
        ),
        "llm_in_flight_max": r["llm"]["in_flight"]["max"],
        "cpu_busy_pct_mean": r["host"]["cpu_busy_pct_mean"],
        "exit_code": r["exit_code"],
    }


def _result(measured: Levels, stamp: str, info: dict, started: float) -> dict:
    args, runs = measured.args, measured.runs
    _add_ratios(runs, args.delay)
    ok = [r for r in runs if r["modules_per_minute"]]
    best = max(ok, key=lambda r: r["modules_per_minute"]) if ok else None
    return {
        "schema": SCHEMA,
        "timestamp": stamp,
        "modules": args.modules,
        "server_delay_s": args.delay,
        "coverage_target": args.coverage_target,
        "max_iterations": args.max_iterations,
        "project_tests": args.project_tests,
        "sandbox": args.sandbox,
        "mutation": args.mutation,
        "model": MODEL,
        "concurrency_levels": measured.levels,
        "skipped_levels": measured.skipped,
        "promised_modules_per_minute": PROMISED,
        "machine": info,
        "summary": [_summary_row(r) for r in runs],
        "best": None
        if best is None
        else {"concurrency": best["concurrency"], "modules_per_minute": best["modules_per_minute"]},
        "unknown_prompts": measured.answering.unknown if measured.fake is not None else None,
        "runs": runs,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "bench_seconds": round(time.monotonic() - started, 1),
    }


def _print_summary(result: dict, info: dict, written: Path) -> None:
    print()
    print(
        f"{'C':>3}  {'modules/min':>11}  {'speedup':>7}  {'module phase':>12}  {'sandbox start/module':>20}  "
        f"{'LLM in flight':>13}  {'CPU busy':>8}"
    )
    for s in result["summary"]:
        fmt = lambda v, suffix="": "n/a" if v is None else f"{v}{suffix}"  # noqa: E731
        print(
            f"{s['concurrency']:>3}  {fmt(s['modules_per_minute']):>11}  {fmt(s['speedup_vs_c1'], 'x'):>7}  "
            f"{fmt(s['module_phase_s'], 's'):>12}  {fmt(s['sandbox_start_mean_s'], 's'):>20}  "
            f"{fmt(s['llm_in_flight_max']):>13}  {fmt(s['cpu_busy_pct_mean'], '%'):>8}"
        )
    print(
        f"promised: 3-4/min with 1 worker, 15-20/min with 5; load {info['loadavg_at_start']} -> "
        f"{result['loadavg_at_end']}"
    )
    print(f"results: {written}  ({result['bench_seconds']:.0f}s)")


def _out_of_time(signum, frame):  # backstop: run_streamed turns this into stopping covsweep
    raise KeyboardInterrupt("bench/llm.py: budget exceeded")


def main(argv: list[str] | None = None) -> int:
    args, levels = _arguments(argv)
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(args.budget + 90))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    info = machine()
    scratch = Path(tempfile.mkdtemp(prefix="covsweep-bench-llm-"))
    measured = Levels(args, levels, scratch, deadline=started + args.budget)
    try:
        measured.measure(info)
    except KeyboardInterrupt as exc:
        print(f"bench/llm.py: interrupted ({exc or 'signal'}); writing what was measured", file=sys.stderr)
    finally:
        signal.alarm(0)
        measured.close()
    try:
        result = _result(measured, stamp, info, started)
        args.results.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=2) + "\n"
        (args.results / f"llm-{stamp}.json").write_text(text)
        (args.results / "llm-latest.json").write_text(text)
        _print_summary(result, info, args.results / f"llm-{stamp}.json")
        if args.keep:
            print(f"projects kept in {scratch}")
        return 0 if measured.complete() else 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
