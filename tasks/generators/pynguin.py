"""The offline generator: Pynguin, in the sandbox, bounded in time. A run that hangs in the module's
code is stopped, and tried once more without the functions it hung in (pynguin_hang.py)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from pydantic import BaseModel

from tasks.core.errors import ModuleError
from tasks.core.models import Issue, Module, ProjectRef, SandboxConfig
from tasks.generators.pynguin_hang import FINAL_DUMPS, Hang, HangWatch, find_hang, with_callers, with_stack_watch
from tasks.sandbox import runner as sandbox
from tasks.sandbox.pytest_support import sandbox_env
from tasks.sandbox.runner import ExecResult

STARTUP_ALLOWANCE_S = 60
# Pynguin's start-up and a few seconds of search: less than that left, a second try is pointless.
MIN_RETRY_S = 20
# Its assertions are those that kill mutants (0.48's default, passed so that a new default cannot
# silently weaken them), chosen by a seeded sample over the whole module, not its first functions.
ASSERTIONS = ("--assertion-generation", "MUTATION_ANALYSIS", "--maximum-mutants", "60")
# Search iterations without a coverage gain, once the coverage aimed at is reached, before it stops.
PLATEAU_ITERATIONS = 20
# A second try's seed is this far from the first, so that it differs from every later round's too.
RESEED = 1000


class Generated(BaseModel):
    file: Path
    start_s: float
    duration_s: float
    ignored: list[str] = []
    issues: list[Issue] = []


class Aim(BaseModel):
    """Where the search's time goes: only these lines of the module (none: all of it), and the
    coverage (percent of them) above which it stops at its first plateau (None: it runs its time)."""

    lines: list[int] = []
    plateau_at: float | None = None

    def args(self) -> list[str]:
        ranges = ["--only-cover-line-ranges", *line_ranges(self.lines)] if self.lines else []
        plateau = min(99, max(1, int(self.plateau_at))) if self.plateau_at is not None else None
        stop = ["--minimum-coverage", str(plateau), "--minimum-plateau-iterations", str(PLATEAU_ITERATIONS)]
        return ranges + (stop if plateau is not None else [])


def line_ranges(lines: list[int]) -> list[str]:
    """Sorted line numbers as Pynguin's ranges: [3, 4, 5, 9] -> ["3-5", "9"]."""
    ranges: list[list[int]] = []
    for line in sorted(set(lines)):
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return [f"{a}-{b}" if a != b else str(a) for a, b in ranges]


class _Attempt(BaseModel):
    result: ExecResult
    produced: list[Path]
    log: Path
    budget: float
    hang: Hang | None = None


def generate_with_pynguin(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    workspace: Path,
    *,
    seed: int,
    search_s: int,
    timeout: float,
    ignore: list[str] | None = None,
    aim: Aim | None = None,
) -> Generated:
    """One Pynguin run; its test file comes back as workspace/test_covsweep_<seed>.py. `ignore`:
    the module's functions (dotted) earlier rounds found it hangs in; `aim`: the lines to cover."""
    ignore, aim = list(ignore or []), aim or Aim()
    # Pynguin refuses lines to cover inside the functions it is told to leave out.
    aim = aim.model_copy(update={"lines": []}) if ignore else aim
    started = time.monotonic()
    tried = _aimed(config, project, module, workspace, seed, search_s, timeout, ignore, aim)
    first = tried[-1]
    if first.produced or not (first.hang and first.hang.functions):
        return _generated(first, workspace, seed, ignore, tried)
    left_out = [name for name in with_callers(module, first.hang.functions) if name not in ignore]
    hung = f"Pynguin hung in {', '.join(first.hang.functions)} ({first.hang.where}), beyond its own per-test timeout"
    remaining = timeout - (time.monotonic() - started)
    if remaining < MIN_RETRY_S + search_s:
        raise ModuleError("timeout", f"{hung}; no time was left to try again without {', '.join(left_out)}")
    retry = workspace / f"pynguin-{seed}-retry"
    whole = aim.model_copy(update={"lines": []})
    second = _attempt(config, project, module, retry, seed, search_s, remaining, ignore + left_out, whole)
    if not second.produced:
        again = f"; without {', '.join(left_out)} it produced no tests either"
        raise ModuleError("timeout", hung + again + (f" (it hung in {second.hang.where})" if second.hang else ""))
    warning = Issue(
        level="WARNING",
        rule="pynguin-hang",
        message=f"{hung}; generated again without {', '.join(left_out)}: these have no generated tests",
    )
    return _generated(second, workspace, seed, ignore + left_out, [*tried, second], [warning])


