"""Rewriting must not change what a test does. The original and the rewritten file run in one sandbox,
each in its own pytest process under coverage with per-test contexts (both forked from one interpreter
that imported pytest and coverage.py once, with one hash seed); tests pair up by their place in
the file (a rewrite renames tests but never adds, drops or reorders one), and a pair must end alike and
cover the same lines and arcs of the project."""

from __future__ import annotations

import time
from pathlib import Path

from tasks.core.models import Module, ProjectRef, SandboxConfig
from tasks.core.testfiles import test_names
from tasks.coverage.data import Arc, coverage_by_test, write_rcfile
from tasks.coverage.readable.rewrite import Rewritten, rewrite
from tasks.project.style import ProjectStyle
from tasks.sandbox import runner as sandbox
from tasks.sandbox.pytest_support import forked_coverage_command, junit_outcomes, pytest_options, run_in_target

STEM = "test_covsweep_readable"  # both files carry it: their tests' contexts and JUnit names compare as they are
SIDES = ("original", "rewritten")
Trace = tuple[bool | None, dict[str, tuple[set[int], set[Arc]]]]


def _traces(folder: Path, names: list[str]) -> list[Trace]:
    """Per test, in file order: passed (None: it never ran), and what it covered per file."""
    outcomes = junit_outcomes(folder / "junit.xml", STEM)
    data = folder / ".coverage"
    covered = coverage_by_test(data) if data.exists() else {}
    return [(outcomes.get(name), covered.get(f"{STEM}.{name}", {})) for name in names]


def changed_tests(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    original: Path,
    rewritten: Path,
    workspace: Path,
    timeout: float,
) -> list[str]:
    """The tests of `original` whose outcome or covered lines and arcs differ in `rewritten` (all of
    them when the two cannot be compared: other test counts, a sandbox that timed out)."""
    texts = {"original": original.read_text(), "rewritten": rewritten.read_text()}
    names = {side: test_names(text) for side, text in texts.items()}
    if len(names["original"]) != len(names["rewritten"]):
        return names["original"]
    runs = []
    for side in SIDES:
        folder = sandbox.prepare_workspace(workspace / side)
        for stale in (folder / ".coverage", folder / "junit.xml"):
            stale.unlink(missing_ok=True)
        test_file = folder / f"{STEM}.py"
        test_file.write_text(texts[side])
        rcfile = write_rcfile(folder, project, per_test=True)
        runs.append((rcfile, folder / "pytest.log", pytest_options([test_file], folder / "junit.xml")))
    command = f"PYTHONHASHSEED=1 {forked_coverage_command(workspace, runs)}"
    result = run_in_target(config, project, [command], workspace=workspace, timeout=timeout)
    if result.timed_out:
        return names["original"]
    before = _traces(workspace / "original", names["original"])
    after = _traces(workspace / "rewritten", names["rewritten"])
    return [
        name for name, old, new in zip(names["original"], before, after, strict=True) if old[0] is None or old != new
    ]


def make_readable(
    config: SandboxConfig,
    project: ProjectRef,
    module: Module,
    source: str,
    style: ProjectStyle,
    workspace: Path,
    timeout: float,
) -> Rewritten:
    """`source` rewritten, checked in the sandbox: a test whose rewrite changed what it does keeps its
    original text; when even that does not compare equal, `source` as it was."""
    deadline = time.monotonic() + timeout
    workspace = sandbox.prepare_workspace(workspace / "readable")
    keep: set[str] = set()
    for _ in range(2):
        rewritten = rewrite(source, module=module, style=style, keep=keep)
        if rewritten.source == source:
            return rewritten
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        paths = _write(workspace, source, rewritten.source)
        changed = changed_tests(config, project, module, *paths, workspace, remaining)
        if not changed:
            return rewritten
        keep |= set(changed)
    return Rewritten(source=source)


def _write(workspace: Path, original: str, rewritten: str) -> tuple[Path, Path]:
    paths = workspace / "original.py", workspace / "rewritten.py"
    for path, text in zip(paths, (original, rewritten), strict=True):
        path.write_text(text)
    return paths
