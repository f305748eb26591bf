"""`covsweep run`'s progress: the state the events build, the live display it renders, the plain lines
off a terminal; and a real run under a pseudo-terminal, its screen read by a terminal emulator."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys
import time

import pyte
import pytest
from rich.console import Console

from covsweep.progress import ProgressHandler, RunState, render
from tasks.core.models import Coverage, Metadata, ModuleResult
from tasks.core.models import TestCounts as Counts
from tasks.core.progress import LOGGER, Lines, module_done, module_phase, run_phase
from tests.helpers import write_project


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def events():
    """The progress logger with a handler of the test's own: (state, clock, plain lines written)."""
    clock, written = Clock(), io.StringIO()
    state = RunState(clock)
    handler = ProgressHandler(state, Console(file=written, width=200))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    yield state, clock, written
    logger.removeHandler(handler)


def screen(state: RunState) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(state))
    return console.export_text()


def result(module: str, line_before: float, line: float, accepted: int, tokens: int = 0, cost: float = 0.0):
    return ModuleResult(
        module=module,
        status="improved",
        success=True,
        coverage_before=Coverage(line=line_before),
        coverage=Coverage(line=line),
        tests=Counts(proposed=accepted, accepted=accepted),
        execution_time=12.5,
        metadata=Metadata(tokens_used=tokens, cost=cost),
    )


def start_run(state_total: int = 2) -> None:
    run_phase("planned", modules=state_total, skipped=1)
    run_phase("baseline")
    baseline = {"a.py": Lines(statements=10, covered=5), "b.py": Lines(statements=10, covered=0)}
    run_phase("modules", baseline=baseline | {"c.py": Lines(statements=20, covered=20)})


def test_the_display_shows_modules_done_each_running_phase_coverage_and_spend(events):
    state, clock, _ = events
    start_run()
    module_phase("a.py", "probe", lines_before=Lines(statements=10, covered=5))
    clock.now += 30
    module_phase("b.py", "probe", lines_before=Lines(statements=10, covered=0))
    clock.now += 5
    module_phase("a.py", "generating", round=2, lines_before=Lines(statements=10, covered=5),
                 lines=Lines(statements=10, covered=8), tokens_used=1500, cost_usd=0.012)  # fmt: skip
    module_phase("b.py", "filtering", round=1, lines_before=Lines(statements=10, covered=0),
                 lines=Lines(statements=10, covered=0), tokens_used=500, cost_usd=0.004)  # fmt: skip
    clock.now += 7

    shown = screen(state)

    assert "0/2 modules done" in shown
    # a.py: 42 s since its probe, round 2; b.py: 12 s, filtering its first round's tests.
    assert [line.split() for line in shown.splitlines() if line.startswith("  ")] == [
        ["a.py", "generating,", "round", "2", "0:42", "line", "50.0%", "->", "80.0%"],
        ["b.py", "filtering,", "round", "1", "0:12", "line", "0.0%", "->", "0.0%"],
    ]
    # (5 + 0 + 20) of 40 lines before; a.py's 3 more so far.
    assert "line coverage 62.5% -> 70.0% so far" in shown
    assert "2,000 LLM tokens, $0.0160" in shown
    assert "1 modules not changed: skipped" in shown


def test_a_finished_module_leaves_the_running_lines_and_counts_with_its_final_figures(events):
    state, _, written = events
    start_run()
    module_phase("a.py", "generating", round=1, tokens_used=100, cost_usd=0.001)
    module_done(result("a.py", 50.0, 90.0, accepted=3, tokens=2000, cost=0.02))

    shown = screen(state)

    assert "1/2 modules done" in shown and "a.py" not in shown
    assert "line coverage 62.5% -> 72.5% so far" in shown  # 4 more lines of a.py
    assert "2,000 LLM tokens, $0.0200" in shown
    assert written.getvalue().splitlines() == [
        "baseline: line 62.5%; 2 modules to process, 1 not changed: skipped",
        "[1/2] a.py: improved, line 50.0% -> 90.0%, 3 tests kept, 12.5s",
    ]


def test_before_the_modules_the_display_names_the_run_phase(events):
    state, clock, _ = events
    run_phase("planned", modules=2)
    run_phase("baseline")
    clock.now += 65
    assert "measuring the baseline coverage ... 1:05" in " ".join(screen(state).split())


def test_events_of_other_processes_never_seen_leave_the_done_count_right(events):
    # Module tasks on Dask workers emit their phases in their own process: only the flow's done events come.
    state, _, written = events
    start_run()
    module_done(result("b.py", 0.0, 50.0, accepted=1))
    module_done(result("a.py", 50.0, 50.0, accepted=0))
    assert "2/2 modules done" in screen(state)
    assert written.getvalue().count("\n[") == 2


# -- a real run under a pseudo-terminal ---------------------------------------------------------

CHANGED = """
def halve(cents):
    if cents < 0:
        raise ValueError("negative")
    return cents // 2
"""


def read_screen(fd: int, terminal: pyte.ByteStream, process: subprocess.Popen, timeout: float) -> list[str]:
    """Every distinct screen the run showed, as the terminal emulator drew it, until the process ends."""
    screens, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                terminal.feed(os.read(fd, 65536))
            except OSError:  # the child closed the terminal
                break
            shown = "\n".join(line.rstrip() for line in terminal.listener.display).strip()
            if not screens or screens[-1] != shown:
                screens.append(shown)
        elif process.poll() is not None:
            break
    return screens


@pytest.mark.docker
@pytest.mark.server
def test_a_run_on_a_terminal_shows_the_live_display_then_the_table(tmp_path, sandbox_image):
    project = write_project(
        tmp_path / "proj",
        {"pkg/__init__.py": "", "pkg/money.py": CHANGED, "tests/test_money.py": "def test_nothing():\n    pass\n"},
    )
    os.chmod(tmp_path, 0o755)
    screen_ = pyte.Screen(110, 40)
    terminal = pyte.ByteStream(screen_)
    main, child = pty.openpty()
    command = [sys.executable, "-m", "covsweep", "run", str(project), "--generator", "pynguin", "--max-iterations", "1"]
    process = subprocess.Popen(
        command, stdin=child, stdout=child, stderr=child, env={**os.environ, "COLUMNS": "110", "LINES": "40"}
    )
    os.close(child)
    try:
        screens = read_screen(main, terminal, process, timeout=600)
    finally:
        os.close(main)
        process.wait(timeout=60)

    assert process.returncode == 0, screens[-1]
    live = [s for s in screens if "0/1 modules done" in s and "pkg/money.py  generating, round 1" in s]
    assert live, "\n\n".join(screens)
    assert "━" in live[-1] and "line coverage" in live[-1] and "LLM tokens" in live[-1]
    last = screens[-1]
    assert "modules done" not in last  # the display made way for the summary table
    assert "│ pkg/money.py" in last and "Prefect's log:" in last
    assert "Task run" not in "\n".join(screens) and "Flow run" not in "\n".join(screens)  # Prefect's lines: in the file
    assert "Finished in state Completed" in (project / ".covsweep" / "covsweep.log").read_text()
