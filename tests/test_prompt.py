"""The LLM prompt: module source, imported project names, test style, missed lines and branches,
all from a small project whose coverage coverage.py really measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tasks.core.markers import MARKER
from tasks.core.models import FileCoverage, Mutant
from tasks.coverage.data import read_json_report
from tasks.llm.prompts import (
    SYSTEM,
    corrective_message,
    describe_missing,
    initial_messages,
    missed_segments,
    missing,
    refinement_message,
    surviving_mutants,
)
from tasks.project.discover import discover
from tasks.sandbox.pytest_support import sandbox_env
from tests.helpers import write_project

UTIL = '''
"""Helpers."""
from dataclasses import dataclass

RATE = 3


@dataclass
class Config:
    """How to scale."""
    factor: int = 2
    name: str = "x"

    def scaled(self, value: int) -> int:
        return value * self.factor

    def _private(self):
        return 1


def helper(x: int, *, twice: bool = False) -> int:
    """Double or not."""
    body_only_marker = 42
    return x * 2 if twice else x
'''

CALC = '''
"""Calculator."""
from tinypkg.util import Config, helper
from .util import RATE
import os


def add(a, b):
    return a + b


def classify(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"


class Meter:
    def __init__(self):
        self.total = 0

    def feed(self, n):
        if n > 100:
            raise ValueError("too big")
        self.total += helper(n) * RATE
        return self.total
'''

OWN_TEST = """
from tinypkg.calc import add, classify


def test_add():
    assert add(1, 2) == 3


def test_positive():
    assert classify(5) == "positive"
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(project, module calc, its FileCoverage) with coverage.py's real numbers."""
    root = write_project(
        tmp_path_factory.mktemp("p") / "tiny",
        {
            "src/tinypkg/__init__.py": "",
            "src/tinypkg/util.py": UTIL,
            "src/tinypkg/calc.py": CALC,
            "tests/test_calc.py": OWN_TEST,
            "tests/generated/test_tinypkg_util.py": f"{MARKER} for tinypkg/util.py (sha256 0)\ndef test_x():\n    pass\n",
        },
    )
    project = discover(root, None)
    env = {**os.environ, **sandbox_env(project)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--branch",
            f"--source={project.import_root}",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_calc.py",
        ],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", "-o", "cov.json"], cwd=root, env=env, check=True, capture_output=True
    )
    coverage = read_json_report(root / "cov.json", project, root)
    module = next(m for m in project.modules if m.dotted == "tinypkg.calc")
    return project, module, coverage.files["tinypkg/calc.py"]


def line_of(source: str, text: str) -> int:
    return next(no for no, line in enumerate(source.splitlines(), 1) if text in line)


def test_missing_is_statements_and_arcs_not_executed(measured):
    _, module, cov = measured
    source = module.file.read_text()
    lines, branches = missing(cov)
    assert line_of(source, 'return "negative"') in lines
    assert line_of(source, "def add") not in lines
    assert (line_of(source, "if n < 0"), line_of(source, 'return "negative"')) in branches
    # a line never reached misses all its branches: its missed lines already say so
    assert not [b for b in branches if b[0] == line_of(source, "if n > 100")]


def test_describe_missing_uses_ranges_and_exit():
    assert describe_missing([3, 4, 5, 9], [(10, 12), (14, -13)]) == "lines 3-5, 9 and branches 10->12, 14->exit"
    assert describe_missing([7], []) == "line 7"
    assert describe_missing([], []) == "nothing"


def test_the_first_prompt_has_system_rules_and_one_user_message(measured):
    project, module, cov = measured
    messages = initial_messages(project, module, cov)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM
    assert "```python" in SYSTEM and "tmp_path" in SYSTEM and "network" in SYSTEM


def test_the_module_is_imported_by_its_dotted_name(measured):
    project, module, cov = measured
    user = initial_messages(project, module, cov)[1]["content"]
    assert "`import tinypkg.calc`" in user and "`from tinypkg.calc import ...`" in user
    assert "src.tinypkg" not in user and "import src" not in user


