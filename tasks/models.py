"""Typed inputs and outputs of covsweep's tasks, and the report schema `covsweep.report/1`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

ErrorType = Literal[
    "connection", "timeout", "authentication", "rate_limit", "invalid_response",
    "sandbox", "budget", "target", "internal",
]
Status = Literal["reached_target", "improved", "unchanged", "failed", "skipped", "needs_review"]
GeneratorName = Literal["llm", "openhands", "pynguin", "none"]


class ErrorInfo(BaseModel):
    type: ErrorType
    message: str


class InputError(Exception):
    """Bad input or configuration: nothing is run, the user reads one line and exit status 2."""


class ModuleError(Exception):
    """A module could not be processed; the run goes on with the others."""

    def __init__(self, type: ErrorType, message: str):
        super().__init__(message)
        self.info = ErrorInfo(type=type, message=message)


class SandboxLimits(BaseModel):
    memory_mb: int = Field(default=1024, ge=64, description="memory, swap included")
    pids: int = Field(default=256, ge=16, description="processes and threads")
    cpus: float = Field(default=1.0, gt=0, description="CPU cores")
    tmpfs_mb: int = Field(default=256, ge=16, description="size of the private /tmp")


class SandboxConfig(BaseModel):
    kind: Literal["docker", "local"] = "docker"
    image: str = ""
    pynguin: str = "pynguin"
    limits: SandboxLimits = SandboxLimits()


class Module(BaseModel):
    """One Python module of the target, as the project's tests import it."""

    path: str = Field(description="path relative to the import root, e.g. shop/money.py")
    dotted: str = Field(description="import name, e.g. shop.money")
    file: Path = Field(description="absolute path on the host")
    sha256: str
    syntax_error: str | None = None


class Project(BaseModel):
    target: Path
    import_root: Path
    test_paths: list[Path]
    modules: list[Module]


class Coverage(BaseModel):
    line: float = 0.0
    branch: float = 0.0
    function: float = 0.0


class FileCoverage(BaseModel):
    """One module's coverage as coverage.py measured it."""

    statements: list[int] = []
    executed_lines: list[int] = []
    branches: list[tuple[int, int]] = []
    executed_branches: list[tuple[int, int]] = []
    functions: dict[str, list[int]] = Field(default_factory=dict, description="name -> its statements")

    def percentages(self) -> Coverage:
        executed = set(self.executed_lines)
        hit_functions = [n for n, lines in self.functions.items() if executed.intersection(lines)]
        return Coverage(
            line=_pct(len(executed & set(self.statements)), len(self.statements)),
            branch=_pct(len(set(self.executed_branches) & set(self.branches)), len(self.branches)),
            function=_pct(len(hit_functions), len(self.functions)),
        )


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 100.0


class ProjectCoverage(BaseModel):
    files: dict[str, FileCoverage] = Field(default_factory=dict, description="keyed by Module.path")
    totals: Coverage = Coverage()
    tests_failed: int = 0


class TestCounts(BaseModel):
    proposed: int = 0
    accepted: int = 0
    rejected_failing: int = 0
    rejected_flaky: int = 0
    rejected_no_gain: int = 0


class Timings(BaseModel):
    model_config = {"populate_by_name": True}

    generate: float = 0.0
    validate_: float = Field(default=0.0, alias="validate")
    sandbox_start: float = 0.0


class Attempt(BaseModel):
    model: str
    outcome: str
    duration_s: float


class Metadata(BaseModel):
    tokens_used: int = 0
    cost: float = 0.0
    retries: int = 0
    attempts: list[Attempt] = []


class Issue(BaseModel):
    level: Literal["ERROR", "WARNING", "INFO"]
    rule: str
    message: str


class Validation(BaseModel):
    score: float = 1.0
    issues: list[Issue] = []


class ModuleResult(BaseModel):
    module: str
    status: Status
    success: bool
    generated_files: list[str] = []
    coverage_before: Coverage = Coverage()
    coverage: Coverage = Coverage()
    tests: TestCounts = TestCounts()
    execution_time: float = 0.0
    timings: Timings = Timings()
    generator: GeneratorName = "none"
    model_used: str | None = None
    metadata: Metadata = Metadata()
    validation: Validation = Validation()
    error: ErrorInfo | None = None
    accepted_source: str | None = Field(default=None, exclude=True)

    def coverage_status(self, target: float) -> Status:
        if self.coverage.line >= target:
            return "reached_target"
        if self.coverage.line > self.coverage_before.line or self.coverage.branch > self.coverage_before.branch:
            return "improved"
        return "unchanged" if self.generator != "none" else "skipped"


class Totals(BaseModel):
    modules: int = 0
    succeeded: int = 0
    failed: int = 0
    tests_accepted: int = 0
    line_before: float = 0.0
    line_after: float = 0.0
    branch_before: float = 0.0
    branch_after: float = 0.0
    tokens_used: int = 0
    cost_usd: float = 0.0


class Report(BaseModel):
    schema_: str = Field(default="covsweep.report/1", alias="schema")
    run_id: str
    target: str
    generator: GeneratorName
    coverage_target: float
    started_at: str
    finished_at: str
    duration_s: float
    totals: Totals
    modules: list[ModuleResult]

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
