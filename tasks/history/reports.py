"""Read a finished run's report back from Prefect result storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.results import ResultRecordMetadata, get_default_result_storage, resolve_result_storage
from pydantic import BaseModel

from tasks.core.models import Report
from tasks.core.names import PATCH_STORAGE_KEY


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


def _storage_of(state: Any) -> WritableFileSystem:
    """The result storage a run's result went to (as Prefect finds it to read the result back)."""
    meta = state.data
    if isinstance(meta, ResultRecordMetadata) and meta.storage_block_id is not None:
        return resolve_result_storage(meta.storage_block_id)
    if isinstance(meta, ResultRecordMetadata) and meta.storage_key and Path(meta.storage_key).is_absolute():
        return LocalFileSystem(basepath=str(Path(meta.storage_key).parent))  # local storage: no block
    return get_default_result_storage()


def stored_patch(state: Any, run_id: str) -> str | None:
    """The patch a completed run stored beside its result; None when it stored none (nothing kept, or
    not delivered as a patch)."""
    try:
        return _storage_of(state).read_path(PATCH_STORAGE_KEY.format(run_id=run_id)).decode()
    except (OSError, ValueError):  # no such file; a path outside the storage
        return None
