"""The whole-project coverage run, as a task: the baseline and the final validation."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.core.models import Framework, Project, SandboxConfig
from tasks.coverage.early import adopt
from tasks.coverage.measurement import Measurement, measure


@task(name="measure-coverage")
def measure_coverage(
    config: SandboxConfig,
    project: Project,
    test_paths: list[Path],
    workspace: Path,
    timeout: float,
    framework: Framework = "pytest",
) -> Measurement:
    """The project's tests (pytest, or unittest) under coverage, split per module; no tests is a 0 baseline.
    Gives the baseline `covsweep run` began before the flow instead, when that measured the very same files
    and settings (tasks/coverage/early.py)."""
    adopted = adopt(config, project, test_paths, timeout, framework)
    return adopted if adopted is not None else measure(config, project, test_paths, workspace, timeout, framework)
