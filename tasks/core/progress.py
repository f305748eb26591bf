"""A run's progress as it happens: structured records on the logger `covsweep.progress`.

The flow and the module code emit them; whoever shows progress attaches a handler (`covsweep run`'s
live display or its plain lines). Nothing else reads them, and with no handler they go nowhere: a
module task on a Dask worker, in another process, emits into its own process and the display only
learns that the module finished, from the flow, which always runs in the process that shows it.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel

from tasks.core.models import FileCoverage, Module, ModuleResult, ProjectCoverage

LOGGER = "covsweep.progress"
RECORD_FIELD = "covsweep_progress"  # the LogRecord attribute that holds the event

RunPhase = Literal["planned", "baseline", "modules", "writing", "validating", "reporting"]
ModulePhase = Literal["probe", "generating", "filtering", "mutation", "done"]

_logger = logging.getLogger(LOGGER)
_logger.addHandler(logging.NullHandler())
_logger.setLevel(logging.INFO)
_logger.propagate = False  # not Prefect's console or its API: only a progress handler shows them


class Lines(BaseModel):
    """Line coverage as counts: a total over modules is a sum, not an average of percents."""

    statements: int = 0
    covered: int = 0

    @classmethod
    def of(cls, coverage: FileCoverage | None) -> Lines:
        if coverage is None:
            return cls()
        statements = set(coverage.statements)
        return cls(statements=len(statements), covered=len(statements.intersection(coverage.executed_lines)))

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.statements if self.statements else 100.0


class ProgressEvent(BaseModel):
    phase: RunPhase | ModulePhase
    module: str | None = None  # None: the run's own phase
    round: int | None = None
    modules: int | None = None  # planned: how many modules the run generates for
    skipped: int = 0  # planned: how many it leaves alone (--changed-since)
    baseline: dict[str, Lines] | None = None  # modules: every module's line counts before the run
    lines_before: Lines | None = None  # the module's line counts before
    lines: Lines | None = None  # and now
    tokens_used: int = 0  # the module's LLM spend so far
    cost_usd: float = 0.0
    result: ModuleResult | None = None  # done


def emit(event: ProgressEvent) -> None:
    what = event.phase + (f" round {event.round}" if event.round else "")
    _logger.info("%s: %s", event.module or "run", what, extra={RECORD_FIELD: event})


def run_phase(phase: RunPhase, **fields) -> None:
    emit(ProgressEvent(phase=phase, **fields))


def module_phase(module: str, phase: ModulePhase, **fields) -> None:
    emit(ProgressEvent(phase=phase, module=module, **fields))


def module_done(result: ModuleResult) -> None:
    module_phase(result.module, "done", result=result)


def baseline_lines(modules: list[Module], coverage: ProjectCoverage) -> dict[str, Lines]:
    return {m.path: Lines.of(coverage.files.get(m.path)) for m in modules}
