"""Prefect's console lines during `covsweep run`: into a log file (or with -v on the console), and held
back until the run is planned: a run its plan refuses (bad input, exit 2) then prints one line, not
the temporary server's and the flow's logs and a traceback."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from tasks.core.errors import InputError
from tasks.plan import plan_run


def planned(record: logging.LogRecord) -> bool:
    """The record Prefect logs when the run's plan-run task completed."""
    return getattr(record, "task_name", None) == plan_run.name and record.getMessage().startswith(
        "Finished in state Completed"
    )


class _Gate:
    """Holds the console handlers' records until one says the run is planned, then lets all through in order."""

    def __init__(self, handlers: list[logging.Handler]):
        # Reentrant: letting the held records through filters them again, in the same thread.
        self.lock = threading.RLock()
        self.held: list[tuple[logging.Handler, logging.LogRecord]] = []
        self.open = self.shut = False
        self.filters = {handler: _HandlerFilter(self, handler) for handler in handlers}
        for handler, hold in self.filters.items():
            handler.addFilter(hold)

    def admit(self, handler: logging.Handler, record: logging.LogRecord) -> bool:
        with self.lock:
            if self.open or self.shut:
                return self.open
            if planned(record):
                self.release()
                return True
            self.held.append((handler, record))
            return False

    def release(self) -> None:
        """Every held record out, in the order it came; from now on records pass."""
        with self.lock:
            self.open = True
            held, self.held = self.held, []
            for handler, record in held:
                handler.handle(record)

    def shut_out(self) -> None:
        """Nothing held or logged from now on gets out: the temporary server's shutdown line included."""
        with self.lock:
            self.held, self.shut = [], True

    def close(self) -> None:
        if self.shut:
            return
        self.release()
        for handler, hold in self.filters.items():
            handler.removeFilter(hold)


class _HandlerFilter(logging.Filter):
    def __init__(self, gate: _Gate, handler: logging.Handler):
        super().__init__()
        self.gate, self.handler = gate, handler

    def filter(self, record: logging.LogRecord) -> bool:
        return self.gate.admit(self.handler, record)


@contextmanager
def held_until_planned(handlers: list[logging.Handler] | None = None) -> Iterator[None]:
    """The output of `handlers` (by default the root logger's stream handlers: Prefect's console) held
    until the run is planned; let out when the run ends otherwise, but when it raises InputError
    dropped, and they stay silent until the process exits: the caller prints the one line and exits."""
    if handlers is None:
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    gate = _Gate(handlers)
    try:
        yield
    except InputError:
        gate.shut_out()
        raise
    finally:
        gate.close()


# The loggers Prefect's logging.yml gives a console handler.
PREFECT_CONSOLE_LOGGERS = ("", "uvicorn", "fastapi", "prefect._internal")


def prefect_console_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """(logger, handler) for each of Prefect's console handlers: its stream handlers, not pytest's or a user's."""
    found = []
    for name in PREFECT_CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and type(handler).__module__.startswith("prefect."):
                found.append((logger, handler))
    return found


class ConsoleLines(logging.Handler):
    """Log lines printed through a rich console: above the live display while it runs."""

    def __init__(self, console: Console, formatter: logging.Formatter | None = None, prefix: str = ""):
        super().__init__()
        self.console, self.prefix = console, prefix
        self.setFormatter(formatter or logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.prefix + self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never end the run
            self.handleError(record)


class LogFile(logging.FileHandler):
    """A log file made, folder and all, at its first line: a run refused before then leaves nothing behind."""

    def __init__(self, path: Path):
        super().__init__(path, mode="w", encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class MessageOnly(logging.Formatter):
    """The message without a traceback: that stays in the log file."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def own_warnings(record: logging.LogRecord) -> bool:
    """covsweep's own warnings and errors (its `prefect.covsweep*` loggers)."""
    return record.levelno >= logging.WARNING and record.name.startswith("prefect.covsweep")


def _swap(pairs: list[tuple[logging.Logger, logging.Handler]], replacement: logging.Handler) -> Callable[[], None]:
    """`replacement` instead of each pair's handler; what puts them back."""
    for logger, handler in pairs:
        logger.removeHandler(handler)
        if replacement not in logger.handlers:
            logger.addHandler(replacement)

    def restore() -> None:
        for logger, handler in pairs:
            logger.removeHandler(replacement)
            if handler not in logger.handlers:
                logger.addHandler(handler)
        replacement.close()

    return restore


# What puts Prefect's console back after a run whose lines went to a file: at exit, or at the next run.
_pending: list[Callable[[], None]] = []


def restore_prefect_console() -> None:
    while _pending:
        _pending.pop()()


atexit.register(restore_prefect_console)  # at import: after Prefect's temporary server stops, which starts later


@contextmanager
def prefect_lines(err: Console, log_file: Path | None) -> Iterator[None]:
    """Prefect's console lines in `log_file` (covsweep's own warnings still on `err`), or with no file on
    `err`, above the live display; either way held until the run is planned, and a refused run's
    silenced for good, so that it prints one line."""
    restore_prefect_console()
    pairs = prefect_console_handlers()
    formatter = next((h.formatter for _, h in pairs if h.formatter), None)
    if log_file is None:
        shown = ConsoleLines(err, formatter)
        restore = _swap(pairs, shown)
        try:
            # Prefect's own handlers are gated too: a refused run's shutdown line stays silent once they are back.
            with held_until_planned([shown] + [h for _, h in pairs]):
                yield
        finally:
            restore()
        return
    to_file = LogFile(log_file)
    to_file.setFormatter(formatter or logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    warnings = ConsoleLines(err, MessageOnly(), prefix="covsweep: warning: ")
    warnings.addFilter(own_warnings)
    root = logging.getLogger()
    root.addHandler(warnings)
    # Prefect logs on after the flow, at exit (its temporary server's shutdown): into the file as well.
    _pending.append(_swap(pairs, to_file))
    try:
        with held_until_planned([warnings, to_file]):
            yield
    finally:
        root.removeHandler(warnings)
