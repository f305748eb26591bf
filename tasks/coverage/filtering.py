"""Test-by-test filtering: a generated test is kept only if it passes every rerun and adds
line or branch coverage over what the baseline and the tests already kept cover."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from tasks.core.models import FileCoverage, Framework, Module, Mutant, ProjectRef, SandboxConfig, TestCounts
from tasks.core.testfiles import test_names
from tasks.coverage.data import Arc, contexts_coverage, outside_tests_coverage, write_rcfile
from tasks.sandbox.pytest_support import junit_outcomes, pytest_args, run_in_target
from tasks.sandbox.unittest_support import install_runner, unittest_args, unittest_outcomes


class Covered(BaseModel):
    """What the module's tests cover so far."""

    lines: set[int] = set()
    branches: set[Arc] = set()

    @classmethod
    def of(cls, coverage: FileCoverage) -> Covered:
        return cls(lines=set(coverage.executed_lines), branches=set(coverage.executed_branches))

    def plus(self, ran: tuple[set[int], set[Arc]], baseline: FileCoverage) -> Covered:
        """With what `ran` of the module's statements and branches."""
        lines, arcs = ran
        return Covered(
            lines=self.lines | (lines & set(baseline.statements)),
            branches=self.branches | (arcs & set(baseline.branches)),
        )


class FilterResult(BaseModel):
    kept: list[str]
    counts: TestCounts
    covered: Covered
    output: str
    sandbox_start_s: float
    duration_s: float
    no_gain: list[str] = Field(default_factory=list, description="passed every rerun but added no coverage")
    survivors: list[Mutant] = Field(
        default_factory=list, description="set by the module task: the mutants the tests kept so far let through"
    )


def _added(test: tuple[set[int], set[Arc]], missed_lines: set[int], missed_arcs: set[Arc]) -> int:
    """How many of the still missed lines and arcs a test covers."""
    t_lines, t_arcs = test
    return len(t_lines & missed_lines) + len(t_arcs & missed_arcs)


def _select(
    per_test: dict[str, tuple[set[int], set[Arc]]], candidates: list[str], baseline: FileCoverage, covered: Covered
) -> tuple[list[str], Covered]:
    """Greedy set cover: take the test adding most, until none adds anything."""
    statements, branches = set(baseline.statements), set(baseline.branches)
    lines, arcs = set(covered.lines), set(covered.branches)
    kept: list[str] = []
    remaining = [c for c in candidates if c in per_test]
    while remaining:
        missed_lines, missed_arcs = statements - lines, branches - arcs
        gains = {name: _added(per_test[name], missed_lines, missed_arcs) for name in remaining}
        best = max(remaining, key=gains.__getitem__)
        if gains[best] == 0:
            break
        kept.append(best)
        remaining.remove(best)
        lines |= per_test[best][0] & statements
        arcs |= per_test[best][1] & branches
    return kept, Covered(lines=lines, branches=arcs)


def _measured(
    data: Path, candidate: Path, module: Module
) -> tuple[dict[str, tuple[set[int], set[Arc]]], tuple[set[int], set[Arc]]]:
    """What each test of `candidate` ran of the module, and what ran outside every test: the
    import, which the final suite runs too whenever the file keeps a test."""
    if not data.exists():
        return {}, (set(), set())
    prefix = f"{candidate.stem}."
    per_test = {ctx.removeprefix(prefix): cov for ctx, cov in contexts_coverage(data, module.file).items()}
    return per_test, outside_tests_coverage(data, module.file)


def _rerun_commands(framework: Framework, candidate: Path, rcfile: Path, reruns: int) -> list[str]:
    """One command per rerun, the first under coverage with per-test contexts; each writes its outcomes."""
    workspace = candidate.parent
    runner = install_runner(workspace) if framework == "unittest" else None
    commands = []
    for run in range(1, reruns + 1):
        under_coverage = f"-m coverage run --rcfile={rcfile} " if run == 1 else ""
        if runner is not None:
            # Discovery of the candidate's file alone: earlier rounds' candidates are in the same folder.
            roots = [(workspace, workspace)]
            tests = unittest_args(runner, roots, workspace / f"outcomes-{run}.json", pattern=candidate.name)
        else:
            tests = pytest_args([candidate], workspace / f"junit-{run}.xml")
        # hash() differs between interpreters: each rerun gets its own seed.
        commands.append(
            f'PYTHONHASHSEED={run} "$PY" {under_coverage}{tests}'
            f' > {workspace}/pytest-{run}.log 2>&1; echo "rerun {run}: exit $?"'
        )
    return commands


def rerun_outcomes(framework: Framework, candidate: Path, reruns: int) -> list[dict[str, bool]]:
    """qualname -> passed, per rerun."""
    workspace = candidate.parent
    if framework == "unittest":
        return [unittest_outcomes(workspace / f"outcomes-{run}.json", candidate.stem) for run in range(1, reruns + 1)]
    return [junit_outcomes(workspace / f"junit-{run}.xml", candidate.stem) for run in range(1, reruns + 1)]


def filter_tests(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    candidate: Path,
    baseline: FileCoverage,
    covered: Covered,
    reruns: int,
    timeout: float,
    framework: Framework = "pytest",
) -> FilterResult:
    """Run `candidate` `reruns` times (the first under coverage with per-test contexts) in one sandbox,
    with pytest or with unittest's runner."""
    workspace = candidate.parent
    rcfile = write_rcfile(workspace, project, per_test=True)
    names = test_names(candidate.read_text())
    commands = _rerun_commands(framework, candidate, rcfile, reruns)
    result = run_in_target(config, project, commands, workspace=workspace, timeout=timeout)
    runs = rerun_outcomes(framework, candidate, reruns)
    passed_all = [n for n in names if all(r.get(n, False) for r in runs)]
    failed_all = [n for n in names if not any(r.get(n, False) for r in runs)]
    per_test, imported = _measured(workspace / ".coverage", candidate, module)
    kept, now_covered = _select(per_test, passed_all, baseline, covered)
    if kept:
        now_covered = now_covered.plus(imported, baseline)
    counts = TestCounts(
        proposed=len(names),
        accepted=len(kept),
        rejected_failing=len(failed_all),
        rejected_flaky=len(names) - len(passed_all) - len(failed_all),
        rejected_no_gain=len(passed_all) - len(kept),
    )
    log = workspace / "pytest-1.log"
    output = log.read_text(errors="replace")[-4000:] if log.exists() else result.output
    return FilterResult(
        kept=kept,
        counts=counts,
        covered=now_covered,
        output=output,
        sandbox_start_s=result.start_s,
        duration_s=result.duration_s,
        no_gain=[n for n in passed_all if n not in kept],
    )
