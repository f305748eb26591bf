"""Read a finished run's report back from Prefect result storage."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from tasks.models import Report


class ResultUnavailable(Exception):
    """The run completed but its result cannot be read (storage gone, not persisted, other host)."""


def stored_result(state: Any) -> Any:
    """The persisted return value behind a completed state read from the API."""
    try:
        return state.result(raise_on_failure=True)
    except Exception as exc:  # storage backends raise anything from OSError to their SDK's errors
        raise ResultUnavailable(f"cannot read the result from result storage: {type(exc).__name__}: {exc}") from None


def stored_report(state: Any) -> Report:
    value = stored_result(state)
    if isinstance(value, Report):
        return value
    if isinstance(value, dict):
        return Report.model_validate(value)
    raise ResultUnavailable(f"the stored result is a {type(value).__name__}, not a covsweep report")


def to_json(value: Any) -> str:
    """A report as covsweep.report/1; any other result (a sweep's) as its own JSON."""
    if isinstance(value, Report):
        return value.to_json()
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True, indent=2)
    return json.dumps(value, indent=2, default=str)
