"""Typed inputs and outputs of covsweep's tasks, and the report schema `covsweep.report/1`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

ErrorType = Literal[
    "connection",
    "timeout",
    "authentication",
    "rate_limit",
    "invalid_response",
    "sandbox",
    "budget",
    "target",
    "internal",
]
Status = Literal["reached_target", "improved", "unchanged", "failed", "skipped", "needs_review"]
DONE = frozenset({"reached_target", "improved", "unchanged", "skipped"})  # a module no later run has to do again
GeneratorName = Literal["llm", "openhands", "pynguin", "none"]
Framework = Literal["pytest", "unittest"]  # the style of generated tests and the runner that runs them


class ErrorInfo(BaseModel):
    type: ErrorType
    message: str


class SandboxLimits(BaseModel):
    memory_mb: int = Field(default=1024, ge=64, description="memory, swap included")
    pids: int = Field(default=256, ge=16, description="processes and threads")
    cpus: float = Field(default=1.0, gt=0, description="CPU cores")
    tmpfs_mb: int = Field(default=256, ge=16, description="size of the private /tmp")


class Snapshot(BaseModel):
    """A read-only copy of the target, readable by the sandbox's user, that the Docker sandbox mounts
    at the target's own path: a private project works, and edits made during the run do not show."""

    target: Path = Field(description="the project folder copied; the sandbox sees the copy at this path")
    folder: Path = Field(description="where the copy is kept: in the run's workspace, taken on first use")
    output: Path | None = Field(
        default=None, description="covsweep's --out folder, copied again for each whole-project measurement"
    )


class SandboxConfig(BaseModel):
    kind: Literal["docker", "local"] = "docker"
    image: str = ""
    pynguin: str = "pynguin"
    limits: SandboxLimits = SandboxLimits()
    snapshot: Snapshot | None = Field(
        default=None, description="Docker only: what the sandbox reads instead of the target; None: the target"
    )


class Module(BaseModel):
    """One Python module of the target, as the project's tests import it."""

    path: str = Field(description="path relative to the import root, e.g. shop/money.py")
    dotted: str = Field(description="import name, e.g. shop.money")
    file: Path = Field(description="absolute path on the host")
    sha256: str
    syntax_error: str | None = None


class ProjectRef(BaseModel):
    """Where a project is, without its module list: what a module job carries, whatever the
    project's size. A module's neighbours are found through the file system (tasks.project.imports)."""

    target: Path
    import_root: Path
    test_paths: list[Path]


class Project(ProjectRef):
    modules: list[Module]

    def ref(self) -> ProjectRef:
        return ProjectRef(target=self.target, import_root=self.import_root, test_paths=self.test_paths)


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
            line=percent(len(executed & set(self.statements)), len(self.statements)),
            branch=percent(len(set(self.executed_branches) & set(self.branches)), len(self.branches)),
            function=percent(len(hit_functions), len(self.functions)),
        )


def percent(part: int, whole: int) -> float:
    """part of whole in percent, 2 decimals; nothing to count is 100% (as coverage.py and diff-cover say)."""
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


class MutationScore(BaseModel):
    """The accepted tests against mutants of the module; timeouts count as killed."""

    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    score: float = Field(default=0.0, description="(killed + timeout) / mutants, percent")


def pooled_mutation_score(scores: list[MutationScore | None]) -> float | None:
    """Killed (timeouts included) over every mutant of the scores given, in percent; None when there is
    no score (--mutation off), 100 when none of them had anything to mutate."""
    scored = [s for s in scores if s is not None]
    if not scored:
        return None
    mutants = sum(s.mutants for s in scored)
    return percent(sum(s.killed + s.timeout for s in scored), mutants)


class Mutant(BaseModel):
    """One mutant of a module, as a refinement prompt shows it: file:line, original -> mutated."""

    name: str = Field(description="the mutation engine's id of the mutant (mutmut's name)")
    file: str = Field(description="the module's path, e.g. shop/money.py")
    line: int
    original: str
    mutated: str
    status: Literal["killed", "survived", "timeout"] | None = Field(
        default=None, description="None: the run's time ran out before it was tried"
    )


class DiffCoverage(BaseModel):
    """Coverage of the executable lines a change added or modified."""

    lines: int = 0
    covered_before: int = 0
    covered_after: int = 0
    percent_before: float = 0.0
    percent_after: float = 0.0


class TotalDiff(DiffCoverage):
    ref: str


class Source(BaseModel):
    """Where a repository target came from; the URL never carries credentials."""

    repository: str
    ref: str | None = None
    commit: str


class Delivery(BaseModel):
    kind: Literal["write", "patch", "branch"]
    patch: str | None = None
    branch: str | None = None
    commit: str | None = None


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
    worker: str | None = Field(default=None, description="the Dask worker or host that processed it")
    mutation: MutationScore | None = None
    diff: DiffCoverage | None = None
    accepted_source: str | None = Field(default=None, exclude=True)
    fingerprint: str | None = Field(
        default=None, exclude=True, description="the ledger's key: its source, the project's tests, the settings"
    )

    def coverage_status(self, target: float) -> Status:
        if self.coverage.line >= target:
            return "reached_target"
        if self.coverage.line > self.coverage_before.line or self.coverage.branch > self.coverage_before.branch:
            return "improved"
        return "unchanged" if self.generator != "none" else "skipped"

    def done(self) -> bool:
        """Nothing left for a later run to do on the module: it ended in a status of DONE, without an error."""
        return self.status in DONE and self.error is None


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
    mutation_score: float | None = None
    diff: TotalDiff | None = None


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
    source: Source | None = None
    delivery: Delivery | None = None

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


class TargetPoint(BaseModel):
    """One target's outcome in one sweep."""

    target: str
    run_id: str | None = None
    state: str = "Completed"
    line: float | None = None
    branch: float | None = None
    modules_failed: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.line is not None


class Sweep(BaseModel):
    """What a `coverage-sweep` run returns and what later sweeps read back as history."""

    sweep_id: str | None = None
    started_at: str | None = None
    points: list[TargetPoint] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list, description="targets whose line coverage fell")

    def point(self, target: str) -> TargetPoint | None:
        return next((p for p in self.points if p.target == target), None)


def now() -> datetime:
    """The time reports are stamped with: aware, in UTC."""
    return datetime.now(UTC)
