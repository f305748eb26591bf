"""Test-by-test filtering: a generated test is kept only if it passes every rerun and adds
line or branch coverage over what the baseline and the tests already kept cover."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel

from tasks import sandbox
from tasks.coverage_data import Arc, contexts_coverage, write_rcfile
from tasks.models import FileCoverage, Module, Project, SandboxConfig, TestCounts
from tasks.pytest_support import junit_outcomes, pytest_args, sandbox_env
from tasks.testfile import test_names

class Covered(BaseModel):
    """What the module's tests cover so far."""

    lines: set[int] = set()
    branches: set[Arc] = set()

    @classmethod
    def of(cls, coverage: FileCoverage) -> "Covered":
        return cls(lines=set(coverage.executed_lines), branches=set(coverage.executed_branches))


class FilterResult(BaseModel):
    kept: list[str]
    counts: TestCounts
    covered: Covered
    output: str
    sandbox_start_s: float
    duration_s: float


def _select(per_test: dict[str, tuple[set[int], set[Arc]]], candidates: list[str],
            baseline: FileCoverage, covered: Covered) -> tuple[list[str], Covered]:
    """Greedy set cover: take the test adding most, until none adds anything."""
    statements, branches = set(baseline.statements), set(baseline.branches)
    lines, arcs = set(covered.lines), set(covered.branches)
    kept: list[str] = []
    remaining = [c for c in candidates if c in per_test]
    while remaining:
        def gain(name: str) -> int:
            t_lines, t_arcs = per_test[name]
            return len((t_lines & statements) - lines) + len((t_arcs & branches) - arcs)
        best = max(remaining, key=gain)
        if gain(best) == 0:
            break
        kept.append(best)
        remaining.remove(best)
        lines |= per_test[best][0] & statements
        arcs |= per_test[best][1] & branches
    return kept, Covered(lines=lines, branches=arcs)


def filter_tests(config: SandboxConfig, project: Project, module: Module, candidate: Path,
                 baseline: FileCoverage, covered: Covered, reruns: int, timeout: float) -> FilterResult:
    """Run `candidate` `reruns` times (the first under coverage with per-test contexts) in one sandbox."""
    workspace = candidate.parent
    rcfile = write_rcfile(workspace, project, per_test=True)
    names = test_names(candidate.read_text())
    steps = [f"cd {shlex.quote(str(project.target))}"]
    for run in range(1, reruns + 1):
        runner = f"-m coverage run --rcfile={rcfile} " if run == 1 else ""
        # hash() differs between interpreters: each rerun gets its own seed.
        steps.append(f"PYTHONHASHSEED={run} \"$PY\" {runner}{pytest_args([candidate], workspace / f'junit-{run}.xml')}"
                     f" > {workspace}/pytest-{run}.log 2>&1; echo \"rerun {run}: exit $?\"")
    result = sandbox.run(config, "\n".join(steps), workspace=workspace,
                         read_only=[project.target], timeout=timeout, env=sandbox_env(project))
    runs = [junit_outcomes(workspace / f"junit-{run}.xml", candidate.stem) for run in range(1, reruns + 1)]
    passed_all = [n for n in names if all(r.get(n, False) for r in runs)]
    failed_all = [n for n in names if not any(r.get(n, False) for r in runs)]
    data = workspace / ".coverage"
    per_test = {}
    if data.exists():
        prefix = f"{candidate.stem}."
        per_test = {ctx.removeprefix(prefix): cov for ctx, cov in contexts_coverage(data, module.file).items()}
    kept, now_covered = _select(per_test, passed_all, baseline, covered)
    counts = TestCounts(
        proposed=len(names), accepted=len(kept), rejected_failing=len(failed_all),
        rejected_flaky=len(names) - len(passed_all) - len(failed_all),
        rejected_no_gain=len(passed_all) - len(kept),
    )
    log = (workspace / "pytest-1.log")
    output = log.read_text(errors="replace")[-4000:] if log.exists() else result.output
    return FilterResult(kept=kept, counts=counts, covered=now_covered, output=output,
                        sandbox_start_s=result.start_s, duration_s=result.duration_s)
