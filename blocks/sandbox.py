"""The saved sandbox settings: Prefect block `covsweep-sandbox`."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from tasks.core.models import SandboxLimits


class CovsweepSandbox(Block):
    """Which image covsweep's sandbox containers run, and the limits every one of them gets."""

    _block_type_name = "Covsweep Sandbox"
    _block_type_slug = "covsweep-sandbox"
    _description = "Image and resource limits of the containers covsweep runs a target's code in."

    image: str | None = Field(
        default=None,
        description="an image to use instead of the one covsweep builds "
        "(it needs /opt/runner and /opt/pynguin); COVSWEEP_SANDBOX_IMAGE beats it",
    )
    limits: SandboxLimits = Field(default_factory=SandboxLimits, description="per container")
