"""`make bench`: how much a coverage-only covsweep sweep costs over plain coverage.py.

Generates a synthetic src/-layout project (default 300 modules, a partial test file each) in a
temporary directory, then times on the same project:

* plain: `python -m coverage run --branch -m pytest` on the host, from the project root;
* covsweep: `.venv/bin/covsweep run TARGET --generator none` as a subprocess (Docker sandbox by
  default), its output streamed line by line to time its phases: the start (the temporary Prefect
  server's process is spawned right after the checks and boots meanwhile), the wait for that server
  ("Starting temporary server" until the flow run begins), the baseline, the first finished module
  ("[1/N]"), the last one, and the exit.

Prints a short summary and writes JSON to bench/results/<timestamp>.json and bench/results/latest.json.
The issue's target is covsweep/plain below 1.5.

By default covsweep runs against a Prefect home of its own (a temporary PREFECT_HOME, first warmed
by an untimed one-module run that also creates its database), so that other users of
~/.prefect/prefect.db neither slow the benchmark down nor see its runs; --prefect-home uses a given one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from synth import generate  # noqa: E402

VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
COVSWEEP = VENV_BIN / "covsweep"
RESULTS = BENCH / "results"
TARGET_RATIO = 1.5
TARGETS = {400: 2.0, 2000: 1.5}  # the bars by project size; other sizes use TARGET_RATIO
SECOND_SWEEP_TARGET = 0.05
UNCHANGED = "unchanged since run"  # what covsweep run prints when it finds a finished run's report instead
SCHEMA = "covsweep.bench.coverage-sweep/3"

# Lines of covsweep's output that mark a phase; the first match of each counts.
MARKERS = {
    "server_starting": re.compile(r"Starting temporary server"),
    "flow_begins": re.compile(r"Beginning flow run"),
    "plan_done": re.compile(r"Task run 'plan-run[^']*' - Finished"),
    # covsweep's own line on the console, or Prefect's in covsweep.log: whichever came first
    "baseline_done": re.compile(r"^baseline: line|- baseline of the whole project: line"),
    "first_task_finished": re.compile(r"Task run 'generate [^']*' - Finished"),
    "first_module": re.compile(r"\[1/\d+\]"),
    # `--generator none` may settle every module in one task run instead of one per module
    "all_modules_task_finished": re.compile(r"Task run 'measure-only[^']*' - Finished"),
    "flow_finished": re.compile(r"Flow run '[^']*' - Finished in state"),
}
LAST_MODULE = re.compile(r"\[(\d+)/(\d+)\]")
TASK_FINISHED = MARKERS["first_task_finished"]
PROBLEM = re.compile(r"\| (ERROR|CRITICAL) |^Traceback")


def child_env(prefect_home: Path | None) -> dict[str, str]:
    """The environment of a covsweep run the benchmarks start: the ephemeral API, in `prefect_home`."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the ephemeral API: what `covsweep run` does on a fresh host
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    return env


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to covsweep alone first (it then removes its containers and stops its Prefect server;
    SIGTERM to the whole group would kill that server under it, and covsweep would spend minutes
    retrying API calls), SIGKILL to the whole group if it does not go."""
    for sig, grace in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            if sig == signal.SIGTERM:
                os.kill(proc.pid, sig)
            else:
                os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


PREFECT_LINE_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| ")


def logged_at(line: str, wall_started: datetime) -> float | None:
    """Seconds after `wall_started` at which Prefect logged the line, from its own time stamp: covsweep holds
    its console lines back until the run is planned (a refused run prints one line), so they arrive late."""
    if not (m := PREFECT_LINE_TIME.match(line)):
        return None
    hour, minute, second, milli = map(int, m.groups())
    logged = wall_started.replace(hour=hour, minute=minute, second=second, microsecond=milli * 1000)
    if logged < wall_started - timedelta(hours=12):  # past midnight
        logged += timedelta(days=1)
    return max(0.0, (logged - wall_started).total_seconds())


def run_streamed(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float, echo: bool = False) -> dict:
    """Run `args`, note when each output line arrives; kill the process group after `timeout` s."""
    lines: list[tuple[float, str]] = []
    started, wall_started = time.monotonic(), datetime.now()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )

    def read() -> None:
        for line in proc.stdout:
            arrived = time.monotonic() - started
            lines.append((logged_at(line, wall_started) or arrived, line.rstrip("\n")))
            if echo:
                print(f"  | {line.rstrip()[:160]}", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    memory = MemoryWatch(proc.pid)
    timed_out = False
    try:
        timed_out = not _reap(proc, started + timeout, memory)
    except KeyboardInterrupt:
        _stop(proc)
        raise
    if timed_out:
        _stop(proc)
    elapsed = time.monotonic() - started
    reader.join(timeout=10)
    return {
        "seconds": elapsed,
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        "lines": lines,
        "wall_started": wall_started,
        "memory": memory.figures(),
    }


class MemoryWatch:
    """Peak memory of a process: its own high-water mark (VmHWM, exact, read until it exits) and the
    sampled sum of the RSS of it and its descendants (the temporary Prefect server, pytest runs of
    --sandbox local; Docker containers are the daemon's children, not its)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.hwm_kib, self.tree_bytes, self.largest_kib = pid, 0, 0, 0

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if hwm:
            self.hwm_kib = max(self.hwm_kib, int(hwm.group(1)))
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
            self.tree_bytes = max(self.tree_bytes, sum(_rss(p) for p in tree))
        except psutil.Error:
            pass

    def figures(self) -> dict:
        return {
            "peak_rss_mib": round(self.hwm_kib / 1024, 1),
            "peak_tree_rss_mib_sampled": round(self.tree_bytes / 2**20, 1),
            "largest_process_peak_rss_mib": round(self.largest_kib / 1024, 1),
        }


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _reap(proc: subprocess.Popen, deadline: float, memory: MemoryWatch) -> bool:
    """Wait for `proc` until `deadline` (monotonic), sampling its memory; False when it is still running.
    The child is reaped here with wait4 so that its last high-water mark is read just before."""
    while time.monotonic() < deadline:
        memory.sample()
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            # ru_maxrss (KiB): the largest single process among it and its reaped children
            memory.largest_kib = usage.ru_maxrss
            proc.returncode = os.waitstatus_to_exitcode(status)
            return True
        time.sleep(0.1)
    return False


def phases(lines: list[tuple[float, str]], total_s: float) -> dict:
    """Seconds since covsweep started at which each marker line first appeared, and the phases."""
    at: dict[str, float | str | None] = {name: None for name in MARKERS}
    last_module = last_task = None
    problems = []
    for t, line in lines:
        for name, pattern in MARKERS.items():
            if at[name] is None and pattern.search(line):
                at[name] = round(t, 3)
        m = LAST_MODULE.search(line)
        if m and m.group(1) == m.group(2):
            last_module = round(t, 3)
        if TASK_FINISHED.search(line):
            last_task = round(t, 3)
        if PROBLEM.search(line):
            problems.append(line[:300])
    at["last_task_finished"] = last_task
    at["last_module"] = last_module
    at["first_module_from"] = "[1/N] line" if at["first_module"] is not None else None
    if at["all_modules_task_finished"] is not None:
        # No line per module: all of them are done when that one task is.
        if at["first_module"] is None:
            at["first_module"], at["first_module_from"] = at["all_modules_task_finished"], "measure-only task"
        at["last_task_finished"] = at["last_task_finished"] or at["all_modules_task_finished"]
        at["last_module"] = at["last_module"] or at["all_modules_task_finished"]
    at["exit"] = round(total_s, 3)

    def span(a: str | None, b: str) -> float | None:
        start = 0.0 if a is None else at[a]
        return round(at[b] - start, 3) if start is not None and at[b] is not None else None

    return {
        "at_s": at,
        "phases_s": {
            # process start, the preflight (option checks, discovery, Docker ping), then Prefect's imports
            # while the temporary server's process boots
            "startup": span(None, "server_starting"),
            # the rest of the wait for the temporary server, plus creating the flow run
            "prefect_server": span("server_starting", "flow_begins"),
            "plan": span("flow_begins", "plan_done"),  # with the sandbox and target image checks
            "baseline": span("plan_done", "baseline_done"),
            "modules": span("baseline_done", "last_module"),
            # of which: the per-module Prefect tasks, then the flow's loop catching up on finished ones
            "module_tasks": span("baseline_done", "last_task_finished"),
            "modules_after_last_task": span("last_task_finished", "last_module"),
            "finish": span("last_module", "flow_finished"),
            # summary table, Prefect server shutdown, interpreter exit
            "exit": span("flow_finished", "exit"),
        },
        # ERROR/Traceback lines in covsweep's output (e.g. Prefect services cut off at shutdown)
        "problem_lines": problems[:20],
        "problem_line_count": len(problems),
    }


def run_plain(project: Path, timeout: float) -> dict:
    """Plain coverage.py over the project's tests, the way its developer runs them."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # as in covsweep's sandbox: same imports
    for stale in project.glob(".coverage*"):
        stale.unlink()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(PYTHON), "-m", "coverage", "run", "--branch", "-m", "pytest", "-q"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"bench: plain coverage run took over {timeout:.0f}s") from None
    seconds = time.monotonic() - started
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        raise SystemExit(f"bench: plain coverage run failed ({proc.returncode}): {tail}\n{proc.stderr[-2000:]}")
    report = subprocess.run(
        [str(PYTHON), "-m", "coverage", "json", "-q", "-o", "-"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    totals = json.loads(report.stdout)["totals"] if report.returncode == 0 else {}
    for stale in project.glob(".coverage*"):
        stale.unlink()
    shutil.rmtree(project / ".pytest_cache", ignore_errors=True)
    return {
        "seconds": round(seconds, 3),
        "pytest": tail,
        # coverage.py's own defaults: measures the test files too, unlike covsweep's per-module numbers
        "line": round(totals.get("percent_statements_covered", 0.0), 2),
        "branch": round(totals.get("percent_branches_covered", 0.0), 2),
    }


IMPORT_PROBE = """
import time
t0 = time.perf_counter()
import covsweep.cli, flows.spec_to_production
print(round(time.perf_counter() - t0, 3))
"""


def import_costs(env: dict[str, str]) -> dict:
    """What importing covsweep's command line and flow costs (the temporary server boots meanwhile)."""
    samples = []
    for _ in range(2):  # the lower of two: a loaded machine only ever adds time
        proc = subprocess.run(
            [str(PYTHON), "-c", IMPORT_PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        try:
            samples.append(float(proc.stdout))
        except ValueError:
            continue
    return {"covsweep_and_flow_s": min(samples, default=None)}


def _log_lines(log: Path, wall_started: datetime) -> list[tuple[float, str]]:
    """Prefect's log lines, which covsweep writes to TARGET/.covsweep/covsweep.log, by their time stamps."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    return [(at, line) for line in lines if (at := logged_at(line, wall_started)) is not None]


def with_log_lines(result: dict, report: Path) -> list[tuple[float, str]]:
    """A run's console lines and Prefect's, which covsweep writes to covsweep.log next to its report, in time order."""
    logged = _log_lines(report.parent / "covsweep.log", result["wall_started"])
    return sorted(result["lines"] + logged, key=lambda pair: pair[0])


def run_covsweep(project: Path, report: Path, args, prefect_home: Path | None, fresh: bool = True) -> dict:
    """`fresh`: the report and log of an earlier run are removed first, so that the flow runs (a run finds
    an unchanged project's report otherwise, and prints it)."""
    command = [
        str(COVSWEEP),
        "run",
        str(project),
        "--generator",
        "none",
        "--report",
        str(report),
        "--sandbox",
        args.sandbox,
        *args.covsweep_arg,
    ]
    if fresh:
        report.unlink(missing_ok=True)
        (report.parent / "covsweep.log").unlink(missing_ok=True)
    result = run_streamed(command, cwd=project, env=child_env(prefect_home), timeout=args.timeout, echo=args.verbose)
    flow_ran = not any(UNCHANGED in line for _, line in result["lines"])
    if flow_ran:  # else the log is the earlier run's
        result["lines"] = with_log_lines(result, report)
    out = {
        "command": " ".join(command),
        "seconds": round(result["seconds"], 3),
        "exit_code": result["exit_code"],
        "timed_out": result["timed_out"],
        "flow_ran": flow_ran,
    }
    out |= phases(result["lines"], result["seconds"])
    out["memory"] = result["memory"]
    flow_begins, first = out["at_s"]["flow_begins"], out["at_s"]["first_module"]
    out["first_module_from_flow_start_s"] = round(first - flow_begins, 3) if None not in (first, flow_begins) else None
    if result["exit_code"] != 0 or not report.exists():
        out["output_tail"] = [line for _, line in result["lines"][-40:]]
    if report.exists():
        data = json.loads(report.read_text())
        times = [m.get("execution_time", 0.0) for m in data.get("modules", [])]
        out["report"] = {
            "totals": data.get("totals"),
            "duration_s": data.get("duration_s"),
            "statuses": {
                s: sum(m.get("status") == s for m in data["modules"])
                for s in sorted({m.get("status") for m in data.get("modules", [])})
            },
            "module_execution_s": {"sum": round(sum(times), 3), "max": round(max(times, default=0.0), 3)},
        }
    return out


def machine() -> dict:
    def version(*cmd: str) -> str | None:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "prefect": version(str(PYTHON), "-c", "import prefect; print(prefect.__version__)"),
        "coverage": version(str(PYTHON), "-c", "import coverage; print(coverage.__version__)"),
        "docker": version("docker", "version", "--format", "{{.Server.Version}}"),
        # fuse-overlayfs makes each absolute path lookup in a container cost ~80 us (README, Speed)
        "docker_storage_driver": version("docker", "info", "--format", "{{.Driver}}"),
        "commit": version("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
        # uncommitted changes to the product (not bench/) make the commit alone not the code measured
        "product_changes": version("git", "-C", str(REPO), "status", "--porcelain", "--", "covsweep", "flows", "tasks"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _min(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(min(values), 3) if values else None


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modules",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[400, 2000],
        help="sizes of the generated projects, comma-separated; each measured in this run [400,2000]",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed rounds, each plain + covsweep + plain; medians reported [1]"
    )
    parser.add_argument(
        "--sandbox", choices=["docker", "local"], default="docker", help="covsweep's --sandbox [docker]"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="kill a covsweep run after this many seconds [600]"
    )
    parser.add_argument(
        "--prefect-home",
        type=Path,
        default=None,
        help="PREFECT_HOME for covsweep; default: a temporary one, warmed by an untimed run",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed one-module warm-up run")
    parser.add_argument(
        "--covsweep-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument passed to `covsweep run` (repeatable), e.g. --covsweep-arg=--concurrency=8",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated project and print where")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes [bench/results]")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo covsweep's output")
    args = parser.parse_args(argv)
    if min(args.modules) < 1 or args.repeat < 1:
        parser.error("--modules and --repeat must be at least 1")
    if not COVSWEEP.exists():
        parser.error(f"{COVSWEEP} is missing: run `make install`")
    return args


def _warmup(scratch: Path, report: Path, args: argparse.Namespace, prefect_home: Path) -> dict:
    """An untimed one-module run: creates the Prefect database, warms Docker and the page cache."""
    tiny = generate(scratch / "warmup", 1)
    warmup = run_covsweep(tiny, report, args, prefect_home)
    print(f"  warm-up (1 module, untimed): {warmup['seconds']:.1f}s, exit {warmup['exit_code']}", flush=True)
    if warmup["exit_code"] not in (0, 1):
        print("\n".join(warmup.get("output_tail", [])), file=sys.stderr)
        raise SystemExit("bench: the warm-up covsweep run failed")
    return warmup


def _rounds(project: Path, report: Path, args: argparse.Namespace, prefect_home: Path) -> list[dict]:
    """The timed rounds, each plain + covsweep + plain; they stop at the first covsweep run that fails."""
    rounds = []
    for n in range(1, args.repeat + 1):
        # Plain before and after covsweep: the machine's load drifts, one sample of each side is not enough.
        plain = [run_plain(project, timeout=args.timeout)]
        print(
            f"  round {n}: plain coverage run --branch -m pytest: {plain[0]['seconds']:.2f}s ({plain[0]['pytest']})",
            flush=True,
        )
        sweep = run_covsweep(project, report, args, prefect_home)
        print(
            f"  round {n}: covsweep run --generator none: {sweep['seconds']:.2f}s, exit {sweep['exit_code']}"
            f"{' (TIMED OUT)' if sweep['timed_out'] else ''}",
            flush=True,
        )
        if sweep["exit_code"] != 0:
            rounds.append({"plain": plain, "covsweep": sweep})
            print("\n".join(sweep.get("output_tail", [])), file=sys.stderr)
            break
        plain.append(run_plain(project, timeout=args.timeout))
        print(f"  round {n}: plain again: {plain[1]['seconds']:.2f}s", flush=True)
        rounds.append({"plain": plain, "covsweep": sweep})
    return rounds


def _second_sweep(project: Path, report: Path, args: argparse.Namespace, prefect_home: Path) -> tuple[dict, dict]:
    """covsweep again on the unchanged project, with what the last timed round left: its report (the run
    prints it, no flow runs), then without it (the flow runs, and recalls the baseline)."""
    again = run_covsweep(project, report, args, prefect_home, fresh=False)
    print(
        f"  second sweep, project unchanged: {again['seconds']:.2f}s, exit {again['exit_code']}, "
        f"flow ran: {again['flow_ran']}",
        flush=True,
    )
    through_flow = run_covsweep(project, report, args, prefect_home)
    print(f"  the same with the report removed: {through_flow['seconds']:.2f}s", flush=True)
    return again, through_flow


def _fresh_home(template: Path, scratch: Path, size: int) -> Path:
    """A copy of the warmed Prefect home: a size's first sweep finds no result of an earlier size's."""
    home = scratch / f"prefect-home-{size}"
    shutil.copytree(template, home)
    return home


def _result(
    args: argparse.Namespace,
    size: int,
    rounds: list[dict],
    second: tuple[dict, dict],
    warmup: dict | None,
    imports: dict,
    info: dict,
    stamp: str,
    started: float,
) -> dict:
    plain_samples = [p["seconds"] for r in rounds for p in r["plain"]]
    sweep_samples = [r["covsweep"]["seconds"] for r in rounds]
    plain_s, sweep_s = _median(plain_samples), _median(sweep_samples)
    server_s = _median([r["covsweep"]["phases_s"]["prefect_server"] for r in rounds])
    last = rounds[-1]["covsweep"]
    without_server = round(sweep_s - server_s, 3) if server_s is not None else None
    return {
        "schema": SCHEMA,
        "timestamp": stamp,
        "modules": size,
        "repeat": len(rounds),
        "sandbox": args.sandbox,
        "covsweep_args": args.covsweep_arg,
        "machine": info,
        "plain_command": "python -m coverage run --branch -m pytest -q  (host, project root, PYTHONDONTWRITEBYTECODE=1)",
        "covsweep_command": last["command"],
        "plain_seconds": plain_s,
        "plain_seconds_samples": plain_samples,
        "covsweep_seconds": sweep_s,
        "covsweep_seconds_samples": sweep_samples,
        "ratio": _ratio(sweep_s, plain_s),
        "ratio_best": _ratio(_min(sweep_samples), _min(plain_samples)),
        "target_ratio": TARGET_RATIO,
        # from "Starting temporary server" until the flow run begins: the server's boot not hidden behind
        # the imports, and creating the flow run
        "prefect_server_seconds": server_s,
        "covsweep_seconds_excluding_server": without_server,
        "ratio_excluding_server": _ratio(without_server, plain_s),
        "first_module_seconds": _median([r["covsweep"]["at_s"]["first_module"] for r in rounds]),
        "first_module_from": last["at_s"]["first_module_from"],
        "first_module_from_flow_start_s": _median([r["covsweep"]["first_module_from_flow_start_s"] for r in rounds]),
        "peak_rss_mib": max(r["covsweep"]["memory"]["peak_rss_mib"] for r in rounds),
        "memory": last["memory"],
        "second_sweep": _second_summary(second[0], sweep_s),
        "second_sweep_through_the_flow": _second_summary(second[1], sweep_s),
        "phases_s": {k: _median([r["covsweep"]["phases_s"][k] for r in rounds]) for k in last["phases_s"]},
        "imports_s": imports,
        "covsweep_exit_code": last["exit_code"],
        "covsweep_totals": (last.get("report") or {}).get("totals"),
        "covsweep_report": last.get("report"),
        "plain_coverage": {"line": rounds[-1]["plain"][-1]["line"], "branch": rounds[-1]["plain"][-1]["branch"]},
        "warmup": None
        if warmup is None
        else {"seconds": warmup["seconds"], "exit_code": warmup["exit_code"], "phases_s": warmup["phases_s"]},
        "rounds": rounds,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "bench_seconds": round(time.monotonic() - started, 1),
    }


def _second_summary(second: dict, first_s: float | None) -> dict:
    totals = (second.get("report") or {}).get("totals") or {}
    return {
        "seconds": second["seconds"],
        "exit_code": second["exit_code"],
        "flow_ran": second["flow_ran"],
        "ratio_to_first": _ratio(second["seconds"], first_s),
        "target_ratio": SECOND_SWEEP_TARGET,
        "cost_usd": totals.get("cost_usd"),
        "tokens_used": totals.get("tokens_used"),
        "same_totals_as_first": None,  # filled by _compare_totals
        "phases_s": second["phases_s"],
        "memory": second["memory"],
    }


def _compare_totals(result: dict, second: tuple[dict, dict]) -> None:
    """A second sweep that reuses anything must still report what the first one measured."""
    first = result["covsweep_totals"] or {}
    keys = ("modules", "line_before", "branch_before", "line_after", "branch_after")
    for name, run in zip(("second_sweep", "second_sweep_through_the_flow"), second, strict=True):
        again = (run.get("report") or {}).get("totals") or {}
        result[name]["same_totals_as_first"] = all(first.get(k) == again.get(k) for k in keys)


def _growth(by_size: list[dict]) -> dict | None:
    """How time and memory grow from the smallest project to the largest, against the project's growth."""
    if len(by_size) < 2:
        return None
    small, large = by_size[0], by_size[-1]
    return {
        "from_modules": small["modules"],
        "to_modules": large["modules"],
        "project": _ratio(large["modules"], small["modules"]),
        "covsweep_seconds": _ratio(large["covsweep_seconds"], small["covsweep_seconds"]),
        "plain_seconds": _ratio(large["plain_seconds"], small["plain_seconds"]),
        "peak_rss": _ratio(large["peak_rss_mib"], small["peak_rss_mib"]),
    }


def _print_overall(result: dict) -> None:
    print()
    for size in result["sizes"]:
        second = size["second_sweep"]
        print(
            f"{size['modules']:>5} modules: ratio {size['ratio']} (target {TARGETS.get(size['modules'], TARGET_RATIO)}), "
            f"first module {size['first_module_from_flow_start_s']}s after the flow's start, "
            f"peak RSS {size['peak_rss_mib']} MiB, second sweep {second['seconds']:.1f}s "
            f"= {second['ratio_to_first']} of the first (flow ran: {second['flow_ran']}), ${second['cost_usd']}, "
            f"same totals {second['same_totals_as_first']}; through the flow "
            f"{size['second_sweep_through_the_flow']['ratio_to_first']}"
        )
    if result["growth"]:
        g = result["growth"]
        print(
            f"growth {g['from_modules']} -> {g['to_modules']} modules (x{g['project']}): covsweep time x{g['covsweep_seconds']}, "
            f"plain time x{g['plain_seconds']}, peak RSS x{g['peak_rss']}"
        )


def _print_summary(result: dict) -> None:
    p = result["phases_s"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}s"  # noqa: E731
    totals = result["covsweep_totals"] or {}
    print()
    print(f"modules                    {result['modules']}")
    print(f"plain coverage + pytest    {fmt(result['plain_seconds'])}  (samples {result['plain_seconds_samples']})")
    print(
        f"covsweep --generator none  {fmt(result['covsweep_seconds'])}  (report: {totals.get('modules')} modules, "
        f"{totals.get('succeeded')} ok, line {totals.get('line_before')}%, branch {totals.get('branch_before')}%)"
    )
    print(
        f"  startup {fmt(p['startup'])} (the server boots meanwhile), "
        f"prefect server {fmt(p['prefect_server'])}, plan {fmt(p['plan'])}, baseline {fmt(p['baseline'])},"
    )
    print(
        f"  modules {fmt(p['modules'])} (tasks {fmt(p['module_tasks'])} + loop lag {fmt(p['modules_after_last_task'])}), "
        f"finish {fmt(p['finish'])}, exit {fmt(p['exit'])}"
    )
    print(f"  first module done at     {fmt(result['first_module_seconds'])}  (from the {result['first_module_from']})")
    problems = result["rounds"][-1]["covsweep"].get("problem_line_count")
    if problems:
        print(f"  {problems} ERROR/Traceback lines in covsweep's output (see problem_lines)")
    ratio, target = result["ratio"], TARGETS.get(result["modules"], TARGET_RATIO)
    verdict = "n/a" if ratio is None else ("meets" if ratio < target else "MISSES")
    print(f"ratio covsweep/plain       {ratio}  ({verdict} the target < {target}); best/best {result['ratio_best']}")
    print(f"  peak RSS of covsweep     {result['peak_rss_mib']} MiB  ({result['memory']})")
    print(f"  without the server's last wait {result['ratio_excluding_server']}")


def _measure_size(size: int, scratch: Path, template: Path, args: argparse.Namespace, common: dict) -> dict:
    """One project size: the timed rounds on a cold Prefect home, then a second sweep of the unchanged project."""
    project = generate(scratch / f"project-{size}", size)
    report = scratch / "report.json"
    home = _fresh_home(template, scratch, size) if args.prefect_home is None else args.prefect_home
    print(f"{size} modules:", flush=True)
    rounds = _rounds(project, report, args, home)
    second = _second_sweep(project, report, args, home)
    result = _result(args, size, rounds, second, **common)
    _compare_totals(result, second)
    _print_summary(result)
    if not args.keep:
        shutil.rmtree(project, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    info = machine()
    scratch = Path(tempfile.mkdtemp(prefix="covsweep-bench-"))
    started = time.monotonic()
    try:
        template = scratch / "prefect-home"
        template.mkdir()
        print(
            f"covsweep bench: {args.modules} modules, {info['cpu_count']} CPUs, load {info['loadavg_at_start']}, "
            f"sandbox {args.sandbox}"
            + (f", Docker storage driver {info['docker_storage_driver']}" if args.sandbox == "docker" else ""),
            flush=True,
        )
        warm_home = args.prefect_home or template
        warmup = None if args.no_warmup else _warmup(scratch, scratch / "report.json", args, warm_home)
        imports = import_costs(child_env(warm_home))
        common = {"warmup": warmup, "imports": imports, "info": info, "stamp": stamp, "started": started}
        by_size = [_measure_size(size, scratch, template, args, common) for size in args.modules]
        result = {
            "schema": SCHEMA,
            "timestamp": stamp,
            "sizes": by_size,
            "growth": _growth(by_size),
            "bench_seconds": round(time.monotonic() - started, 1),
        }
        args.results.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=2) + "\n"
        (args.results / f"{stamp}.json").write_text(text)
        (args.results / "latest.json").write_text(text)
        _print_overall(result)
        print(f"results {args.results / f'{stamp}.json'}  ({result['bench_seconds']:.0f}s)")
        if args.keep:
            print(f"projects kept in {scratch}")
        return 0 if all(r["covsweep_exit_code"] == 0 for r in by_size) else 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