def _aimed(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    workspace: Path,
    seed: int,
    search_s: int,
    timeout: float,
    ignore: list[str],
    aim: Aim,
) -> list[_Attempt]:
    """Pynguin on `aim`'s lines; when it ends without tests, a hang, a timeout or the memory limit,
    once more on the whole module with another seed: 0.48 fails on some modules when given line ranges
    (an AssertionError in its control dependence graph, cachetools 8.0.2's __init__.py), and once, in a
    CI run, ended without tests on the example's money.py, which it covers in every other run."""
    started = time.monotonic()
    first = _attempt(config, project, module, workspace / f"pynguin-{seed}", seed, search_s, timeout, ignore, aim)
    remaining = timeout - (time.monotonic() - started)
    stopped = first.hang or first.result.timed_out or first.result.oom_killed
    if first.produced or stopped or remaining < MIN_RETRY_S + search_s:
        return [first]
    whole = aim.model_copy(update={"lines": []})
    out = workspace / f"pynguin-{seed}-again"
    return [first, _attempt(config, project, module, out, seed + RESEED, search_s, remaining, ignore, whole)]


def _attempt(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    out: Path,
    seed: int,
    search_s: int,
    timeout: float,
    ignore: list[str],
    aim: Aim,
) -> _Attempt:
    mutation_s = max(5, search_s // 2)
    args = [
        *("--project-path", str(project.import_root), "--module-name", module.dotted),
        *("--output-path", str(out), "--report-dir", str(out / "report")),
        *("--maximum-search-time", str(search_s), "--maximum-mutation-time", str(mutation_s), "--seed", str(seed)),
        *ASSERTIONS,
        *aim.args(),
        *(["--ignore-methods", *ignore] if ignore else []),
    ]
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)
    env = with_stack_watch(out / "watch", sandbox_env(project))
    log, stop = Path(f"{out}.log"), out / "watch" / "stop"
    # Pynguin in the background; a stuck process the watch names in `stop` is killed, with Pynguin.
    script = "\n".join(
        [
            f"cd {shlex.quote(str(out.parent))}",
            f'PYNGUIN_DANGER_AWARE=1 "$PYNGUIN" {shlex.join(args)} > {shlex.quote(str(log))} 2>&1 &',
            "pynguin=$!",
            f"(while [ ! -s {shlex.quote(str(stop))} ]; do sleep 1; done;"
            f' kill -9 $(cat {shlex.quote(str(stop))}) "$pynguin" 2>/dev/null) &',
            'watch=$!; wait "$pynguin"; status=$?; kill "$watch" 2>/dev/null',
            'echo "pynguin exit $status"',
        ]
    )
    budget = min(timeout, search_s + mutation_s + STARTUP_ALLOWANCE_S)
    stacks = out / "watch" / "stacks"
    with HangWatch(stacks, module, stop, within=out.parent) as watch:
        result = sandbox.run(config, script, workspace=out.parent, read_only=[project.target], timeout=budget, env=env)
    hang = watch.hang or (find_hang(stacks, module, FINAL_DUMPS) if result.timed_out else None)
    return _Attempt(result=result, produced=sorted(out.glob("test_*.py")), log=log, budget=budget, hang=hang)


def _generated(
    last: _Attempt,
    workspace: Path,
    seed: int,
    ignored: list[str],
    attempts: list[_Attempt],
    issues: list[Issue] | None = None,
) -> Generated:
    if not last.produced:
        raise _no_tests(last)
    candidate = workspace / f"test_covsweep_{seed}.py"
    candidate.write_text(last.produced[0].read_text())
    return Generated(
        file=candidate,
        start_s=sum(a.result.start_s for a in attempts),
        duration_s=sum(a.result.duration_s for a in attempts),
        ignored=ignored,
        issues=issues or [],
    )


def _no_tests(attempt: _Attempt) -> ModuleError:
    result = attempt.result
    if attempt.hang:
        return ModuleError(
            "timeout", f"Pynguin hung in {attempt.hang.where}, outside any function, and produced no tests"
        )
    if result.timed_out:
        return ModuleError("timeout", f"Pynguin produced no tests within {attempt.budget:.0f}s")
    if result.oom_killed:
        return ModuleError("sandbox", "Pynguin was killed at the sandbox's memory limit")
    log = attempt.log
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    return ModuleError("internal", f"Pynguin produced no tests: {(tail or [result.output.strip()[-300:]])[0][:300]}")
