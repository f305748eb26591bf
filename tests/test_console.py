"""`covsweep run`'s console: Prefect's lines held until the run is planned, dropped for good when the
run is refused (InputError), let out in order otherwise."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from covsweep.console import held_until_planned, prefect_lines, restore_prefect_console
from tasks.core.errors import InputError
from tasks.plan import plan_run

log = logging.getLogger("prefect.test-console")


@pytest.fixture
def console():
    """A console handler of its own (the root logger's are pytest's and Prefect's); what it wrote."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield [handler], stream
    log.removeHandler(handler)
    log.propagate = True


def plan_finished(state: str = "Completed()") -> None:
    log.info("Finished in state %s", state, extra={"task_name": plan_run.name})


def test_lines_wait_for_the_plan_then_come_in_order(console):
    handlers, written = console
    with held_until_planned(handlers):
        log.info("Starting temporary server")
        log.info("Beginning flow run")
        assert written.getvalue() == ""
        plan_finished()
        log.info("baseline: line 40%")
    assert written.getvalue().splitlines() == [
        "Starting temporary server",
        "Beginning flow run",
        "Finished in state Completed()",
        "baseline: line 40%",
    ]


def test_a_refused_run_prints_nothing_then_or_later(console):
    handlers, written = console
    with pytest.raises(InputError), held_until_planned(handlers):
        log.info("Starting temporary server")
        log.error("Task run failed with exception: InputError('no key')")
        plan_finished("Failed('no key')")
        raise InputError("no key")
    log.info("Stopping temporary server")  # at exit, after the one line
    assert written.getvalue() == ""


def test_any_other_ending_lets_the_held_lines_out(console):
    handlers, written = console
    with pytest.raises(KeyboardInterrupt), held_until_planned(handlers):
        log.info("Starting temporary server")
        raise KeyboardInterrupt
    log.info("Stopping temporary server")
    assert written.getvalue().splitlines() == ["Starting temporary server", "Stopping temporary server"]


def test_a_run_that_ends_without_a_plan_line_still_shows_everything(console):
    handlers, written = console
    # e.g. PREFECT_LOGGING_LEVEL=WARNING: no "Finished in state" line ever comes
    with held_until_planned(handlers):
        log.warning("a warning")
    assert written.getvalue().splitlines() == ["a warning"]


class PrefectLike(logging.StreamHandler):
    """Stands for Prefect's console handler: prefect_lines finds handlers by their module."""


PrefectLike.__module__ = "prefect.logging.handlers"


@pytest.fixture
def prefect_console():
    """A Prefect-like console handler on the root logger; what it wrote."""
    stream = io.StringIO()
    handler = PrefectLike(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    filters = {h: list(h.filters) for h in root.handlers}
    yield stream
    restore_prefect_console()
    root.removeHandler(handler)
    for h, kept in filters.items():  # a refused run silences Prefect's console for good: not this session's
        h.filters[:] = kept


def test_prefect_lines_go_to_the_file_and_covsweep_warnings_to_the_console(prefect_console, tmp_path):
    log_file, shown = tmp_path / ".covsweep" / "covsweep.log", io.StringIO()
    with prefect_lines(Console(file=shown, width=200), log_file):
        log.info("Beginning flow run")
        plan_finished()
        logging.getLogger("prefect.covsweep").warning("--sandbox local: NOT isolated", exc_info=ValueError("x"))
    log.info("Stopping temporary server")  # at exit, after the run: still into the file

    assert prefect_console.getvalue() == ""
    assert shown.getvalue() == "covsweep: warning: --sandbox local: NOT isolated\n"
    written = log_file.read_text()
    for line in ("Beginning flow run", "--sandbox local: NOT isolated", "ValueError: x", "Stopping temporary server"):
        assert line in written


def test_a_refused_run_leaves_no_log_file_nor_its_folder(prefect_console, tmp_path):
    log_file = tmp_path / ".covsweep" / "covsweep.log"
    with pytest.raises(InputError), prefect_lines(Console(file=io.StringIO()), log_file):
        log.info("Starting temporary server")
        log.error("Task run failed with exception: InputError('no key')")
        raise InputError("no key")
    log.info("Stopping temporary server")
    assert list(tmp_path.iterdir()) == []


def test_with_verbose_prefect_lines_come_on_the_console_and_a_refused_run_stays_one_line(prefect_console):
    shown = io.StringIO()
    with pytest.raises(InputError), prefect_lines(Console(file=shown, width=200), None):
        log.info("Starting temporary server")
        raise InputError("no key")
    log.info("Stopping temporary server")  # Prefect's own handler is back, and silent
    assert shown.getvalue() == prefect_console.getvalue() == ""

    with prefect_lines(Console(file=shown, width=200), None):
        log.info("Beginning flow run")
        plan_finished()
    lines = shown.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("Beginning flow run") and lines[1].endswith("Completed()")