def test_a_test_written_that_way_runs_under_the_sandbox_environment(measured, tmp_path):
    """What the prompt tells the model to write imports under tasks.pytest_support.sandbox_env."""
    project, module, cov = measured
    user = initial_messages(project, module, cov)[1]["content"]
    statement = re.search(r"`(from tinypkg\.calc import) \.\.\.`", user).group(1) + " classify"
    test = tmp_path / "test_generated.py"
    test.write_text(f"{statement}\n\n\ndef test_zero():\n    assert classify(0) == 'zero'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | sandbox_env(project)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=project.target,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_source_is_shown_with_line_numbers(measured):
    project, module, cov = measured
    user = initial_messages(project, module, cov)[1]["content"]
    source = module.file.read_text()
    no = line_of(source, "def classify")
    assert re.search(rf"^\s*{no}  def classify\(n\):$", user, re.M)


def test_imported_project_names_are_shown_as_signatures_not_bodies(measured):
    project, module, cov = measured
    # What a module job carries: the project's place, not its module list (found through the files).
    user = initial_messages(project.ref(), module, cov)[1]["content"]
    assert 'def helper(x: int, *, twice: bool=False) -> int: """Double or not."""' in user
    assert "class Config:" in user and "factor: int = 2" in user
    assert "def scaled(self, value: int) -> int" in user
    assert "RATE = 3" in user  # through the relative import
    assert user.count("# from tinypkg.util") == 1
    assert "_private" not in user and "body_only_marker" not in user


def test_the_project_test_style_sample_is_its_own_first_test_file(measured):
    project, module, cov = measured
    user = initial_messages(project, module, cov)[1]["content"]
    assert "(tests/test_calc.py)" in user
    assert "def test_positive():" in user
    assert MARKER not in user  # covsweep's own earlier files are not the project's style


def test_missed_lines_are_marked_and_numbered_in_their_function(measured):
    project, module, cov = measured
    source = module.file.read_text()
    text = source.splitlines()
    segments = missed_segments(source, cov)
    lines, branches = missing(cov)
    assert lines and branches, "the fixture's module must miss lines and branches"
    width = len(str(len(text)))
    for no in lines:
        assert f">> {no:>{width}}  {text[no - 1]}" in segments
    feed = line_of(source, "def feed")
    assert f"   {feed:>{width}}  {text[feed - 1]}" in segments  # context, not marked
    assert "(Meter)" in segments and "(classify)" in segments  # a method: with its small class
    branch_line = line_of(source, "if n < 0")
    assert re.search(rf"{branch_line}  \s*if n < 0:  # branch never taken: to line {branch_line + 1}", segments)
    assert "def add" not in segments  # fully covered function: not shown
    user = initial_messages(project, module, cov)[1]["content"]
    assert segments in user and describe_missing(lines, branches) in user


def test_a_long_module_is_shown_as_an_outline_plus_the_missed_segments(measured):
    project, module, cov = measured
    user = initial_messages(project, module, cov, max_source_lines=5)[1]["content"]
    assert "too long to show whole" in user
    assert "def classify(n): ..." in user
    assert ">> " in user


def test_nothing_missed_asks_for_behaviour_tests(measured):
    project, module, cov = measured
    full = FileCoverage(**(cov.model_dump() | {"executed_lines": cov.statements, "executed_branches": cov.branches}))
    user = initial_messages(project, module, full)[1]["content"]
    assert "execute every line and branch" in user and ">> " not in user


def test_refinement_feeds_back_failures_kept_tests_and_what_is_still_missed(measured):
    project, module, cov = measured
    source = module.file.read_text()
    negative = line_of(source, 'return "negative"')
    now = FileCoverage(**(cov.model_dump() | {"executed_lines": sorted(set(cov.executed_lines) | {negative})}))
    failures = "FAILED test_generated.py::test_feed - AssertionError: assert 6 == 2"
    message = refinement_message(module, now, failures, kept=["test_negative"])
    assert message["role"] == "user"
    content = message["content"]
    assert failures in content
    assert "test_negative" in content
    assert f">> {negative} " not in content and f">> {negative:>2} " not in content
    zero = line_of(source, 'return "zero"')
    assert re.search(rf">> +{zero}  ", content)
    assert "tinypkg.calc" in content


def _survivors(module, source: str) -> list[Mutant]:
    zero = line_of(source, 'return "zero"')
    return [
        Mutant(
            name="tinypkg.calc.x_classify__mutmut_3",
            file=module.path,
            line=zero,
            original='return "zero"',
            mutated='return "XXzeroXX"',
            status="survived",
        ),
        Mutant(
            name="tinypkg.calc.x_classify__mutmut_9",
            file=module.path,
            line=zero - 1,
            original="if n == 0:",
            mutated="if n != 0:",
            status="survived",
        ),
    ]


def test_refinement_lists_surviving_mutants_one_line_each(measured):
    project, module, cov = measured
    source = module.file.read_text()
    survivors = _survivors(module, source)
    content = refinement_message(module, cov, "", survivors=survivors)["content"]
    section = content.split("## Surviving mutants\n", 1)[1]
    listed = [line for line in section.splitlines() if line.startswith("- ")]
    assert listed == [f"- {m.file}:{m.line}: `{m.original}` -> `{m.mutated}`" for m in survivors]
    assert "pass on the original code and fail on the mutated code" in section
    # The first prompt of a module lists none; a refinement without survivors neither.
    assert "Surviving mutants" not in initial_messages(project, module, cov)[1]["content"]
    assert "Surviving mutants" not in refinement_message(module, cov, "")["content"]


def test_a_long_list_of_mutants_is_cut_and_says_how_many_more(measured):
    _, module, _ = measured
    many = [
        Mutant(name=f"m{n}", file=module.path, line=n, original="a < b", mutated="a <= b", status="survived")
        for n in range(1, 41)
    ]
    section = surviving_mutants(many, limit=25)
    assert len([line for line in section.splitlines() if line.startswith("- ")]) == 26
    assert section.splitlines()[-1] == "- ... and 15 more"
    assert surviving_mutants([]) == ""


def test_a_long_failure_output_is_cut_to_its_end(measured):
    _, module, cov = measured
    failures = "x" * 10_000 + "\nTHE END"
    content = refinement_message(module, cov, failures, max_failure_chars=500)["content"]
    assert "THE END" in content and "x" * 600 not in content


def test_the_corrective_message_says_why(measured):
    message = corrective_message("the answer has no code, only prose")
    assert message["role"] == "user"
    assert "only prose" in message["content"] and "```python" in message["content"]


def test_missed_changed_lines_come_first_under_their_own_heading(measured):
    project, module, cov = measured
    source = module.file.read_text()
    # The change: Meter.feed's raise (missed) and add's return (executed), as --changed-since finds them.
    raised, added = line_of(source, 'raise ValueError("too big")'), line_of(source, "return a + b")
    negative = line_of(source, 'return "negative"')

    [_, user] = initial_messages(project, module, cov, changed_lines=[raised, added])
    refined = refinement_message(module, cov, "", changed_lines=[raised, added])["content"]

    for text in (user["content"], refined):
        changed_part, other_part = text.split("## Changed lines not executed yet")[1].split("## Other missed lines")
        assert f"This change added or modified line {raised}," in changed_part
        assert f">> {raised:>2}" in changed_part and f">> {negative:>2}" not in changed_part
        assert f">> {negative:>2}" in other_part and f">> {raised:>2}" not in other_part


def test_without_a_change_to_aim_at_there_is_no_changed_heading(measured):
    project, module, cov = measured
    source = module.file.read_text()
    executed_change = [line_of(source, "return a + b")]
    for changed in (None, executed_change):
        [_, user] = initial_messages(project, module, cov, changed_lines=changed)
        assert "## Changed lines" not in user["content"] and "## Other missed" not in user["content"]
        assert "The existing tests do not execute lines" in user["content"]


def test_unittest_prompts_ask_for_testcase_classes_run_by_unittest(measured):
    project, module, cov = measured
    [system, user] = initial_messages(project, module, cov, framework="unittest")
    assert "unittest.TestCase" in system["content"] and "pytest is not installed" in system["content"]
    assert "`python -m unittest` from the project's root" in user["content"]
    assert system["content"] != SYSTEM
