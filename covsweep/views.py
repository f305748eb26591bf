"""Rich tables of the service commands: a run's status, the queue."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from rich.table import Table

from covsweep.service import QueuedRun, RunStatus, first_line
from tasks.core.names import PRIORITIES


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _targets(run) -> str:
    """A run's target, or a sweep's targets."""
    return str(run.parameters.get("target") or ", ".join(run.parameters.get("targets") or []) or "?")


def status_lines(status: RunStatus) -> list[str]:
    run = status.run
    state = run.state.name if run.state else "?"
    why = first_line(run.state.message) if run.state and (run.state.is_failed() or run.state.is_crashed()) else ""
    lines = [
        f"run {run.id} ({run.name}): {state}" + (f": {why}" if why else ""),
        f"target {_targets(run)}, queue {run.work_queue_name or '?'}",
    ]
    if run.start_time:
        lines.append(
            f"started {_when(run.start_time)}"
            + (f", ended {_when(run.end_time)}" if run.end_time else "")
            + (f", {run.total_run_time.total_seconds():.0f}s" if run.end_time else "")
        )
    done = sum(m.state == "Completed" for m in status.modules)
    if status.progress is not None:
        lines.append(
            f"progress {status.progress:.0f}%"
            + (f": {done} of {len(status.modules)} modules done" if status.modules else "")
        )
    if status.steps:
        lines.append("steps: " + ", ".join(f"{name} {state}" for name, state in status.steps))
    return lines


def modules_table(status: RunStatus) -> Table | None:
    if not status.modules:
        return None
    table = Table(title="modules", title_justify="left")
    for column in ("module", "state", "status", "line %", "tests", "error"):
        table.add_column(column)
    for row in status.modules:
        d = row.detail
        table.add_row(
            row.module,
            row.state,
            str(d.get("status", "")),
            str(d.get("line", "")),
            str(d.get("tests", "")),
            str(d.get("error", "")),
        )
    return table


def subflows_table(status: RunStatus) -> Table | None:
    if not status.subflows:
        return None
    table = Table(title="targets", title_justify="left")
    for column in ("target", "state", "run id"):
        table.add_column(column)
    for row in status.subflows:
        table.add_row(*row)
    return table


def queue_table(rows: list[QueuedRun]) -> Table:
    table = Table(title="covsweep flow runs", title_justify="left")
    for column in ("state", "priority", "deployment", "target", "run id", "when"):
        table.add_column(column)
    for q in rows:
        run = q.run
        when = run.end_time or run.start_time or run.expected_start_time
        table.add_row(
            run.state.name if run.state else "?", q.priority, q.deployment, _targets(run), str(run.id), _when(when)
        )
    return table


def counts_table(rows: list[QueuedRun]) -> Table:
    """How many runs of each state wait on each priority."""
    counts = Counter((q.run.state.name if q.run.state else "?", q.priority) for q in rows)
    priorities = [*PRIORITIES, *sorted({p for _, p in counts} - set(PRIORITIES))]
    table = Table(title="by state and priority", title_justify="left")
    table.add_column("state")
    for p in priorities:
        table.add_column(p, justify="right")
    for state in dict.fromkeys(s for s, _ in counts):
        table.add_row(state, *[str(counts.get((state, p), "")) for p in priorities])
    return table


def metrics_table(system, models: list) -> Table:
    table = Table(title="covsweep metrics", title_justify="left")
    columns = ("scope", "runs", "modules", "success", "p50 s", "p95 s", "tokens", "cost $", "coverage +", "mutation %")
    for column in columns:
        table.add_column(column, justify="left" if column == "scope" else "right")
    for name, f in [("whole system", system)] + [(m.model, m) for m in models]:
        table.add_row(
            name,
            str(f.runs),
            str(f.modules),
            f"{f.success_rate:.0%}",
            f"{f.latency_p50_s:.1f}",
            f"{f.latency_p95_s:.1f}",
            str(f.tokens),
            f"{f.cost_usd:.4f}",
            f"{f.coverage_gained:+.1f}",
            f"{f.mutation_score:.1f}" if f.mutation_score is not None else "",
        )
    return table


def models_table(scores: list) -> Table:
    table = Table(title="covsweep model chain, best first", title_justify="left")
    for column in ("model", "score", "quality", "success", "latency", "fit", "why"):
        table.add_column(column, justify="left" if column in ("model", "why") else "right")
    for s in scores:
        table.add_row(
            s.model,
            f"{s.score:.2f}",
            *(f"{s.parts[k]:.2f}" for k in ("quality", "success", "latency", "fit")),
            "; ".join(s.reasons),
        )
    return table
