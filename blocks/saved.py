"""Reading a saved block document, which is always optional: covsweep runs without a Prefect API."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block
from prefect.logging import get_logger

from tasks.core.names import DEFAULT_BLOCK_NAME

B = TypeVar("B", bound=Block)


def load_saved(cls: type[B], name: str = DEFAULT_BLOCK_NAME) -> B | None:
    """The saved document, or None when there is none or no Prefect API to ask."""
    try:
        return cls.load(name)
    except ValueError:
        return None  # no block document (or block type) of that name
    except Exception as exc:  # noqa: BLE001 - no API, API down: the block is optional
        get_logger("covsweep").debug(
            "block %s/%s not loaded: %s", cls.get_block_type_slug(), name, exc.__class__.__name__
        )
        return None
