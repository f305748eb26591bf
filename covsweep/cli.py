"""`covsweep`: the command line of the spec-to-production pipeline."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from covsweep.arguments import add_run_options, given
from tasks.core.errors import InputError, RunError
from tasks.core.models import Report

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


def _percent(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else ""


# Above this many modules the skipped ones (nothing done to them in this run) share one row: the report
# lists each, and a terminal would show a screenful of rows per 40 modules (and take a second per 2000).
FOLD_SKIPPED_ABOVE = 50


def summary_table(report: Report) -> Table:
    """Per module before -> after (over FOLD_SKIPPED_ABOVE modules, the skipped ones in one row); a
    mutation column when some module has a mutation score."""
    t = report.totals
    mutation = t.mutation_score is not None
    table = Table(title=f"covsweep: {report.target}", title_justify="left")
    columns = ("module", "status", "line %", "branch %", "function %", "tests") + ("mutation %",) * mutation
    for column in (*columns, "time s"):
        table.add_column(column, justify="left" if column in ("module", "status") else "right")
    rows = report.modules
    if len(rows) > FOLD_SKIPPED_ABOVE:
        rows = [m for m in rows if m.status != "skipped"]
    for m in rows:
        table.add_row(
            m.module,
            m.status + (f" ({m.error.type})" if m.error else ""),
            f"{m.coverage_before.line:.1f} → {m.coverage.line:.1f}",
            f"{m.coverage_before.branch:.1f} → {m.coverage.branch:.1f}",
            f"{m.coverage_before.function:.1f} → {m.coverage.function:.1f}",
            str(m.tests.accepted),
            *[_percent(m.mutation.score if m.mutation else None)] * mutation,
            f"{m.execution_time:.1f}",
        )
    if skipped := len(report.modules) - len(rows):
        table.add_row(f"{skipped} more modules (in the report)", "skipped", *[""] * (len(columns) - 1))
    table.add_section()
    table.add_row(
        "total",
        f"{t.succeeded}/{t.modules} ok",
        f"{t.line_before:.1f} → {t.line_after:.1f}",
        f"{t.branch_before:.1f} → {t.branch_after:.1f}",
        "",
        str(t.tests_accepted),
        *[_percent(t.mutation_score)] * mutation,
        f"{report.duration_s:.1f}",
    )
    return table


def _options(args: argparse.Namespace):
    """The flow's parameters from the options; a bad value is one error line naming its option."""
    from tasks.core.options import RunOptions

    try:
        return RunOptions(**given(args))
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")


LOG_NAME = "covsweep.log"  # Prefect's lines of a run, next to its report


def exit_status(report: Report, options) -> int:
    """3 when a gate is not met (its line on stderr), whether or not a module failed too: the gate is
    what CI asked about; else 1 when a module failed, else 0."""
    from tasks.reporting.gates import gate_failures

    failures = gate_failures(report.totals, options.fail_under, options.fail_under_diff)
    for line in failures:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if failures:
        return 3
    return 0 if report.totals.failed == 0 else 1


def _repository_defaults(options):
    """For a repository TARGET: a token in its URL reaches git through this process's environment, never
    the flow run's parameters (the Prefect API stores those); the report goes to ./.covsweep/report.json,
    the patch beside it."""
    from tasks.project.remote import detach_secret, is_repository_url

    if not is_repository_url(options.target):
        return options
    url, secret = detach_secret(options.target)
    if secret is not None:
        os.environ["COVSWEEP_GIT_TOKEN"] = secret.get_secret_value()
    report = options.report or str(Path.cwd() / ".covsweep" / "report.json")
    return options.model_copy(update={"target": url, "report": report})


def delivery_line(report: Report) -> str | None:
    """Where the accepted tests are, when they were not written into the target."""
    delivery, source = report.delivery, report.source
    if delivery is None or delivery.kind == "write":
        return None
    if delivery.branch:
        return f"branch: {delivery.branch} pushed, commit {delivery.commit[:12]} on {source.commit[:12]}"
    if delivery.patch:
        return f"patch: {delivery.patch} (`git apply` it at commit {source.commit[:12]})"
    return "no test was kept: nothing delivered"


