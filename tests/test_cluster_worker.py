"""A module job made the worker's own where it runs (tasks/cluster/worker.py): its workspace under this
host's cache, its own clone of a repository target at the run's commit, the sandbox image of this host."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tasks.cluster.worker import host_image, localized, rebased, worker_name
from tasks.core.models import ProjectRef, SandboxConfig, Snapshot
from tasks.core.plan import ModuleJob, RepositoryRef
from tasks.core.settings import Settings
from tasks.project.discover import discover
from tests.git_fixtures import CALC, run_git
from tests.helpers import in_threads, write_project

FLOW_HOST = Path("/nowhere/flow-host")  # paths of the flow's host that this one does not have


def job_for(target: Path, run_folder: Path, *, portable: bool = True, **more) -> ModuleJob:
    project = discover(target)
    module = next(m for m in project.modules if m.path == "calc.py")
    return ModuleJob(
        project=ProjectRef(target=project.target, import_root=project.import_root, test_paths=project.test_paths),
        module=module,
        baseline=None,
        generator="llm",
        coverage_target=80,
        max_iterations=1,
        reruns=1,
        timeout=60,
        sandbox=SandboxConfig(
            kind="local", snapshot=Snapshot(target=project.target, folder=run_folder / "snapshot", output=None)
        ),
        workspace=run_folder / "calc.py",
        portable=portable,
        **more,
    )


def test_outside_dask_the_worker_is_this_host():
    assert worker_name() == socket.gethostname()


def test_rebased_moves_the_paths_below_a_folder_and_no_others(tmp_path):
    job = job_for(write_project(tmp_path / "calc", CALC), FLOW_HOST / "runs" / "r1")
    moved = rebased(job, FLOW_HOST, tmp_path / "host")
    assert moved.workspace == tmp_path / "host" / "runs" / "r1" / "calc.py"
    assert moved.sandbox.snapshot.folder == tmp_path / "host" / "runs" / "r1" / "snapshot"
    assert (moved.project, moved.module) == (job.project, job.module)  # not below FLOW_HOST
    assert rebased(job, FLOW_HOST, FLOW_HOST) is job


def test_a_job_not_portable_runs_as_it_is(tmp_path):
    job = job_for(write_project(tmp_path / "calc", CALC), FLOW_HOST / "runs" / "r1", portable=False)
    assert localized(job, Settings(cache_dir=tmp_path / "cache")) is job


def test_a_portable_job_gets_this_hosts_workspace_and_keeps_a_shared_target(tmp_path):
    target = write_project(tmp_path / "calc", CALC)
    job = job_for(target, FLOW_HOST / "cache" / "runs" / "r1")
    here = localized(job, Settings(cache_dir=tmp_path / "cache"))
    assert here.workspace == tmp_path / "cache" / "runs" / "r1" / "calc.py"
    assert here.sandbox.snapshot.folder == tmp_path / "cache" / "runs" / "r1" / "snapshot"
    assert (here.project, here.module, here.sandbox.snapshot.target) == (job.project, job.module, target)


def test_a_repository_target_is_cloned_here_at_the_runs_commit_once_for_every_job(origin, tmp_path):
    # The flow's host cloned it below its own run folder; this host has none of it.
    flow_clone = FLOW_HOST / "cache" / "runs" / "r1" / "checkout"
    mine = write_project(tmp_path / "flow-view", CALC)  # the same files, to describe the job by
    job = rebased(job_for(mine, FLOW_HOST / "cache" / "runs" / "r1"), mine, flow_clone)
    job = job.model_copy(update={"repository": RepositoryRef(url=origin.url, commit=origin.feature, root=flow_clone)})
    settings = Settings(cache_dir=tmp_path / "cache", git_token=None)

    jobs = in_threads(lambda: localized(job, settings), 3)

    clone = jobs[0].project.target
    assert {j.project.target for j in jobs} == {clone} and clone.is_relative_to(tmp_path / "cache" / "repositories")
    assert run_git("rev-parse", "HEAD", cwd=clone).strip() == origin.feature
    assert jobs[0].module.file == clone / "calc.py" and "def double" in jobs[0].module.file.read_text()
    assert jobs[0].project.test_paths == [clone / "tests"]
    assert jobs[0].sandbox.snapshot.target == clone
    assert jobs[0].workspace == tmp_path / "cache" / "runs" / "r1" / "calc.py"


@pytest.mark.docker
def test_the_image_is_this_hosts_and_looked_up_once_per_run(sandbox_image, tmp_path, monkeypatch):
    import tasks.cluster.worker as worker

    target = write_project(tmp_path / "calc", CALC)
    calls = []
    real = worker.prepare_target_image
    monkeypatch.setattr(worker, "prepare_target_image", lambda *a: calls.append(a) or real(*a))
    settings = Settings(cache_dir=tmp_path / "cache")
    # No dependencies declared: the plain sandbox image, the one this host has.
    assert in_threads(lambda: host_image(settings, None, target, "run-a"), 3) == [sandbox_image] * 3
    assert host_image(settings, None, target, "run-b") == sandbox_image
    assert len(calls) == 2  # once for run-a, whatever the threads, and once for run-b
