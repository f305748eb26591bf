"""`covsweep`: the command line of the spec-to-production pipeline."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tasks.models import InputError, Report

err = Console(stderr=True)
# Piped output keeps whole rows: the 80 columns rich assumes off a terminal would fold them.
out = Console(width=None if sys.stdout.isatty() else 160)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        fail(message)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2, nothing run."""
    err.print(f"covsweep: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)


def _interrupt_on_sigterm() -> None:
    # A cancelled run must unwind through every `finally`, which removes its containers.
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def summary_table(report: Report) -> Table:
    table = Table(title=f"covsweep: {report.target}", title_justify="left")
    for column in ("module", "status", "line %", "branch %", "function %", "tests", "time s"):
        table.add_column(column, justify="left" if column in ("module", "status") else "right")
    for m in report.modules:
        table.add_row(
            m.module, m.status + (f" ({m.error.type})" if m.error else ""),
            f"{m.coverage_before.line:.1f} → {m.coverage.line:.1f}",
            f"{m.coverage_before.branch:.1f} → {m.coverage.branch:.1f}",
            f"{m.coverage_before.function:.1f} → {m.coverage.function:.1f}",
            str(m.tests.accepted), f"{m.execution_time:.1f}",
        )
    t = report.totals
    table.add_section()
    table.add_row("total", f"{t.succeeded}/{t.modules} ok", f"{t.line_before:.1f} → {t.line_after:.1f}",
                  f"{t.branch_before:.1f} → {t.branch_after:.1f}", "", str(t.tests_accepted), f"{report.duration_s:.1f}")
    return table


def _options(args: argparse.Namespace):
    """The flow's parameters from the options; a bad value is one error line naming its option."""
    from tasks.plan import RunOptions

    try:
        return RunOptions(**{name: getattr(args, name) for name in RunOptions.model_fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")


def run(args: argparse.Namespace) -> int:
    """Run the flow in this process and print a summary; the report goes to --report."""
    from tasks.plan import plan_run

    options = _options(args)
    try:
        plan = plan_run.fn(options, load_blocks=False)
    except InputError as exc:
        fail(str(exc))
    _interrupt_on_sigterm()
    from flows.spec_to_production import spec_to_production

    try:
        result: Report = spec_to_production(**options.model_dump())
    except InputError as exc:
        fail(str(exc))
    out.print(summary_table(result))
    out.print(f"report: {plan.report}", highlight=False)
    if any(m.error and m.error.type == "authentication" for m in result.modules):
        fail("the LLM API key is missing or was rejected: set COVSWEEP_LLM_API_KEY (or OPENROUTER_API_KEY)")
    return 0 if result.totals.failed == 0 else 1


def _run_options(parser: argparse.ArgumentParser) -> None:
    """The flow's parameters as options; values are checked by RunOptions, one error line each."""
    parser.add_argument("target", help="project directory (src/ or flat layout) or one .py file")
    parser.add_argument("--modules", action="append", metavar="GLOB", help="restrict to these module paths (repeatable)")
    parser.add_argument("--generator", default="auto", help="auto, llm, openhands, pynguin or none [auto]")
    parser.add_argument("--coverage-target", default=80.0, metavar="PCT", help="line coverage at which refinement stops [80]")
    parser.add_argument("--max-iterations", default=3, metavar="N", help="refinement rounds per module [3]")
    parser.add_argument("--reruns", default=3, metavar="N", help="passes in a row a kept test needs [3]")
    parser.add_argument("--out", metavar="DIR", help="where accepted tests go [TARGET/tests/generated]")
    parser.add_argument("--report", metavar="FILE", help="the JSON report [TARGET/.covsweep/report.json]")
    parser.add_argument("--concurrency", default=4, metavar="N", help="modules processed at once [4]")
    parser.add_argument("--sandbox", default="docker", help="docker, or local: subprocesses, not isolated [docker]")
    parser.add_argument("--timeout", default=300.0, metavar="S", help="budget per module, all attempts [300]")
    parser.add_argument("--models", metavar="A,B,C", help="LLM fallback chain, first preferred")
    parser.add_argument("--llm-base-url", metavar="URL", help="any OpenAI-compatible endpoint")
    parser.add_argument("--budget-usd", metavar="X", help="no new LLM request once the run has spent X")


def submit(args: argparse.Namespace) -> int:
    """Start a run of deployment spec-to-production/default on the priority's queue; print its id at once."""
    from covsweep import service
    from tasks.discover import discover

    options = _options(args)
    try:
        discover.fn(Path(options.target), options.modules)  # a missing or empty target fails here, not on a worker
    except InputError as exc:
        fail(str(exc))
    # The worker runs elsewhere in the filesystem: paths are sent resolved against this directory.
    paths = {name: str(Path(value).expanduser().resolve())
             for name in ("target", "out", "report") if (value := getattr(options, name))}
    parameters = {**options.model_dump(exclude_none=True), **paths}
    try:
        flow_run = service.submit(parameters, args.priority)
    except service.BadRequest as exc:
        fail(str(exc))
    print(flow_run.id, flush=True)
    err.print(f"submitted {flow_run.name} on queue {args.priority}: covsweep status {flow_run.id}",
              highlight=False, soft_wrap=True)
    return 0


def status(args: argparse.Namespace) -> int:
    """A run's state and per-module progress."""
    from covsweep import service, views

    try:
        found = service.status(args.run_id)
    except service.BadRequest as exc:
        fail(str(exc))
    for line in views.status_lines(found):
        out.print(line, markup=False, highlight=False)
    for table in (views.subflows_table(found), views.modules_table(found)):
        if table is not None:
            out.print(table)
    return 0


def results(args: argparse.Namespace) -> int:
    """The run's report from Prefect result storage, as JSON on stdout."""
    from covsweep import service

    if args.timeout <= 0 or args.poll <= 0:
        fail("--timeout and --poll must be positive")
    try:
        print(service.results(args.run_id, wait=args.wait, timeout=args.timeout, poll=args.poll))
    except service.BadRequest as exc:
        fail(str(exc))
    except service.RunNotDone as exc:
        err.print(f"covsweep: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    return 0


def queue(args: argparse.Namespace) -> int:
    """Flow runs of covsweep's deployments by state and priority."""
    from covsweep import service, views

    if args.finished < 0:
        fail("--finished must be 0 or more")
    try:
        rows = service.queue(finished=args.finished)
    except service.BadRequest as exc:
        fail(str(exc))
    if not rows:
        out.print("no flow runs of covsweep's deployments")
        return 0
    out.print(views.queue_table(rows))
    out.print(views.counts_table(rows))
    return 0


def parser() -> argparse.ArgumentParser:
    from covsweep.objects import DEFAULT_PRIORITY, PRIORITIES

    top = Parser(prog="covsweep", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    _run_options(commands.add_parser("run", help="run the flow in this process, print a summary, write the report"))
    sub = commands.add_parser("submit", help="start a run of deployment spec-to-production/default, print its id")
    _run_options(sub)
    sub.add_argument("--priority", choices=list(PRIORITIES), default=DEFAULT_PRIORITY,
                     help=f"the work queue, critical first [{DEFAULT_PRIORITY}]")
    commands.add_parser("status", help="a run's state and per-module progress").add_argument("run_id", metavar="RUN_ID")
    res = commands.add_parser("results", help="a run's report (JSON) from Prefect result storage")
    res.add_argument("run_id", metavar="RUN_ID")
    res.add_argument("--wait", action="store_true", help="block until the run ends or --timeout passes")
    res.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="with --wait: give up after S seconds [3600]")
    res.add_argument("--poll", type=float, default=5.0, metavar="S", help="with --wait: ask every S seconds [5]")
    que = commands.add_parser("queue", help="flow runs of covsweep's deployments by state and priority")
    que.add_argument("--finished", type=int, default=10, metavar="N", help="finished runs shown, latest first [10]")
    met = commands.add_parser("metrics", help="per-model and whole-system figures from stored reports")
    met.add_argument("--days", type=float, default=7.0, metavar="N", help="reports of the last N days [7]")
    met.add_argument("--json", action="store_true", help="JSON instead of a table")
    mod = commands.add_parser("models", help="the model chain with each model's score and the reasons")
    mod.add_argument("--days", type=float, default=30.0, metavar="N", help="score from the last N days' reports [30]")
    mod.add_argument("--json", action="store_true", help="JSON instead of a table")
    return top


def _stored_reports(days: float):
    from covsweep.api import NoServer, connect
    from covsweep.history import recent_reports

    try:
        with connect(local_ok=True) as client:
            return recent_reports(client, days)
    except NoServer as exc:
        fail(str(exc))


def metrics(args: argparse.Namespace) -> int:
    """Per-model and whole-system figures from the reports stored in the last --days."""
    from tasks.metrics import model_figures, system_figures

    if args.days <= 0:
        fail("--days must be positive")
    reports = _stored_reports(args.days)
    system, models = system_figures(reports), sorted(model_figures(reports).values(), key=lambda m: m.model)
    if args.json:
        print(json.dumps({"days": args.days, "system": system.model_dump(),
                          "models": [m.model_dump() for m in models]}, indent=2))
    else:
        from covsweep import views

        out.print(views.metrics_table(system, models))
    return 0


def models(args: argparse.Namespace) -> int:
    """The configured model chain, each model's score from stored runs, and why."""
    from tasks.llm_config import resolve_llm_config
    from tasks.metrics import rank

    try:
        chain = resolve_llm_config(load_block=False).models
    except InputError as exc:
        fail(str(exc))
    scores = rank(chain, _stored_reports(args.days))
    if args.json:
        print(json.dumps([s.model_dump() for s in scores], indent=2))
    else:
        from covsweep import views

        out.print(views.models_table(scores))
    return 0


COMMANDS = {"run": run, "submit": submit, "status": status, "results": results, "queue": queue,
            "metrics": metrics, "models": models}


def main(argv: list[str] | None = None) -> None:
    # Before Prefect is imported: its temporary server may need more than 20 s on a loaded machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
    args = parser().parse_args(argv)
    try:
        sys.exit(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        err.print("covsweep: interrupted")
        sys.exit(130)
