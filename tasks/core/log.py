"""covsweep's loggers, children of Prefect's so that its settings and handlers apply."""

from __future__ import annotations

import logging


def get_logger(name: str) -> logging.Logger:
    """Prefect's `get_logger(name)`, imported at the first line logged: a module that only may log does
    not import Prefect, so a refused `covsweep run` answers before Prefect would have loaded."""
    from prefect.logging import get_logger as prefect_logger

    return prefect_logger(name)
