"""Fakes for a module's work without Docker or a Prefect server: a clock, a round that returns
prepared test files, a filter that knows what each test covers, and Prefect's local result storage
(where the ledger keeps finished modules) in a folder of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.errors import ModuleError
from tasks.core.models import FileCoverage, Module, ModuleResult, Mutant, Project, SandboxConfig, TestCounts
from tasks.core.plan import ModuleJob
from tasks.core.testfiles import test_names
from tasks.coverage.filtering import Covered, FilterResult
from tasks.generators.module import RoundFactory, Steps
from tasks.generators.quality import Checks
from tasks.generators.review import NeedsReview
from tasks.mutation.run import MutationRun, score_of

STATEMENTS = list(range(1, 11))  # the fake module: ten statements, none covered by the project's tests


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def candidate(*names: str) -> str:
    """A generated test file with these tests."""
    return "import math\n\n\n" + "\n\n\n".join(f"def {n}():\n    assert math.pi, {n!r}\n" for n in names)


@dataclass
class ScriptedRound:
    """A Round: call n writes the n-th prepared test file, or raises the n-th error; each call
    advances the clock by `takes_s`."""

    workspace: Path
    answers: list[str | ModuleError]
    clock: Clock | None = None
    takes_s: float = 0.0
    calls: list[tuple[int, float]] = field(default_factory=list)
    feedbacks: list[FilterResult | None] = field(default_factory=list)

    def __call__(self, round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        self.calls.append((round_no, remaining))
        self.feedbacks.append(feedback)
        if self.clock is not None:
            self.clock.now += self.takes_s
        answer = self.answers[len(self.calls) - 1]
        if isinstance(answer, ModuleError):
            raise answer
        candidate = self.workspace / f"test_round_{round_no}.py"
        candidate.write_text(answer)
        return candidate


@dataclass
class FakeFilter:
    """Keeps, in file order, each test that covers a line not covered yet; `lines` says what each covers."""

    lines: dict[str, set[int]]
    calls: int = 0

    def __call__(self, job: ModuleJob, candidate: Path, covered: Covered, timeout: float) -> FilterResult:
        self.calls += 1
        names = test_names(candidate.read_text())
        now, kept = set(covered.lines), []
        for name in names:
            if self.lines.get(name, set()) - now:
                kept.append(name)
                now |= self.lines[name]
        counts = TestCounts(proposed=len(names), accepted=len(kept), rejected_no_gain=len(names) - len(kept))
        return FilterResult(
            kept=kept,
            counts=counts,
            covered=Covered(lines=now),
            output="",
            sandbox_start_s=0.5,
            duration_s=2.0,
            no_gain=[n for n in names if n not in kept],
        )


@dataclass
class Reviews:
    published: list[tuple[str, NeedsReview]] = field(default_factory=list)

    def __call__(self, module: str, result: ModuleResult, exc: NeedsReview) -> None:
        self.published.append((module, exc))


def make_job(tmp_path: Path, **overrides) -> ModuleJob:
    module = Module(path="pkg/mod.py", dotted="pkg.mod", file=tmp_path / "pkg" / "mod.py", sha256="0" * 64)
    fields = dict(
        project=Project(target=tmp_path, import_root=tmp_path, test_paths=[], modules=[module]),
        module=module,
        baseline=FileCoverage(statements=STATEMENTS),
        generator="llm",
        coverage_target=80.0,
        max_iterations=3,
        reruns=1,
        timeout=300.0,
        sandbox=SandboxConfig(kind="local"),
        workspace=tmp_path / "workspace",
        fingerprint=f"fingerprint-of-{tmp_path.name}",
    )
    return ModuleJob(**(fields | overrides))


def _factory(scripted: ScriptedRound) -> RoundFactory:
    return lambda job, result: scripted


def unchanged(job: ModuleJob, source: str, timeout: float) -> str:
    """A readable rewrite that leaves the text as it is."""
    return source


def no_sandbox(*args, **kwargs):
    raise AssertionError("a mutation step ran where none was expected")


NO_CHECKS = Checks(mutate=no_sandbox, kills=no_sandbox, readable=unchanged)


def steps(
    filter: FakeFilter,
    clock: Clock,
    reviews: Reviews | None = None,
    checks: Checks = NO_CHECKS,
    **rounds: ScriptedRound,
) -> Steps:
    """Steps whose generators are `rounds` (by generator name), with no sandbox behind them."""
    return Steps(
        rounds={name: _factory(scripted) for name, scripted in rounds.items()},
        filter=filter,
        probe=lambda job, timeout: 0.25,
        review=reviews or Reviews(),
        clock=clock,
        checks=checks,
    )


@contextmanager
def local_results(folder: Path) -> Iterator[None]:
    """Prefect's default result storage in `folder`, and no API to ask for another: no server starts."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings

    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: folder, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}):
        yield


@dataclass
class FakeMutation:
    """Mutants m1..m<count> of the fake module, each on its own line; `kills` says which mutants each test
    kills. A run scores the tests of the file it is given together; a group kills what its tests do."""

    kills: dict[str, set[str]]
    count: int = 10
    unfinished: int = 0
    runs: list[tuple[str, float]] = field(default_factory=list)  # the file's text and the timeout
    groups: list[list[list[str]]] = field(default_factory=list)
    clock: Clock | None = None
    takes_s: float = 0.0

    def mutants(self) -> list[Mutant]:
        return [
            Mutant(name=f"m{n}", file="pkg/mod.py", line=n, original=f"x = {n}", mutated=f"x = {n + 1}")
            for n in range(1, self.count + 1)
        ]

    def killed_by(self, names: list[str]) -> set[str]:
        return set().union(*(self.kills.get(name, set()) for name in names))

    def mutate(self, job: ModuleJob, tests: Path, timeout: float) -> MutationRun:
        text = tests.read_text()
        self.runs.append((text, timeout))
        if self.clock is not None:
            self.clock.now += self.takes_s
        killed = self.killed_by(test_names(text))
        tried = [m.model_copy(update={"status": "killed" if m.name in killed else "survived"}) for m in self.mutants()]
        untried = [m.model_copy(update={"status": None}) for m in self.mutants()[: self.unfinished]]
        mutants = untried + tried[self.unfinished :]
        return MutationRun(score=score_of(mutants), mutants=mutants, unfinished=self.unfinished, duration_s=3.0)

    def kill_groups(
        self,
        job: ModuleJob,
        candidate: Path,
        groups: list[list[str]],
        mutants: list[Mutant],
        timeout: float,
        together_from: int,
    ) -> list[list[Mutant]]:
        self.groups.append(groups)
        return [
            [m.model_copy(update={"status": "killed"}) for m in mutants if m.name in self.killed_by(group)]
            for group in groups
        ]

    def checks(self, readable=unchanged) -> Checks:
        return Checks(mutate=self.mutate, kills=self.kill_groups, readable=readable)
