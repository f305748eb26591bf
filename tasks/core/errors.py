"""The two ways a step fails: bad input (exit status 2) and one module that cannot be processed."""

from __future__ import annotations

from tasks.core.models import ErrorInfo, ErrorType


class InputError(Exception):
    """Bad input or configuration: nothing is run, the user reads one line and exit status 2."""


# A rejected key or a spent budget ends every module's work, not just this one's.
STOPS_THE_RUN = {"authentication", "budget"}


class ModuleError(Exception):
    """A module could not be processed; the run goes on with the others. `run_wide`: what stopped it stops
    every module's work (a rejected key, a spent budget, the LLM service's circuit breakers all open)."""

    def __init__(self, type: ErrorType, message: str, *, run_wide: bool = False):
        super().__init__(message)
        self.info = ErrorInfo(type=type, message=message)
        self.run_wide = run_wide or type in STOPS_THE_RUN


class RunError(Exception):
    """The run could not finish (its Dask cluster was lost): one line for the user, exit status 1. What it
    finished is kept: a rerun resumes from there."""
