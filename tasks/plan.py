"""Check a run's options and turn them into a plan: the project, the generator, the sandbox."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated, Literal

from prefect import task
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from blocks.sandbox import CovsweepSandbox
from blocks.saved import load_saved
from covsweep.settings import Settings, load
from tasks.discover import discover
from tasks.llm_config import resolve_llm_config
from tasks.image import ensure_sandbox_image
from tasks.leftovers import remove_leftovers, remove_stale_workspaces
from tasks.sandbox import docker_client
from tasks.target_image import ensure_target_image
from tasks.models import GeneratorName, InputError, Project, SandboxConfig, SandboxLimits



class RunOptions(BaseModel):
    """The flow's parameters; the CLI's options carry the same names."""

    target: str = Field(description="project directory (src/ or flat layout) or one .py file")
    modules: list[str] | None = Field(default=None, description="module path globs, relative to the target")
    generator: Literal["auto", "llm", "openhands", "pynguin", "none"] = Field(
        default="auto", description="auto: llm with an API key, else pynguin; none: measure only")
    coverage_target: Annotated[float, Field(ge=0, le=100)] = Field(
        default=80.0, description="per-module line coverage at which refinement stops")
    max_iterations: Annotated[int, Field(ge=1, le=100)] = Field(default=3, description="refinement rounds per module")
    reruns: Annotated[int, Field(ge=1, le=50)] = Field(default=3, description="passes in a row a kept test needs")
    out: str | None = Field(default=None, description="where accepted tests go; default TARGET/tests/generated")
    report: str | None = Field(default=None, description="JSON report; default TARGET/.covsweep/report.json")
    concurrency: Annotated[int, Field(ge=1, le=64)] = Field(default=4, description="modules processed at once")
    sandbox: Literal["docker", "local"] = Field(default="docker", description="local: subprocesses, not isolated")
    timeout: Annotated[float, Field(gt=0)] = Field(default=300.0, description="budget per module in seconds")
    models: str | None = Field(default=None, description="LLM fallback chain A,B,C, first preferred")
    llm_base_url: str | None = Field(default=None, description="any OpenAI-compatible endpoint")
    budget_usd: Annotated[float, Field(ge=0)] | None = Field(default=None, description="no new LLM request past this spend")


class Plan(BaseModel):
    run_id: str
    project: Project
    generator: GeneratorName
    sandbox: SandboxConfig
    out: Path
    report: Path
    workspace: Path
    options: RunOptions

    def fingerprint_settings(self) -> dict:
        """What, besides the code and its tests, decides what a module's run produces."""
        o = self.options
        return {"generator": self.generator, "coverage_target": o.coverage_target, "reruns": o.reruns,
                "max_iterations": o.max_iterations, "sandbox": self.sandbox.model_dump(), "models": o.models}

    def test_paths(self) -> list[Path]:
        """The project's tests, with covsweep's earlier ones: those are the project's tests now."""
        paths = list(self.project.test_paths)
        if self.out.is_dir() and not any(self.out.is_relative_to(p) for p in paths):
            paths.append(self.out)
        return paths


def resolve_generator(requested: str, has_key: bool, blocks_read: bool = True) -> GeneratorName:
    if requested == "auto":
        return "llm" if has_key else "pynguin"
    if requested in ("llm", "openhands") and not has_key and blocks_read:
        raise InputError(f"--generator {requested} needs an API key: set COVSWEEP_LLM_API_KEY (or OPENROUTER_API_KEY), "
                         "or save one in the covsweep-llm block")
    return requested


def sandbox_config(kind: str, settings: Settings, project: Project | None = None,
                   block: CovsweepSandbox | None = None) -> SandboxConfig:
    """The saved `covsweep-sandbox` block sets the limits, and the image unless COVSWEEP_SANDBOX_IMAGE does."""
    limits = block.limits if block else SandboxLimits()
    if kind == "local":
        return SandboxConfig(kind="local", pynguin=settings.pynguin, limits=limits)
    if block and block.image and not settings.sandbox_image:
        settings = settings.model_copy(update={"sandbox_image": block.image})
    # The project's declared dependencies ride in a layer of their own; none declared: the plain sandbox.
    image = ensure_target_image(settings, project.target) if project else ensure_sandbox_image(settings)
    return SandboxConfig(kind="docker", image=image, limits=limits)


@task(name="plan-run")
def plan_run(options: RunOptions, run_id: str | None = None, load_blocks: bool = True) -> Plan:
    """Raises InputError, before anything runs, for whatever a user has to fix. Without
    `load_blocks` (a quick check before Prefect starts) a key saved only in a block is not seen."""
    settings = load()
    project = discover.fn(Path(options.target), options.modules)
    llm = resolve_llm_config(models=options.models, llm_base_url=options.llm_base_url,
                             budget_usd=options.budget_usd, settings=settings, load_block=load_blocks)
    generator = resolve_generator(options.generator, llm.has_key, blocks_read=load_blocks)
    if options.sandbox == "local" and generator == "pynguin" and not shutil.which(settings.pynguin):
        raise InputError(f"--sandbox local needs Pynguin, and {settings.pynguin!r} is not an executable: install "
                         "pynguin==0.48.0 in a venv of its own and set COVSWEEP_PYNGUIN to its bin/pynguin")
    config = sandbox_config(options.sandbox, settings, project, load_saved(CovsweepSandbox) if load_blocks else None)
    if options.sandbox == "local":
        get_logger("covsweep").warning("--sandbox local: modules and tests run as subprocesses of this host, NOT isolated")
    out = Path(options.out).expanduser().resolve() if options.out else project.target / "tests" / "generated"
    report = Path(options.report).expanduser().resolve() if options.report else project.target / ".covsweep" / "report.json"
    run_id = run_id or uuid.uuid4().hex
    remove_stale_workspaces(settings.cache_dir / "runs")
    if config.kind == "docker":
        remove_leftovers(docker_client())
    return Plan(run_id=run_id, project=project, generator=generator, sandbox=config, out=out, report=report,
                workspace=settings.cache_dir / "runs" / run_id, options=options)