def run(args: argparse.Namespace) -> int:
    """Run the flow in this process and print a summary; the report goes to --report."""
    from tasks.history import unchanged

    options = _repository_defaults(_options(args))
    before = unchanged.before_run(options, LOG_NAME)  # -v or not
    if (earlier := unchanged.earlier_report(before)) is not None:
        return _unchanged_run(earlier, before.outputs[0], options)
    from tasks.checks import preflight, report_path

    try:
        project = preflight(options)  # quick checks before Prefect starts; the flow plans the run
    except InputError as exc:
        fail(str(exc))
    _interrupt_on_sigterm()
    report = report_path(options, project)
    log_file = None if args.verbose else report.parent / LOG_NAME
    try:
        result = _flow_run(options, project, log_file)
    except RunError as exc:  # the run began and could not finish: what it finished is kept
        err.print(f"covsweep: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    status = _finished_run(result, report, log_file, options)
    unchanged.remember(before, result, status)
    return status


def _flow_run(options, project, log_file: Path | None) -> Report:
    """The flow's report, with its progress shown; the temporary server and the baseline start first."""
    from covsweep import temporary_server

    spawned = temporary_server.spawn()  # before Prefect is imported: the server boots meanwhile
    from covsweep.progress import showing_progress
    from tasks.coverage import early

    try:
        early.begin(options, project)  # the baseline's sandbox runs meanwhile too
        with showing_progress(out, err, log_file):
            server = temporary_server.adopting(spawned)  # Prefect's logs of it are shown as Prefect's
            from flows.spec_to_production import spec_to_production

            if server:
                server.join()  # the flow's client would take a half-started server for a running one
            return spec_to_production(**options.model_dump())
    except InputError as exc:
        fail(str(exc))
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        fail(
            "the temporary Prefect server did not start in time: set PREFECT_API_URL to a running server, "
            "or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher"
        )
    finally:
        early.abandon()  # a run that ended before its baseline leaves no sandbox behind


def _finished_run(result: Report, report: Path, log_file: Path | None, options) -> int:
    """The summary of a run that finished, and its exit status."""
    out.print(summary_table(result))
    out.print(f"report: {report}", highlight=False)
    if line := delivery_line(result):
        out.print(line, markup=False, highlight=False)
    if log_file is not None:
        out.print(f"Prefect's log: {log_file}", highlight=False)
    if any(m.error and m.error.type == "authentication" for m in result.modules):
        fail("the LLM API key is missing or was rejected: set COVSWEEP_LLM_API_KEY (or OPENROUTER_API_KEY)")
    return exit_status(result, options)


def _unchanged_run(earlier: Report, report: Path, options) -> int:
    """What `run` prints when a finished run found everything as this one would: its report."""
    out.print(summary_table(earlier))
    out.print(f"report: {report}", highlight=False)
    out.print(
        f"unchanged since run {earlier.run_id} of {earlier.finished_at}: its report stands, no new run "
        "(remove the report to sweep again)",
        markup=False,
        highlight=False,
    )
    return exit_status(earlier, options)


def _submitted_parameters(options) -> dict[str, object]:
    """The flow run's parameters. A directory is checked here and its paths are sent resolved against
    this directory (the worker runs elsewhere in the filesystem); a repository is cloned by the worker,
    so nothing of it need be here, and a token in its URL is refused: parameters are stored."""
    from tasks.project.discover import discover
    from tasks.project.remote import detach_secret, is_repository_url

    names = ("target", "out", "report", "summary_md")
    if is_repository_url(options.target):
        if detach_secret(options.target)[1] is not None:
            fail(
                "a token in the URL would be stored with the run's parameters: set COVSWEEP_GIT_TOKEN "
                "on the worker or save the Secret block covsweep-git-token"
            )
        names = ("report", "summary_md")  # --out is relative to the clone's root
    else:
        try:
            discover(Path(options.target), options.modules)  # a missing or empty target fails here, not on a worker
        except InputError as exc:
            fail(str(exc))
    paths = {name: str(Path(value).expanduser().resolve()) for name in names if (value := getattr(options, name))}
    return {**options.model_dump(exclude_none=True), **paths}


def submit(args: argparse.Namespace) -> int:
    """Start a run of deployment spec-to-production/default on the priority's queue; print its id at once."""
    from covsweep import service

    parameters = _submitted_parameters(_options(args))
    try:
        flow_run = service.submit(parameters, args.priority)
    except service.BadRequest as exc:
        fail(str(exc))
    print(flow_run.id, flush=True)
    err.print(
        f"submitted {flow_run.name} on queue {args.priority}: covsweep status {flow_run.id}",
        highlight=False,
        soft_wrap=True,
    )
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
    read = service.patch if args.patch else service.results
    try:
        text = read(args.run_id, wait=args.wait, timeout=args.timeout, poll=args.poll)
    except service.BadRequest as exc:
        fail(str(exc))
    except service.RunNotDone as exc:
        err.print(f"covsweep: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    sys.stdout.write(text if args.patch else text + "\n")  # a patch exactly as stored: `| git apply` takes it
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


RUN_EXIT_STATUS = """\
exit status:
  0  every module processed
  1  the run finished but some module failed (the report says which and why)
  2  bad input or configuration: nothing run, one line on stderr; or the remote refused
     the push of --deliver branch (the line says why; the tests are in the patch)
  3  the run finished but a gate (--fail-under, --fail-under-diff) was not met, one line on stderr
     per gate (3 also when a module failed too: the gate is what CI asked about)"""
SUBMIT_EXIT_STATUS = """\
exit status:
  0  the run was submitted: its id is on stdout
  2  bad input or configuration, or no server: nothing submitted, one line on stderr
the run itself ends as `covsweep run` would exit (see `covsweep status RUN_ID`):
  0  every module processed
  1  it finished but some module failed (the report says which and why)
  3  it finished but a gate (--fail-under, --fail-under-diff) was not met"""


def parser() -> argparse.ArgumentParser:
    from tasks.core.names import DEFAULT_PRIORITY, PRIORITIES

    top = Parser(prog="covsweep", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    run_parser = commands.add_parser(
        "run",
        help="run the flow in this process, print a summary, write the report",
        epilog=RUN_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(run_parser)
    run_parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help=f"Prefect's log lines on the console, instead of {LOG_NAME} next to the report",
    )
    sub = commands.add_parser(
        "submit",
        help="start a run of deployment spec-to-production/default, print its id",
        epilog=SUBMIT_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(sub)
    sub.add_argument(
        "--priority",
        choices=list(PRIORITIES),
        default=DEFAULT_PRIORITY,
        help=f"the work queue, critical first [{DEFAULT_PRIORITY}]",
    )
    commands.add_parser("status", help="a run's state and per-module progress").add_argument("run_id", metavar="RUN_ID")
    res = commands.add_parser("results", help="a run's report (JSON) from Prefect result storage")
    res.add_argument("run_id", metavar="RUN_ID")
    res.add_argument("--wait", action="store_true", help="block until the run ends or --timeout passes")
    res.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="with --wait: give up after S seconds [3600]"
    )
    res.add_argument("--poll", type=float, default=5.0, metavar="S", help="with --wait: ask every S seconds [5]")
    res.add_argument("--patch", action="store_true", help="the run's patch (--deliver patch) instead of its report")
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
    from tasks.history.runs import recent_reports

    try:
        with connect(local_ok=True) as client:
            return recent_reports(client, days)
    except NoServer as exc:
        fail(str(exc))


def metrics(args: argparse.Namespace) -> int:
    """Per-model and whole-system figures from the reports stored in the last --days."""
    from tasks.llm.metrics import model_figures, system_figures

    if args.days <= 0:
        fail("--days must be positive")
    reports = _stored_reports(args.days)
    system, models = system_figures(reports), sorted(model_figures(reports).values(), key=lambda m: m.model)
    if args.json:
        print(
            json.dumps(
                {"days": args.days, "system": system.model_dump(), "models": [m.model_dump() for m in models]}, indent=2
            )
        )
    else:
        from covsweep import views

        out.print(views.metrics_table(system, models))
    return 0


def models(args: argparse.Namespace) -> int:
    """The configured model chain, each model's score from stored runs, and why."""
    from tasks.llm.config import resolve_llm_config
    from tasks.llm.metrics import rank

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


COMMANDS = {
    "run": run,
    "submit": submit,
    "status": status,
    "results": results,
    "queue": queue,
    "metrics": metrics,
    "models": models,
}


def main(argv: list[str] | None = None) -> None:
    # Before Prefect is imported: its temporary server may need more than 20 s on a loaded machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # The temporary server's telemetry cannot reach its host offline, and says so on the console.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = parser().parse_args(argv)
    try:
        status = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        err.print("covsweep: interrupted")
        sys.exit(130)
    if argv is None:
        # The process ends: its heap is torn down without the collector walking it (1 s). Nothing of
        # covsweep's relies on a finalizer at exit: its files are closed where they are written.
        gc.freeze()
    sys.exit(status)
