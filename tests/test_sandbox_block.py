"""The saved `covsweep-sandbox` block: its limits reach every container of a run, its image is used
unless COVSWEEP_SANDBOX_IMAGE names another."""

from __future__ import annotations

import uuid

import pytest

from blocks.sandbox import CovsweepSandbox
from blocks.saved import load_saved
from tasks.core.errors import InputError
from tasks.core.models import SandboxLimits
from tasks.core.names import DEFAULT_BLOCK_NAME
from tasks.core.options import RunOptions
from tasks.core.settings import Settings
from tasks.plan import plan_run, sandbox_config
from tasks.sandbox import runner as sandbox
from tasks.sandbox.containers import docker_client
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.docker

SMALL = SandboxLimits(memory_mb=128, pids=64, cpus=0.5, tmpfs_mb=32)


def run_in(config, tmp_path, script: str) -> sandbox.ExecResult:
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    return sandbox.run(config, script, workspace=workspace, read_only=[EXAMPLE], timeout=60)


def test_the_blocks_limits_hold_in_the_container(sandbox_image, tmp_path):
    config = sandbox_config("docker", Settings(), block=CovsweepSandbox(limits=SMALL))
    assert config.limits == SMALL
    tmp = run_in(config, tmp_path, "df -m /tmp | tail -1")
    assert tmp.ok and tmp.output.split()[1] == "32", tmp.output  # /tmp's size in MiB
    hog = run_in(config, tmp_path, "\"$PY\" -c 'x = bytearray(300 * 2**20); print(len(x))'")
    assert not hog.ok and hog.oom_killed  # 300 MiB fit in the default 1 GiB, not in the block's 128


def test_no_block_means_the_default_limits(sandbox_image, tmp_path):
    config = sandbox_config("docker", Settings())
    assert config.limits == SandboxLimits()
    assert run_in(config, tmp_path, "\"$PY\" -c 'x = bytearray(300 * 2**20)'").ok


def test_the_blocks_image_is_used_unless_the_environment_names_one(sandbox_image, tmp_path):
    mine = f"covsweep-block-test:{uuid.uuid4().hex[:8]}"
    client = docker_client()
    client.images.get(sandbox_image).tag(mine)
    try:
        block = CovsweepSandbox(image=mine)
        assert sandbox_config("docker", Settings(), block=block).image == mine
        assert sandbox_config("docker", Settings(sandbox_image=sandbox_image), block=block).image == sandbox_image
        assert sandbox_config("local", Settings(), block=block).kind == "local"
    finally:
        client.images.remove(mine)
    with pytest.raises(InputError, match="block covsweep-sandbox"):
        sandbox_config("docker", Settings(), block=CovsweepSandbox(image=mine))


def test_a_run_reads_the_saved_default_block(prefect_api, sandbox_image):
    CovsweepSandbox(limits=SMALL).save(DEFAULT_BLOCK_NAME, overwrite=True)
    try:
        assert plan_run.fn(RunOptions(target=str(EXAMPLE), generator="none")).sandbox.limits == SMALL
        assert (
            plan_run.fn(RunOptions(target=str(EXAMPLE), generator="none"), load_blocks=False).sandbox.limits
            == SandboxLimits()
        )
    finally:
        CovsweepSandbox.delete(DEFAULT_BLOCK_NAME)
    assert load_saved(CovsweepSandbox) is None
    assert plan_run.fn(RunOptions(target=str(EXAMPLE), generator="none")).sandbox.limits == SandboxLimits()
