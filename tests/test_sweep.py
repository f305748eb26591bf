"""The flow `coverage-sweep`: one spec-to-production subflow per target, and the trend artifact built
from the reports earlier sweeps left in result storage."""

from __future__ import annotations

import shutil

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from flows.coverage_sweep import coverage_sweep
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.docker


def trend_of(state) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["covsweep-trend"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    assert len(found) == 1
    return found[0].data


def test_second_sweep_flags_the_regression_and_the_failed_target(prefect_api, sandbox_image, tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLE, shop)
    first = coverage_sweep(targets=[str(shop)], generator="none", timeout=120, return_state=True)
    assert first.is_completed(), first.message
    before = first.result().points[0]
    assert before.line is not None and before.run_id

    (shop / "tests" / "test_money.py").unlink()  # coverage falls
    missing = str(tmp_path / "missing")
    second = coverage_sweep(targets=[str(shop), missing], generator="none", timeout=120, return_state=True)
    assert second.is_failed() and missing in second.message

    trend = trend_of(second)
    shop_row = next(line for line in trend.splitlines() if line.startswith(f"| `{shop}`"))
    assert f"{before.line:.1f}" in shop_row and "**▼ regression**" in shop_row
    missing_row = next(line for line in trend.splitlines() if line.startswith(f"| `{missing}`"))
    assert "**✖ failed**" in missing_row and "does not exist" in missing_row
