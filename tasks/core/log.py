"""covsweep's loggers, children of Prefect's so that its settings and handlers apply."""

from __future__ import annotations

import logging
import sys


def get_logger(name: str) -> logging.Logger:
    """Prefect's `get_logger(name)`. Before anything has loaded Prefect (`covsweep run`'s checks) the same
    logger by name, so that a line logged there does not load Prefect for it: a refused run answers in
    half a second. Prefect adds its filters when it hands the logger out later."""
    if "prefect.logging" not in sys.modules:
        return logging.getLogger(f"prefect.{name}")
    from prefect.logging import get_logger as prefect_logger

    return prefect_logger(name)
