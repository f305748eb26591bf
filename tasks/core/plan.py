"""A run's plan, and the job each module task gets: the module, its baseline and the run's settings.

A job holds what its one module needs and pickles small, whatever the project's size: it can be
sent to a task in another process or on another host as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tasks.core.llm import LLMSpec
from tasks.core.models import (
    FileCoverage,
    Framework,
    GeneratorName,
    Module,
    Project,
    ProjectRef,
    SandboxConfig,
    Source,
)
from tasks.core.options import RunOptions

# What the offline generator does (tasks/generators/rounds.py `offline`): a new value generates again
# for the modules an earlier version finished, once.
OFFLINE_GENERATOR = "examples+pynguin/1"


class RepositoryRef(BaseModel):
    """A repository target as a host that has no copy of it finds it: cloned at `commit` (once per host,
    tasks.project.repository.checkout_cached), its files then at the clone's paths instead of `root`'s."""

    url: str = Field(description="without credentials: each host answers with its own")
    commit: str = Field(description="the full sha the run resolved")
    root: Path = Field(description="where the flow's host has its clone: the paths of a job are below it")


class ModuleJob(BaseModel):
    project: ProjectRef
    module: Module
    baseline: FileCoverage | None = Field(description="None: the baseline run did not measure this module")
    baseline_problem: str = ""
    generator: GeneratorName
    coverage_target: float
    max_iterations: int
    reruns: int
    timeout: float
    sandbox: SandboxConfig
    workspace: Path
    fingerprint: str = Field(default="", description="its source, the project's tests and the settings")
    llm: LLMSpec | None = Field(default=None, description="the run's LLM, for the llm and openhands generators")
    framework: Framework = Field(default="pytest", description="the style of its tests and the runner that runs them")
    changed_lines: list[int] | None = Field(
        default=None, description="--changed-since: the lines the change added or modified, aimed at first"
    )
    portable: bool = Field(
        default=False,
        description="for a cluster's workers: the host that runs it takes its own workspace, checkout and "
        "sandbox image (sandbox.image is then the one the user named, or empty: covsweep's own)",
    )
    repository: RepositoryRef | None = Field(default=None, description="a cloned target: cloned where it runs")
    mutation: bool = Field(default=False, description="--mutation on: the accepted tests' mutation score")
    mutants: int = Field(default=30, ge=1, description="--mutants: mutants per module at most")
    mutation_target: float = Field(default=70.0, description="--mutation-target: rounds continue below this score")


class Plan(BaseModel):
    run_id: str
    project: Project
    generator: GeneratorName
    sandbox: SandboxConfig
    out: Path
    report: Path | None = Field(description="None: in result storage only (a deployed run on a repository)")
    workspace: Path
    options: RunOptions
    deliver: Literal["write", "patch", "branch"] = "write"
    source: Source | None = Field(default=None, description="the commit the run's clone is at, when it has one")
    repo: Path | None = Field(default=None, description="the run's clone: patches and branches are made from it")
    branch: str | None = Field(default=None, description="the new branch of deliver=branch")
    framework: Framework = "pytest"
    changed: dict[str, list[int]] | None = Field(
        default=None, description="--changed-since: Module.path -> changed lines, for the modules the change touched"
    )
    cluster: str | None = Field(
        default=None, description="the Dask scheduler of --cluster, COVSWEEP_CLUSTER or the block"
    )
    sandbox_image: str | None = Field(
        default=None, description="the image the user named (COVSWEEP_SANDBOX_IMAGE or the block); None: covsweep's own"
    )

    def processed(self) -> list[Module]:
        """The modules this run generates for: all of them, or with --changed-since the changed ones."""
        modules = self.project.modules
        return modules if self.changed is None else [m for m in modules if m.path in self.changed]

    def fingerprint_settings(self) -> dict:
        """What, besides the code and its tests, decides what a module's run produces."""
        o = self.options
        return (
            {
                "generator": self.generator,
                "coverage_target": o.coverage_target,
                "reruns": o.reruns,
                "max_iterations": o.max_iterations,
                "sandbox": self.sandbox.model_dump(exclude={"snapshot"}),  # where a run keeps its copy: not a setting
                "models": o.models,
                # A clone is in a new folder each run: the repository names the project instead of its path.
                **({"repository": self.source.repository} if self.source else {}),
            }
            | ({"framework": self.framework} if self.framework != "pytest" else {})
            | ({"offline": OFFLINE_GENERATOR} if self.generator == "pynguin" else {})
            | self.mutation_settings()
        )

    def mutation_settings(self) -> dict:
        """With --mutation on, its settings too: they decide how many rounds a module gets."""
        o = self.options
        return {"mutation": [o.mutants, o.mutation_target]} if o.mutation == "on" else {}

    def test_paths(self) -> list[Path]:
        """The project's tests, with covsweep's earlier ones: those are the project's tests now."""
        return measured_test_paths(self.project, self.out)

    def measurement_timeout(self) -> float:
        return measurement_timeout(self.options)


def measured_test_paths(project: Project, out: Path) -> list[Path]:
    """What a whole-project measurement runs: the project's tests, and covsweep's earlier ones in `out`."""
    paths = list(project.test_paths)
    if out.is_dir() and not any(out.is_relative_to(p) for p in paths):
        paths.append(out)
    return paths


def measurement_timeout(options: RunOptions) -> float:
    """A whole-project measurement's budget: --timeout is a module's, and a project's suite may need more."""
    return max(options.timeout, 600)


def directory_report(options: RunOptions, target: Path | None) -> Path:
    """--report, else TARGET/.covsweep/report.json (`target` may be None only with --report)."""
    if options.report:
        return Path(options.report).expanduser().resolve()
    return target / ".covsweep" / "report.json"


def default_out(options: RunOptions, project: Project) -> Path:
    """--out, else TARGET/tests/generated: where a run on the target itself writes its tests."""
    return Path(options.out).expanduser().resolve() if options.out else project.target / "tests" / "generated"
