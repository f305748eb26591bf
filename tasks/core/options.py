"""A run's options: the one definition the command line, the flows and the sweep are derived from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

Percent = Annotated[float, Field(ge=0, le=100)]


class RunOptions(BaseModel):
    """The flow's parameters; the CLI's options carry the same names."""

    target: str = Field(description="project directory (src/ or flat layout), one .py file, or a git repository URL")
    modules: list[str] | None = Field(default=None, description="module path globs, relative to the target")
    generator: Literal["auto", "llm", "openhands", "pynguin", "none"] = Field(
        default="auto", description="auto: llm with an API key, else pynguin; none: measure only"
    )
    coverage_target: Annotated[float, Field(ge=0, le=100)] = Field(
        default=80.0, description="per-module line coverage at which refinement stops"
    )
    max_iterations: Annotated[int, Field(ge=1, le=100)] = Field(default=3, description="refinement rounds per module")
    reruns: Annotated[int, Field(ge=1, le=50)] = Field(default=3, description="passes in a row a kept test needs")
    out: str | None = Field(default=None, description="where accepted tests go; default TARGET/tests/generated")
    report: str | None = Field(default=None, description="JSON report; default TARGET/.covsweep/report.json")
    concurrency: Annotated[int, Field(ge=1, le=64)] = Field(default=4, description="modules processed at once")
    sandbox: Literal["docker", "local"] = Field(default="docker", description="local: subprocesses, not isolated")
    timeout: Annotated[float, Field(gt=0)] = Field(default=300.0, description="budget per module in seconds")
    models: str | None = Field(default=None, description="LLM fallback chain A,B,C, first preferred")
    llm_base_url: str | None = Field(default=None, description="any OpenAI-compatible endpoint")
    budget_usd: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="no new LLM request past this spend"
    )
    ref: str | None = Field(
        default=None, description="for a repository TARGET: branch, tag or commit; default the remote's HEAD"
    )
    deliver: Literal["write", "patch", "branch"] | None = Field(
        default=None,
        description="how accepted tests reach you: write into the target, a patch, or a pushed "
        "branch; default write for a directory, patch for a repository",
    )
    branch: str | None = Field(
        default=None, description="the new branch of --deliver branch; default covsweep/<date>-<run id prefix>"
    )
    cluster: str | None = Field(
        default=None, description="a Dask scheduler (tcp://host:8786): module tasks run on its workers"
    )
    mutation: Literal["on", "off"] = Field(default="on", description="mutation score of the accepted tests")
    mutants: Annotated[int, Field(ge=1, le=1000)] = Field(default=30, description="mutants per module at most")
    mutation_target: Percent = Field(default=70.0, description="refinement continues below this mutation score")
    changed_since: str | None = Field(
        default=None, description="only modules changed since this git ref; diff coverage in the report"
    )
    fail_under: Percent | None = Field(default=None, description="exit 3 when total line coverage after is below")
    fail_under_diff: Percent | None = Field(default=None, description="exit 3 when diff coverage after is below")
    summary_md: str | None = Field(default=None, description="a markdown summary for a pull-request comment")
    framework: Literal["auto", "pytest", "unittest"] = Field(
        default="auto", description="style of the generated tests and the runner that validates them"
    )
