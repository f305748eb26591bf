"""The saved Dask cluster: Prefect block `covsweep-cluster`."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class CovsweepCluster(Block):
    """The Dask scheduler whose workers run covsweep's module tasks, for runs that name none."""

    _block_type_name = "Covsweep Cluster"
    _block_type_slug = "covsweep-cluster"
    _description = "Address of the Dask scheduler covsweep's module tasks run on (prefect-dask's DaskTaskRunner)."

    address: str | None = Field(
        default=None,
        description="tcp://host:8786; none: module tasks run in threads of the flow's process. "
        "--cluster and COVSWEEP_CLUSTER beat it",
    )
