"""The second offline generator: recorded examples, in the sandbox, bounded in time.

Where Pynguin stays low (string- and regex-heavy code: its random strings never match the
module's patterns), this one replays the examples of the module's docstrings and the project's
README, then searches each public function with Hypothesis over the module's own constants and
strings matching its regular expressions, and writes what the calls returned as plain asserts
(examples_driver.py, run in the sandbox; examples_emit.py, the file it writes).
"""

from __future__ import annotations

import ast
import json
import keyword
import shlex
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from tasks.core.errors import ModuleError
from tasks.core.models import Issue, Module, ModuleResult, Project, SandboxConfig
from tasks.core.testfiles import test_names
from tasks.coverage.filtering import Covered, FilterResult
from tasks.coverage.testfile import TestFileBuilder
from tasks.generators.pynguin import Generated
from tasks.sandbox import runner as sandbox
from tasks.sandbox.pytest_support import sandbox_env

HERE = Path(__file__).parent
DRIVER_FILES = ("examples_driver.py", "examples_emit.py")
# Where the sandbox image installs Hypothesis (deployments/sandbox/offline.txt).
OFFLINE_SITE = "/opt/offline/lib/python3.11/site-packages"
README_NAMES = ("README.md", "README.rst", "README.txt", "README")
STARTUP_ALLOWANCE_S = 15
CALL_TIMEOUT_S = 2.0
HANG_S = 6.0
# The examples generator's part of a module's time when it runs before Pynguin. It stops at its own
# plateau, and what it leaves goes to Pynguin: where it finds little it costs little, and a third
# was too little for a regex module on a loaded host (docs/offline-generators.md).
EXAMPLES_SHARE = 1 / 2


