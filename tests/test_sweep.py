"""The flow `coverage-sweep`: one spec-to-production subflow per target, and the trend artifact built
from the reports earlier sweeps left in result storage."""

from __future__ import annotations

import shutil

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)

from flows.coverage_sweep import coverage_sweep
from tests.conftest import EXAMPLE
from tests.fake_llm import API_KEY, code_answer
from tests.git_fixtures import SIGN_TESTS, run_git

pytestmark = pytest.mark.docker


def trend_of(state) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["covsweep-trend"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
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


def test_a_url_target_delivers_a_branch_the_night_its_coverage_rose(
    prefect_api, sandbox_image, origin, fake_llm, monkeypatch
):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    fake_llm.script(*[code_answer(SIGN_TESTS) for _ in range(3)])
    before = origin.refs()
    state = coverage_sweep(
        targets=[origin.url],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        mutation="off",
        reruns=1,
        max_iterations=1,
        timeout=120,
        deliver="branch",
        return_state=True,
    )
    assert state.is_completed(), state.message
    [point] = state.result().points
    assert point.ok and point.target == origin.url
    [(branch, commit)] = [(ref, sha) for ref, sha in origin.refs().items() if ref not in before]
    assert branch.startswith("refs/heads/covsweep/") and branch.endswith(point.run_id[:8])
    assert run_git("rev-parse", f"{commit}^", cwd=origin.bare).strip() == origin.second
    message = run_git("log", "-1", "--format=%B", commit, cwd=origin.bare)
    assert "calc.py: line coverage 50.0% -> 100.0%" in message
