"""`covsweep run`'s progress, from the events on the logger `covsweep.progress` (tasks.core.progress):
a live display on a terminal, plain lines, one per finished module, elsewhere (CI).

Module tasks on Dask workers emit their phases in their own process: the display then shows only
what the flow reports here, the modules done and their figures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from covsweep.console import prefect_lines
from tasks.core.models import ModuleResult
from tasks.core.progress import LOGGER, RECORD_FIELD, Lines, ProgressEvent

RUN_PHASES = {
    "planned": "planning",
    "baseline": "measuring the baseline coverage",
    "modules": "generating tests",
    "writing": "writing the accepted tests",
    "validating": "validating: the project's tests and the new ones under coverage",
    "reporting": "writing the report",
}
MAX_RUNNING_SHOWN = 12  # the rest are counted on one line: the display fits a terminal


def clock_text(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def finished_line(done: int, total: int | None, result: ModuleResult) -> str:
    """The plain line of one finished module, as CI logs show it."""
    status = result.status + (f" ({result.error.type})" if result.error else "")
    return (
        f"[{done}/{total or '?'}] {result.module}: {status}, line {result.coverage_before.line:.1f}% -> "
        f"{result.coverage.line:.1f}%, {result.tests.accepted} tests kept, {result.execution_time:.1f}s"
    )


@dataclass
class Running:
    phase: str
    round: int | None
    since: float
    lines: Lines | None = None
    lines_before: Lines | None = None


class RunState:
    """What the events said so far; updated by the logging threads, read by the display's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.started = clock()
        self.phase = "planned"
        self.total: int | None = None
        self.skipped = 0
        self.done: list[ModuleResult] = []
        self.running: dict[str, Running] = {}
        self.baseline: dict[str, Lines] = {}
        self.lines: dict[str, Lines] = {}  # the latest line counts of a module that got tests
        self.spend: dict[str, tuple[int, float]] = {}  # module -> LLM tokens and cost so far

    def apply(self, event: ProgressEvent) -> None:
        with self.lock:
            if event.module is None:
                self._run_event(event)
            elif event.phase == "done" and event.result is not None:
                self._done(event.result)
            else:
                self._module_event(event)

    def _run_event(self, event: ProgressEvent) -> None:
        self.phase = event.phase
        if event.phase == "planned":
            self.total, self.skipped = event.modules, event.skipped
        if event.baseline is not None:
            self.baseline = dict(event.baseline)

    def _module_event(self, event: ProgressEvent) -> None:
        module = event.module
        known = self.running.get(module)
        self.running[module] = Running(
            phase=event.phase,
            round=event.round,
            since=known.since if known else self.clock(),
            lines=event.lines or (known.lines if known else None),
            lines_before=event.lines_before,
        )
        if event.lines is not None:
            self.lines[module] = event.lines
        self.spend[module] = (event.tokens_used, event.cost_usd)

    def _done(self, result: ModuleResult) -> None:
        self.running.pop(result.module, None)
        self.done.append(result)
        statements = self.baseline.get(result.module, Lines()).statements
        self.lines[result.module] = Lines(statements=statements, covered=round(result.coverage.line * statements / 100))
        self.spend[result.module] = (result.metadata.tokens_used, result.metadata.cost)

    def coverage(self) -> tuple[float, float] | None:
        """The project's line coverage before, and with what the modules' kept tests cover so far."""
        if not self.baseline:
            return None
        before = Lines(
            statements=sum(x.statements for x in self.baseline.values()),
            covered=sum(x.covered for x in self.baseline.values()),
        )
        gained = sum(max(0, self.lines[m].covered - self.baseline[m].covered) for m in self.lines if m in self.baseline)
        return before.percent, Lines(statements=before.statements, covered=before.covered + gained).percent

    def tokens_and_cost(self) -> tuple[int, float]:
        return sum(t for t, _ in self.spend.values()), sum(c for _, c in self.spend.values())


