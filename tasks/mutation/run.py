"""Mutation score of a module's tests, and which mutants one new test kills: mutmut in one sandbox run.

The module is mutated in a writable copy inside the workspace (the target stays read-only), only the
given tests run against each mutant, each mutant's run stops at its first failing test and after
3 x its tests' own time + 1 s; a mutant stopped there is tried again at a limit that grows with how
long the other mutants' runs took (driver.confirm_limit) before it is a `timeout` (counted as killed).
The whole run is bounded by `timeout`: mutants it leaves untried are `unfinished`, not counted.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from pydantic import BaseModel

from tasks.core.errors import ModuleError
from tasks.core.models import Module, Mutant, MutationScore, ProjectRef, SandboxConfig
from tasks.mutation import driver as sandbox_driver
from tasks.sandbox import runner as sandbox
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.pytest_support import sandbox_env

DRIVER = Path(sandbox_driver.__file__)
DEFAULT_MUTANTS = 30
DETECTED = ("killed", "timeout")


class MutationRun(BaseModel):
    score: MutationScore
    mutants: list[Mutant]
    unfinished: int = 0
    listed: int = 0
    duration_s: float = 0.0
    sandbox_start_s: float = 0.0

    @property
    def survivors(self) -> list[Mutant]:
        """What the refinement prompt lists under "Surviving mutants"."""
        return [m for m in self.mutants if m.status == "survived"]


def score_of(mutants: list[Mutant]) -> MutationScore:
    """Killed (timeouts included) over the mutants tried, in percent; 100 when there is nothing to
    mutate, as coverage.py gives 100 for a file with no statements."""
    tried = [m for m in mutants if m.status is not None]
    killed = sum(m.status == "killed" for m in tried)
    timeout = sum(m.status == "timeout" for m in tried)
    score = 100.0 * (killed + timeout) / len(tried) if tried else 100.0
    return MutationScore(
        mutants=len(tried),
        killed=killed,
        survived=len(tried) - killed - timeout,
        timeout=timeout,
        score=round(score, 2),
    )


def _run_driver(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    test_files: list[Path],
    workspace: Path,
    job: dict,
    timeout: float,
) -> tuple[list[Mutant], dict, sandbox.ExecResult]:
    """One sandbox run of driver.py on `job`; the mutants it reports and its answer. The workspace
    may be one an earlier run used: its copy and answer are removed first."""
    sandbox.prepare_workspace(workspace)
    remove_tree(workspace / sandbox_driver.WORK)
    answer_file = workspace / sandbox_driver.RESULT
    answer_file.unlink(missing_ok=True)
    driver = workspace / DRIVER.name
    shutil.copy(DRIVER, driver)
    job_file = workspace / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "target": str(project.target),
                "import_root": str(project.import_root),
                "module_path": module.path,
                "tests": [str(p) for p in test_files],
                "budget_s": timeout,
                "max_children": max(1, math.floor(config.limits.cpus)),
                **job,
            }
        )
    )
    outside = [p for p in test_files if not p.is_relative_to(project.target) and not p.is_relative_to(workspace)]
    result = sandbox.run(
        config,
        f'"$PY" {driver} {job_file}',
        workspace=workspace,
        read_only=[project.target, *outside],
        timeout=timeout,
        env=sandbox_env(project),
    )
    if not answer_file.exists():
        kind = "timeout" if result.timed_out else "sandbox"
        last = (result.output.strip().splitlines() or ["no output"])[-1][:300]
        raise ModuleError(kind, f"mutation run of {module.path} ended without a result: {last}")
    answer = json.loads(answer_file.read_text())
    if answer.get("error"):
        raise ModuleError("sandbox", f"mutation run of {module.path} failed: {answer['error']}")
    mutants = [Mutant(file=module.path, **m) for m in answer["mutants"]]
    return mutants, answer, result


def mutate_module(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    test_files: list[Path],
    workspace: Path,
    *,
    max_mutants: int = DEFAULT_MUTANTS,
    timeout: float,
) -> MutationRun:
    """Up to `max_mutants` mutants of `module` (sampled evenly over its lines when it has more), each
    run against `test_files` only; raises ModuleError when no mutant could be tried."""
    job = {"mode": "score", "max_mutants": max_mutants}
    mutants, answer, result = _run_driver(config, project, module, test_files, workspace, job, timeout)
    unfinished = sum(m.status is None for m in mutants)
    if mutants and unfinished == len(mutants):
        raise ModuleError("timeout", f"mutation run of {module.path}: no mutant was tried within {timeout:.0f}s")
    return MutationRun(
        score=score_of(mutants),
        mutants=mutants,
        unfinished=unfinished,
        listed=answer.get("listed", 0),
        duration_s=result.duration_s,
        sandbox_start_s=result.start_s,
    )


def kills(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    candidate_test: Path,
    test_name: str,
    mutants: list[Mutant],
    workspace: Path,
    timeout: float,
) -> list[Mutant]:
    """The mutants among `mutants` that the test `test_name` (Class.test or test) of `candidate_test`
    kills, alone; each returned with its new status. Raises ModuleError when the module is no longer
    the one the mutants were made of, or the test cannot run."""
    return kills_by_group(config, project, module, candidate_test, [[test_name]], mutants, workspace, timeout)[0]


def kills_by_group(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    candidate_test: Path,
    groups: list[list[str]],
    mutants: list[Mutant],
    workspace: Path,
    timeout: float,
    *,
    together_from: int | None = None,
) -> list[list[Mutant]]:
    """For each group of tests of `candidate_test` (names as Class.test or test), run together and apart
    from the other groups, the mutants among `mutants` it kills, with their new status; all groups in
    one sandbox run. The groups from `together_from` on are tried as one first, and alone only against
    what they kill together: likely non-killers cost one run, not one each. A group the time left no
    room for kills nothing. Raises ModuleError when the module is no longer the one the mutants were
    made of, or no group could run."""
    if not mutants or not groups:
        return [[] for _ in groups]
    job = {"mode": "kills", "groups": groups, "names": [m.name for m in mutants]}
    if together_from is not None:
        job["together_from"] = together_from
    tried, answer, _ = _run_driver(config, project, module, [candidate_test], workspace, job, timeout)
    by_name = {m.name: m for m in tried}
    for mutant in mutants:
        now = by_name[mutant.name]
        if (now.line, now.original, now.mutated) != (mutant.line, mutant.original, mutant.mutated):
            raise ModuleError("sandbox", f"{module.path} changed since its mutants were made: {mutant.name} differs")
    return [
        [
            by_name[m.name].model_copy(update={"status": verdicts.get(m.name)})
            for m in mutants
            if verdicts.get(m.name) in DETECTED
        ]
        for verdicts in answer["groups"]
    ]
