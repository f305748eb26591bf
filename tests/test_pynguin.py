"""Pynguin in the sandbox: a run that hangs in the module's code (finding 6)."""

from __future__ import annotations

import ast
import time
import uuid

import pytest

from tasks.core.models import Issue, ModuleResult, SandboxConfig
from tasks.core.plan import ModuleJob
from tasks.coverage.filtering import Covered, filter_tests
from tasks.coverage.measurement import measure
from tasks.generators.pynguin import Aim, generate_with_pynguin, line_ranges
from tasks.generators.pynguin_hang import stuck, with_stack_watch
from tasks.generators.rounds import pynguin_round
from tasks.project.discover import discover
from tasks.sandbox import runner as sandbox
from tests.helpers import write_project

# A validator whose regular expression backtracks exponentially on any code but "": Pynguin calls
# it with a string at once, and re.match never gives the GIL back. clamp and grade are plain.
CODES = """
import re

PADDING = "a" * 40


def is_padded(code: str) -> bool:
    return re.match(r"^(a+)+$", PADDING + code) is not None


def check_code(code: str) -> str:
    if not is_padded(code):
        raise ValueError("bad code")
    return code


def clamp(value: int, low: int, high: int) -> int:
    if value < low:
        return low
    if value > high:
        return high
    return value


def grade(score: int) -> str:
    if score >= 90:
        return "A"
    if score >= 50:
        return "C"
    return "F"
"""


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_stack_watch_sees_a_forked_process_that_holds_the_gil_in_c_code(docker_config, tmp_path):
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    spin = workspace / "spin.py"
    spin.write_text('import os, re\nif os.fork() == 0:\n    re.match(r"^(a+)+$", "a" * 40 + "!")\nos.wait()\n')
    env = with_stack_watch(workspace / "watch", {})
    result = sandbox.run(docker_config, f'"$PY" {spin}', workspace=workspace, read_only=[], timeout=15, env=env)
    assert result.timed_out
    files = {path.name: path.read_text() for path in (workspace / "watch" / "stacks").glob("stack-*.txt")}
    assert len(files) == 2, files  # the parent's and its forked child's
    child = [stuck(text, str(spin)) for text in files.values() if text]
    assert len(child) == 1 and child[0] is not None, files
    assert child[0].dumps >= 2
    (re_file, _, re_function), spin_frame = child[0].frames
    assert re_file.endswith("/re/__init__.py") and re_function == "match"
    assert spin_frame == (str(spin), 3, "<module>")


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_pynguin_that_hangs_is_stopped_and_tried_again_without_the_functions_it_hung_in(docker_config, tmp_path):
    project = discover(write_project(tmp_path / "codes", {"codes.py": CODES}))
    module = project.modules[0]
    baseline = measure(docker_config, project, [], tmp_path / "baseline", timeout=120).coverage.files["codes.py"]
    job = ModuleJob(
        project=project,
        module=module,
        baseline=baseline,
        generator="pynguin",
        coverage_target=100,
        max_iterations=1,
        reruns=1,
        timeout=150,
        sandbox=docker_config,
        workspace=sandbox.prepare_workspace(tmp_path / "ws"),
        fingerprint=uuid.uuid4().hex,
    )
    result = ModuleResult(module=module.path, status="unchanged", success=True, generator="pynguin")
    started = time.monotonic()
    candidate = pynguin_round(job, result)(1, 150.0, Covered.of(baseline), None)
    seconds = time.monotonic() - started
    assert result.validation.issues == [
        Issue(
            level="WARNING",
            rule="pynguin-hang",
            message="Pynguin hung in codes.is_padded (line 7 of codes.py, in re/__init__.py:166 in match), "
            "beyond its own per-test timeout; generated again without codes.is_padded, codes.check_code: "
            "these have no generated tests",
        )
    ]
    feedback = filter_tests(docker_config, project, module, candidate, baseline, Covered.of(baseline), 1, 60)
    tree = ast.parse(candidate.read_text())
    kept = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in feedback.kept]
    called = {
        call.func.attr
        for test in kept
        for call in ast.walk(test)
        if isinstance(call, ast.Call) and hasattr(call.func, "attr")
    }
    assert {"clamp", "grade"} <= called, candidate.read_text()
    assert not {"is_padded", "check_code"} & called
    clamp = next(node for node in ast.parse(CODES.strip()).body if getattr(node, "name", "") == "clamp")
    assert {node.lineno for node in clamp.body} & feedback.covered.lines
    print(f"hang found, retried and generated in {seconds:.0f}s")


def test_lines_to_cover_are_passed_as_pynguins_ranges():
    assert line_ranges([9, 3, 4, 5, 4, 12, 13]) == ["3-5", "9", "12-13"]
    assert Aim(lines=[3, 4, 7], plateau_at=80.0).args() == [
        *("--only-cover-line-ranges", "3-4", "7"),
        *("--minimum-coverage", "80", "--minimum-plateau-iterations", "20"),
    ]
    assert Aim().args() == []


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_pynguin_failing_on_its_line_ranges_runs_again_on_the_whole_module(docker_config, tmp_path):
    plain = CODES[CODES.index("def clamp") :]
    project = discover(write_project(tmp_path / "grades", {"grades.py": plain}))
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    # Lines the module does not have: Pynguin finds nothing to cover there and stops at once.
    aim = Aim(lines=[900, 901], plateau_at=80.0)
    generated = generate_with_pynguin(
        docker_config, project, project.modules[0], workspace, seed=1, search_s=10, timeout=200, aim=aim
    )
    assert not list((workspace / "pynguin-1").glob("test_*.py"))
    assert "contains nothing we can" in (workspace / "pynguin-1.log").read_text()
    called = {
        node.func.attr
        for node in ast.walk(ast.parse(generated.file.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert {"clamp", "grade"} & called, generated.file.read_text()


@pytest.mark.timeout(300)
def test_pynguin_ending_without_tests_on_its_own_runs_again_with_another_seed(pynguin, tmp_path):
    """Pynguin exiting without tests, not stopped by a hang, a timeout or the memory limit, is run once
    more; its first exit here is a crash put in front of the real Pynguin by a wrapper."""
    calls, crashed = tmp_path / "calls", tmp_path / "crashed"
    wrapper = tmp_path / "pynguin"
    wrapper.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        f'[ -e {crashed} ] || {{ touch {crashed}; echo "Traceback: an error of its own" >&2; exit 1; }}\n'
        f'exec {pynguin} "$@"\n'
    )
    wrapper.chmod(0o755)
    plain = CODES[CODES.index("def clamp") :]
    project = discover(write_project(tmp_path / "grades", {"grades.py": plain}))
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    config = SandboxConfig(kind="local", pynguin=str(wrapper))
    aim = Aim(lines=[2, 3], plateau_at=80.0)
    generated = generate_with_pynguin(
        config, project, project.modules[0], workspace, seed=1, search_s=5, timeout=200, aim=aim
    )
    first, second = (line.split() for line in calls.read_text().splitlines())
    assert first[first.index("--seed") + 1] == "1" and "--only-cover-line-ranges" in first
    assert second[second.index("--seed") + 1] == "1001" and "--only-cover-line-ranges" not in second
    assert "an error of its own" in (workspace / "pynguin-1.log").read_text()
    assert "def test_" in generated.file.read_text()
