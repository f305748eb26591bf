"""`covsweep`: the command line of the spec-to-production pipeline."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tasks.models import InputError, Report

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Raise the test coverage of a Python project with generated tests that pass reliably.")
err = Console(stderr=True)
out = Console()


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2, nothing run."""
    err.print(f"covsweep: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


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


@app.callback()
def _commands() -> None:
    """Raise the test coverage of a Python project with generated tests that pass reliably."""


@app.command()
def run(
    target: Path = typer.Argument(..., help="project directory or one .py file"),
    modules: Optional[list[str]] = typer.Option(None, "--modules", help="module path glob, repeatable"),
    generator: str = typer.Option("auto", help="auto, llm, openhands, pynguin or none"),
    coverage_target: float = typer.Option(80.0, help="per-module line coverage at which refinement stops"),
    max_iterations: int = typer.Option(3, help="refinement rounds per module"),
    reruns: int = typer.Option(3, help="a generated test is kept only if it passes this many runs in a row"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="where accepted tests go [TARGET/tests/generated]"),
    report: Optional[Path] = typer.Option(None, help="JSON report [TARGET/.covsweep/report.json]"),
    concurrency: int = typer.Option(4, help="modules processed at once"),
    sandbox: str = typer.Option("docker", help="docker, or local (subprocesses, not isolated)"),
    timeout: float = typer.Option(300.0, help="budget per module in seconds"),
    models: Optional[str] = typer.Option(None, help="LLM fallback chain A,B,C"),
    llm_base_url: Optional[str] = typer.Option(None, help="any OpenAI-compatible endpoint"),
    budget_usd: Optional[float] = typer.Option(None, help="no new LLM request once the run has spent this"),
) -> None:
    """Run the flow in this process and print a summary; the report goes to --report."""
    from tasks.plan import RunOptions, plan_run

    try:
        options = RunOptions(
            target=str(target), modules=modules or None, generator=generator, coverage_target=coverage_target,
            max_iterations=max_iterations, reruns=reruns, out=str(out_dir) if out_dir else None,
            report=str(report) if report else None, concurrency=concurrency, sandbox=sandbox, timeout=timeout,
            models=models, llm_base_url=llm_base_url, budget_usd=budget_usd,
        )
        plan = plan_run.fn(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
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
    raise typer.Exit(0 if result.totals.failed == 0 else 1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("covsweep: interrupted")
        sys.exit(130)