def _headline(state: RunState) -> Table:
    grid = Table.grid(padding=(0, 2))
    done, total = len(state.done), state.total
    elapsed = clock_text(state.clock() - state.started)
    if state.phase == "modules" and total:
        grid.add_row(
            Text("covsweep", style="bold"),
            Text(f"{done}/{total} modules done"),
            ProgressBar(total=total, completed=done, width=30),
            Text(elapsed),
        )
    else:
        grid.add_row(
            Text("covsweep", style="bold"), Text(RUN_PHASES.get(state.phase, state.phase) + " ..."), Text(elapsed)
        )
    return grid


def _figures(state: RunState) -> Text:
    parts = []
    if (coverage := state.coverage()) is not None:
        parts.append(f"line coverage {coverage[0]:.1f}% -> {coverage[1]:.1f}% so far")
    if state.skipped:
        parts.append(f"{state.skipped} modules not changed: skipped")
    tokens, cost = state.tokens_and_cost()
    parts.append(f"{tokens:,} LLM tokens, ${cost:.4f}")
    return Text(" · ".join(parts), style="dim")


def _phase_text(running: Running) -> str:
    return running.phase + (f", round {running.round}" if running.round else "")


def _module_table(state: RunState) -> Table:
    table = Table.grid(padding=(0, 2))
    now = state.clock()
    shown = sorted(state.running.items(), key=lambda item: item[1].since)
    for module, running in shown[:MAX_RUNNING_SHOWN]:
        line = ""
        if running.lines is not None and running.lines_before is not None:
            line = f"line {running.lines_before.percent:.1f}% -> {running.lines.percent:.1f}%"
        table.add_row(f"  {module}", _phase_text(running), clock_text(now - running.since), line)
    if len(shown) > MAX_RUNNING_SHOWN:
        table.add_row(f"  ... and {len(shown) - MAX_RUNNING_SHOWN} more running", "", "", "")
    return table


def render(state: RunState) -> Group:
    """The live display: the run's phase or modules done of total, the figures so far, the running modules."""
    with state.lock:
        parts = [_headline(state), _figures(state)]
        if state.phase == "modules" and state.running:
            parts.append(_module_table(state))
        return Group(*parts)


class LiveView:
    """What rich.live.Live redraws a few times a second."""

    def __init__(self, state: RunState):
        self.state = state

    def __rich__(self) -> Group:
        return render(self.state)


class ProgressHandler(logging.Handler):
    """Feeds the events to the state; off a terminal, prints a plain line per finished module."""

    def __init__(self, state: RunState, plain: Console | None = None):
        super().__init__()
        self.state, self.plain = state, plain

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, RECORD_FIELD, None)
        if not isinstance(event, ProgressEvent):
            return
        self.state.apply(event)
        if self.plain is None:
            return
        if event.phase == "done" and event.result is not None:
            self.plain.print(
                finished_line(len(self.state.done), self.state.total, event.result), markup=False, highlight=False
            )
        elif event.phase == "modules" and (coverage := self.state.coverage()) is not None:
            skipped = f", {self.state.skipped} not changed: skipped" if self.state.skipped else ""
            self.plain.print(
                f"baseline: line {coverage[0]:.1f}%; {self.state.total} modules to process{skipped}",
                markup=False,
                highlight=False,
            )


@contextmanager
def showing_progress(out: Console, err: Console, log_file: Path | None) -> Iterator[None]:
    """A live display on `out` when it is a terminal, else a plain line per finished module; Prefect's
    lines into `log_file` (None: on `err`), held until the run is planned."""
    state = RunState()
    live = out.is_terminal and not out.is_dumb_terminal
    handler = ProgressHandler(state, None if live else out)
    events = logging.getLogger(LOGGER)
    events.addHandler(handler)
    # transient: the summary table takes the display's place when the run ends
    display = Live(LiveView(state), console=out, refresh_per_second=4, transient=True) if live else nullcontext()
    try:
        with prefect_lines(err, log_file), display:
            yield
    finally:
        events.removeHandler(handler)