class Round(Protocol):
    """tasks/generators/rounds.py's Round, restated: rounds.py imports this module to register it."""

    def __call__(self, round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path: ...


def module_alias(module: Module) -> str:
    """The name the tests call the module by: its last dotted part."""
    last = module.dotted.rsplit(".", 1)[-1]
    return f"{last}_module" if keyword.iskeyword(last) or last in ("pytest", "test") else last


def readmes(project: Project) -> list[str]:
    return [str(project.target / name) for name in README_NAMES if (project.target / name).is_file()]


def generate_with_examples(
    config: SandboxConfig,
    project: Project,
    module: Module,
    workspace: Path,
    *,
    seed: int,
    budget_s: float,
    targets: list[str] | None = None,
) -> Generated:
    """One examples run: workspace/test_covsweep_examples_<seed>.py, within budget_s (plus start-up).

    targets: only these functions and classes (`name` or `Class.method`); None: all public ones."""
    folder = workspace / f"examples-{seed}"
    sandbox.prepare_workspace(folder)
    for name in DRIVER_FILES:
        shutil.copy(HERE / name, folder / name)
    candidate = workspace / f"test_covsweep_examples_{seed}.py"
    job = {
        "module": module.dotted,
        "alias": module_alias(module),
        "budget_s": budget_s,
        "seed": seed,
        "cases": str(folder / "cases.jsonl"),
        "out": str(candidate),
        "summary": str(folder / "summary.json"),
        "readmes": readmes(project),
        "targets": targets,
        "offline_site": OFFLINE_SITE if config.kind == "docker" else "",
        "call_timeout_s": CALL_TIMEOUT_S,
        "hang_s": HANG_S,
    }
    (folder / "job.json").write_text(json.dumps(job))
    script = (
        f"cd {shlex.quote(str(project.target))} && "
        f'"$PY" {shlex.quote(str(folder / DRIVER_FILES[0]))} {shlex.quote(str(folder / "job.json"))}'
        f' > {shlex.quote(str(folder / "driver.log"))} 2>&1; echo "examples exit $?"'
    )
    result = sandbox.run(
        config,
        script,
        workspace=workspace,
        read_only=[project.target],
        timeout=budget_s + HANG_S + STARTUP_ALLOWANCE_S,
        env=sandbox_env(project),
    )
    if not candidate.exists() or not candidate.read_text().strip():
        raise ModuleError(*_no_tests(result, folder))
    return Generated(file=candidate, start_s=result.start_s, duration_s=result.duration_s)


def hung_in(workspace: Path, seed: int) -> list[str]:
    """The functions a run skipped because a call in them would not return (for the module's issues)."""
    summary = workspace / f"examples-{seed}" / "summary.json"
    return json.loads(summary.read_text()).get("hung", []) if summary.exists() else []


def _no_tests(result: sandbox.ExecResult, folder: Path) -> tuple[str, str]:
    if result.timed_out:
        return "timeout", "the examples generator did not finish in time"
    if result.oom_killed:
        return "sandbox", "the examples generator was killed at the sandbox's memory limit"
    log = folder / "driver.log"
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    last = (lines or [result.output.strip()] or [""])[-1][:300]
    return "internal", f"the examples generator produced no tests: {last or 'no example ran and added coverage'}"


def _holds(node: ast.stmt, lines: set[int]) -> bool:
    return bool(lines.intersection(range(node.lineno, (node.end_lineno or node.lineno) + 1)))


def functions_at(source: str, lines: Iterable[int]) -> list[str]:
    """The public functions, classes and `Class.method`s (the driver's target names) that hold one of `lines`."""
    wanted, found = set(lines), []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if not isinstance(node, scopes) or node.name.startswith("_") or not _holds(node, wanted):
            continue
        inner = node.body if isinstance(node, ast.ClassDef) else []
        methods = [m.name for m in inner if isinstance(m, scopes[:2]) and _holds(m, wanted)]
        # A private method is no target of its own: its class, whose public methods call it, is.
        public = [f"{node.name}.{name}" for name in methods if not _private(name)]
        found += [node.name] if not methods or len(public) < len(methods) else public
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def aimed_at(job, covered: Covered, feedback: FilterResult | None) -> list[str] | None:
    """What an examples run searches: the functions holding the changed lines (--changed-since) no test
    runs yet and those holding a mutant the kept tests let through; None (all) when there are neither."""
    statements = set(job.baseline.statements) if job.baseline else set()
    changed = statements.intersection(job.changed_lines or []) - covered.lines
    source = job.module.file.read_text(errors="replace")
    found = functions_at(source, changed) + survivor_functions(job, feedback)
    return list(dict.fromkeys(found)) or None


def survivor_functions(job, feedback: FilterResult | None) -> list[str]:
    lines = {m.line for m in feedback.survivors} if feedback else set()
    return functions_at(job.module.file.read_text(errors="replace"), lines) if lines else []


def examples_round(job, result: ModuleResult, share: float = 1.0) -> Round:
    """A Round (tasks/generators/rounds.py) of the examples generator, on `share` of the time left,
    aimed at changed lines and surviving mutants where there are (`aimed_at`)."""

    def run(round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        budget = max(5.0, remaining * share - STARTUP_ALLOWANCE_S - HANG_S)
        generated = generate_with_examples(
            job.sandbox,
            job.project,
            job.module,
            job.workspace,
            seed=round_no,
            budget_s=budget,
            targets=aimed_at(job, covered, feedback),
        )
        result.timings.generate += generated.duration_s - generated.start_s
        result.timings.sandbox_start += generated.start_s
        for name in hung_in(job.workspace, round_no):
            result.validation.issues.append(
                Issue(level="WARNING", rule="generator-hang", message=f"a call of {name} did not return: not tested")
            )
        return generated.file

    return run


def offline_round(job, result: ModuleResult, then: Round, share: float = EXAMPLES_SHARE) -> Round:
    """The examples generator first, on `share` of the module's time, then `then` (Pynguin's round)
    for every later round: each round's tests go through the same filter against what the rounds
    before kept, so the module keeps the best of both, test by test, and Pynguin runs only while
    the targets are not reached. A later round with surviving mutants in functions no examples run
    was aimed at yet runs the examples generator on them too, before `then`, in one file. When the
    examples generator records nothing, or the module gets one round only, `then` runs in the first
    round too (one round: both files merged)."""
    first = examples_round(job, result, share)
    aimed: set[str] = set()

    def run(round_no: int, remaining: float, covered: Covered, feedback: FilterResult | None) -> Path:
        started = time.monotonic()
        if round_no > 1:
            targets = set(survivor_functions(job, feedback)) - aimed
            if not targets:
                return then(round_no, remaining, covered, feedback)
            aimed.update(targets)
        try:
            examples = first(round_no, remaining, covered, feedback)
        except ModuleError:
            return then(round_no, remaining - (time.monotonic() - started), covered, feedback)
        if round_no == 1 and job.max_iterations > 1:
            return examples
        try:
            other = then(round_no, remaining - (time.monotonic() - started), covered, feedback)
        except ModuleError:
            return examples
        return merge([examples, other], job.workspace / f"test_covsweep_offline_{round_no}.py")

    return run


def merge(files: list[Path], into: Path) -> Path:
    """Several candidate files as one, every test kept, clashing names renamed."""
    builder = TestFileBuilder()
    for path in files:
        source = path.read_text()
        builder.add(source, set(test_names(source)))
    into.write_text(builder.render())
    return into
