"""The examples generator: recorded calls written as plain asserts that pass without Hypothesis,
its watchdog, and (Docker) a regex-heavy module where it beats Pynguin alone on the same budget."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import multiprocessing
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tasks.core import testfiles
from tasks.core.models import ModuleResult, Mutant, SandboxConfig
from tasks.coverage.filtering import Covered, FilterResult, filter_tests
from tasks.coverage.measurement import measure
from tasks.generators import examples_driver as driver
from tasks.generators import examples_emit as emit
from tasks.generators.examples import DRIVER_FILES, HERE, functions_at, generate_with_examples, offline_round
from tasks.generators.pynguin import generate_with_pynguin
from tasks.project.discover import discover
from tasks.sandbox.runner import prepare_workspace
from tests.helpers import write_project

# A module of the kind Pynguin stays low on: every branch wants a string that matches a pattern.
TOKENS = """
import re

EMAIL = re.compile(r"^[a-z0-9._+-]+@[a-z0-9-]+\\.[a-z]{2,}$")
VERSION = re.compile(r"^v?(\\d+)\\.(\\d+)\\.(\\d+)(?:-(alpha|beta|rc)\\.?(\\d+)?)?$")
HASHTAG = re.compile(r"^#[A-Za-z][A-Za-z0-9_]{1,30}$")
DATE = re.compile(r"^(\\d{4})-(\\d{2})-(\\d{2})$")


def kind(token: str) -> str:
    token = token.strip()
    if not token:
        return "empty"
    if EMAIL.match(token):
        return "email"
    version = VERSION.match(token)
    if version:
        if version.group(4) == "rc":
            return "release-candidate"
        if version.group(4):
            return "prerelease"
        return "version"
    date = DATE.match(token)
    if date:
        if int(date.group(2)) > 12:
            return "bad-date"
        return "date"
    if HASHTAG.match(token):
        return "hashtag"
    return "word"


def version_key(token: str) -> tuple:
    version = VERSION.match(token)
    if not version:
        raise ValueError(f"not a version: {token!r}")
    major, minor, patch, stage, serial = version.groups()
    rank = {"alpha": 0, "beta": 1, "rc": 2, None: 3}[stage]
    return (int(major), int(minor), int(patch), rank, int(serial or 0))
"""

DOCUMENTED = '''
"""Helpers with examples.

>>> shout("hi")
'HI!'
"""
import re


class Greeting:
    def __init__(self, name: str):
        self.name = name
        self.words = name.split()

    def __repr__(self):
        return f"Greeting({self.name!r})"


def shout(text):
    """
    >>> shout("")
    ''
    >>> print(shout("x"))
    X!
    """
    if not text:
        return ""
    return text.upper() + "!"


def parse(text):
    """
    >>> parse("12")  # digits only
    12
    >>> parse("x")
    Traceback (most recent call last):
    ValueError: not a number: 'x'
    """
    if not text.isdigit():
        raise ValueError(f"not a number: {text!r}")
    return int(text)


def slow(text):
    """A regular expression that backtracks exponentially: the per-call alarm stops it.

    >>> slow("a" * 40 + "!")
    False
    """
    return re.match(r"^(a+)+$", text) is not None


def stuck():
    """Deaf to the alarm, as code that never returns to the interpreter is: only a kill stops it.

    >>> stuck()
    """
    import signal, time

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(600)
'''


def python_without_hypothesis() -> str:
    """This interpreter, once it is shown not to have Hypothesis or CrossHair."""
    probe = "import importlib.util as u; print(u.find_spec('hypothesis'), u.find_spec('crosshair'))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split() == [
        "None",
        "None",
    ]
    return sys.executable


def run_pytest(test_file: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python_without_hypothesis(), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


# ---------------------------------------------------------------- literals


@pytest.mark.parametrize(
    "value",
    [
        'it\'s "quoted"\n\t\x00',
        "ύ",
        b"\x00\xff",
        -3,
        10**30,
        1.5,
        -0.0,
        math.inf,
        True,
        None,
        (1,),
        (),
        [1, "a", None],
        {"k": [1, 2], 3: (4,)},
        {3, 1, 2},
        set(),
        frozenset({"a"}),
    ],
)
def test_a_literal_evaluates_back_to_an_equal_value(value):
    source = emit.literal(value)
    assert source is not None
    rebuilt = eval(source)  # noqa: S307 - the point of the test
    assert rebuilt == value
    assert type(rebuilt) is type(value)


@pytest.mark.parametrize("value", [math.nan, object(), [object()], "x" * 1000, list(range(100)), Path("/x")])
def test_values_without_a_faithful_literal_get_none(value):
    assert emit.literal(value) is None


def test_a_repr_with_an_address_is_not_asserted_on():
    assert emit.stable_repr(object()) is None
    assert emit.describe(object(), "m", "m") == {"kind": "opaque"}
    match = re.match("a", "ab")
    assert emit.describe(match, "m", "m") == {"kind": "repr", "source": repr(repr(match))}


def test_a_value_whose_repr_rebuilds_it_is_written_with_its_import():
    assert emit.describe(Path("/x"), "m", "m") == {
        "kind": "value",
        "source": "PosixPath('/x')",
        "imports": ["from pathlib import PosixPath"],
    }
    assert emit.writable(datetime.date(2020, 1, 2), "m", "m") == ("datetime.date(2020, 1, 2)", ["import datetime"])
    assert emit.writable(decimal.Decimal("1.5"), "m", "m") == ("Decimal('1.5')", ["from decimal import Decimal"])


def test_special_methods_are_written_as_operators():
    call = {"receiver": "duration", "args": ["2"], "kwargs": {}}
    assert emit.call_source(call | {"method": "__add__"}) == "(duration + 2)"
    assert emit.call_source(call | {"method": "__contains__"}) == "(2 in duration)"
    assert emit.call_source(call | {"method": "__str__", "args": []}) == "str(duration)"
    assert emit.call_source(call | {"method": "scale"}, receiver="(Duration(1))") == "(Duration(1)).scale(2)"


# ---------------------------------------------------------------- what the module offers


def test_the_pool_takes_patterns_from_regex_calls_and_rule_tables():
    pool = driver.Pool(
        textwrap.dedent(
            """
            import re
            RULES = [(r"(?i)(quiz)$", r"\\1zes"), ("plain", "text")]
            def f(s):
                return re.sub(r"\\s+", " ", s) if re.match("^[a-z]+@x$", s) else 42
            """
        )
    )
    assert pool.patterns == sorted(["(?i)(quiz)$", r"\s+", "^[a-z]+@x$"])
    assert {"plain", "text", " "} <= set(pool.strings)
    assert not set(pool.patterns) & set(pool.strings)
    assert 42 in pool.ints
    assert "quiz" not in pool.words  # words come from the plain strings, not the patterns


def test_the_tracer_records_arcs_of_one_file_only():
    namespace: dict = {}
    exec(compile("def f(x):\n    if x:\n        return 1\n    return 2\n", "/virtual/m.py", "exec"), namespace)
    tracer = driver.ArcTracer("/virtual/m.py")
    with tracer.tracing() as arcs:
        namespace["f"](True)
        json.dumps({})  # another file: not traced
    assert arcs == {(-1, 2), (2, 3), (3, -1)}


# ---------------------------------------------------------------- written tests pass without Hypothesis


def test_recorded_cases_render_to_tests_that_pass_without_hypothesis(tmp_path):
    write_project(tmp_path, {"pkg/__init__.py": "", "pkg/helpers.py": DOCUMENTED})
    call = {"func": "helpers.parse", "args": ["'7'"], "kwargs": {}}
    cases = [
        {
            "origin": "search",
            "target": "parse",
            "call": call,
            "instance": None,
            "outcome": {"kind": "value", "source": "7"},
        },
        {
            "origin": "search",
            "target": "parse",
            "call": call | {"args": ["'x'"]},
            "instance": None,
            "outcome": {"kind": "raises", "exception": "ValueError"},
        },
        {
            "origin": "search",
            "target": "Greeting",
            "call": {"func": "helpers.Greeting", "args": [], "kwargs": {"name": "'a b'"}},
            "instance": None,
            "outcome": {"kind": "repr", "source": repr("Greeting('a b')")},
            "attributes": {"name": "'a b'", "words": "['a', 'b']"},
        },
        {
            "origin": "doctest",
            "target": "shout",
            "imports": ["from pkg.helpers import shout"],
            "steps": [
                {"kind": "statement", "source": "word = shout('x')"},
                {"kind": "value", "source": "word", "outcome": {"kind": "value", "source": "'X!'"}},
            ],
        },
        {"origin": "search", "target": "shout", "call": call, "instance": None, "outcome": {"kind": "opaque"}},
    ]
    text = emit.render("pkg.helpers", "helpers", cases)
    assert "hypothesis" not in text
    assert text.count("\ndef test_") == 4  # the opaque case asserts nothing: left out
    assert "assert result.words == ['a', 'b']" in text
    test_file = tmp_path / "test_helpers_generated.py"
    test_file.write_text(text)
    done = run_pytest(test_file, tmp_path)
    assert done.returncode == 0, done.stdout
    assert "4 passed" in done.stdout


def run_driver(tmp_path: Path, project: Path, module: str, budget: float = 20) -> dict:
    work = tmp_path / "work"
    work.mkdir()
    for name in DRIVER_FILES:
        shutil.copy(HERE / name, work / name)
    job = {
        "module": module,
        "alias": module.rsplit(".", 1)[-1],
        "budget_s": budget,
        "seed": 1,
        "cases": str(work / "cases.jsonl"),
        "out": str(tmp_path / "test_generated.py"),
        "summary": str(work / "summary.json"),
        "readmes": [],
        "hang_s": 2.0,
    }
    (work / "job.json").write_text(json.dumps(job))
    subprocess.run(
        [python_without_hypothesis(), str(work / "examples_driver.py"), str(work / "job.json")],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=budget + 60,
    )
    return json.loads((work / "summary.json").read_text())


def test_docstring_examples_become_asserts_and_a_hanging_one_is_skipped(tmp_path):
    project = write_project(tmp_path / "project", {"pkg/__init__.py": "", "pkg/helpers.py": DOCUMENTED})
    summary = run_driver(tmp_path, project, "pkg.helpers")

    # The watchdog killed the child stuck in stuck() and went on without it; slow() ran into the
    # per-call alarm instead: no test of it either way.
    assert summary["hung"] == ["example:stuck"]
    assert summary["notes"] == ["Hypothesis is not installed: docstring examples only"]
    text = (tmp_path / "test_generated.py").read_text()
    assert "assert shout('hi') == 'HI!'" in text
    assert "assert shout('') == ''" in text
    assert "assert parse('12') == 12" in text  # its comment left out: it would swallow the assertion
    assert "assert str(shout('x')) == 'X!'" in text
    assert 'with pytest.raises(ValueError):\n        parse("x")' in text
    assert "slow(" not in text
    assert "stuck(" not in text
    done = run_pytest(tmp_path / "test_generated.py", project)
    assert done.returncode == 0, done.stdout
    assert f"{summary['cases']} passed" in done.stdout


# ---------------------------------------------------------------- in the sandbox, against Pynguin


@pytest.mark.docker
def test_on_a_regex_module_examples_beat_pynguin_alone_on_the_same_budget(docker_config, tmp_path):
    project = discover(write_project(tmp_path / "tokens", {"tokens/__init__.py": "", "tokens/kinds.py": TOKENS}))
    (tmp_path / "tokens").chmod(0o755)
    module = next(m for m in project.modules if m.path == "tokens/kinds.py")
    baseline = measure(docker_config, project, [], tmp_path / "baseline", 300).coverage.files[module.path]
    budget = 40

    def filtered_line_coverage(generated) -> tuple[float, list[str]]:
        kept = filter_tests(docker_config, project, module, generated.file, baseline, Covered.of(baseline), 3, 300)
        statements = set(baseline.statements)
        return 100 * len(kept.covered.lines & statements) / len(statements), kept.kept

    workspace = prepare_workspace(tmp_path / "ws-examples")
    mine = generate_with_examples(docker_config, project, module, workspace, seed=1, budget_s=budget - 8)
    pynguin = generate_with_pynguin(
        docker_config, project, module, prepare_workspace(tmp_path / "ws-pynguin"), seed=1, search_s=20, timeout=120
    )
    examples_line, examples_kept = filtered_line_coverage(mine)
    pynguin_line, _ = filtered_line_coverage(pynguin)

    assert mine.duration_s <= budget + 15  # its budget, plus the sandbox's start
    assert "hypothesis" not in mine.file.read_text()
    assert examples_kept
    # The filter counts lines run by tests, not at import: 7 of the 33 statements run at import.
    assert examples_line >= 70, (examples_line, pynguin_line)
    assert examples_line > pynguin_line + 15, (examples_line, pynguin_line)


# ---------------------------------------------------------------- the combined round


def offline_job(tmp_path: Path, source: str, max_iterations: int):
    project = discover(write_project(tmp_path / "project", {"pkg/__init__.py": "", "pkg/helpers.py": source}))
    module = next(m for m in project.modules if m.path == "pkg/helpers.py")
    return SimpleNamespace(
        sandbox=SandboxConfig(kind="local"),
        project=project,
        module=module,
        workspace=prepare_workspace(tmp_path / "ws"),
        max_iterations=max_iterations,
        baseline=None,
        changed_lines=None,
    )


def second_generator(job, calls: list[int]):
    """What Pynguin's round would hand back: a candidate file of its own, in the job's workspace."""

    def run(round_no, remaining, covered, feedback):
        calls.append(round_no)
        candidate = job.workspace / f"test_covsweep_{round_no}.py"
        candidate.write_text("from pkg import helpers\n\n\ndef test_shout():\n    assert helpers.shout('a') == 'A!'\n")
        return candidate

    return run


def test_the_combined_round_runs_examples_first_then_the_other_generator(tmp_path):
    job = offline_job(tmp_path, DOCUMENTED.replace("def stuck", "def _stuck"), max_iterations=3)
    calls: list[int] = []
    run = offline_round(
        job, ModuleResult(module="pkg/helpers.py", status="unchanged", success=True), second_generator(job, calls)
    )

    first = run(1, 60, Covered(), None)
    assert calls == []
    assert "def test_parse_docstring_example" in first.read_text()
    assert run(2, 60, Covered(), None).name == "test_covsweep_2.py"
    assert calls == [2]


def test_with_one_round_both_files_are_merged_and_run_without_hypothesis(tmp_path):
    job = offline_job(tmp_path, DOCUMENTED.replace("def stuck", "def _stuck"), max_iterations=1)
    calls: list[int] = []
    run = offline_round(
        job, ModuleResult(module="pkg/helpers.py", status="unchanged", success=True), second_generator(job, calls)
    )

    merged = run(1, 60, Covered(), None)
    assert calls == [1]
    names = testfiles.test_names(merged.read_text())
    assert "test_shout" in names and "test_parse_docstring_example" in names
    done = run_pytest(merged, job.project.target)
    assert done.returncode == 0, done.stdout


def test_when_examples_record_nothing_the_other_generator_has_the_first_round(tmp_path):
    job = offline_job(tmp_path, "def shout(text):\n    return text.upper() + '!'\n", max_iterations=3)
    calls: list[int] = []
    run = offline_round(
        job, ModuleResult(module="pkg/helpers.py", status="unchanged", success=True), second_generator(job, calls)
    )

    assert run(1, 60, Covered(), None).name == "test_covsweep_1.py"
    assert calls == [1]


def test_lines_name_the_functions_and_methods_that_hold_them_a_private_method_its_class():
    source = DOCUMENTED.strip()
    lines = source.splitlines()

    def line_of(text: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if text in line)

    assert functions_at(source, [line_of("return text.upper()")]) == ["shout"]
    assert functions_at(source, [line_of("self.words = ")]) == ["Greeting.__init__"]
    assert functions_at(source, [line_of("raise ValueError"), line_of("return text.upper()")]) == ["shout", "parse"]
    assert functions_at(source, [line_of("import re")]) == []
    private = "class Box:\n    def _check(self):\n        return 1\n\n    def size(self):\n        return 2\n"
    assert functions_at(private, [3]) == ["Box"]


def survivors_in(job, name: str) -> FilterResult:
    """What the module task hands a later round: a mutant the kept tests let through, inside `name`."""
    lines = job.module.file.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.startswith(f"def {name}(")) + 1
    mutant = Mutant(name="m1", file=job.module.path, line=line, original="a", mutated="b", status="survived")
    return FilterResult(
        kept=[], counts={}, covered=Covered(), output="", sandbox_start_s=0, duration_s=0, survivors=[mutant]
    )


def test_a_later_round_with_survivors_aims_examples_at_their_function_once_and_merges_the_other_file(tmp_path):
    job = offline_job(tmp_path, DOCUMENTED.replace("def stuck", "def _stuck"), max_iterations=3)
    calls: list[int] = []
    run = offline_round(
        job, ModuleResult(module="pkg/helpers.py", status="unchanged", success=True), second_generator(job, calls)
    )
    feedback = survivors_in(job, "parse")

    merged = run(2, 60, Covered(), feedback)
    names = testfiles.test_names(merged.read_text())
    assert calls == [2]
    # The examples run searched parse alone: shout's docstring is replayed, the search is parse's only.
    assert "test_shout" in names and "test_parse_docstring_example" in names
    assert json.loads((job.workspace / "examples-2" / "job.json").read_text())["targets"] == ["parse"]
    # The same survivors again: the examples generator was aimed at them already, the other one runs alone.
    assert run(3, 60, Covered(), feedback).name == "test_covsweep_3.py"
    assert calls == [2, 3]


def _call_for(started, seconds: float | None) -> None:
    """A child in one call: asleep for `seconds` (no CPU), or spinning for good (None)."""
    started.value = time.monotonic()
    if seconds is not None:
        time.sleep(seconds)
        started.value = 0.0
        return
    while True:
        pass


@pytest.mark.parametrize("seconds, hung", [(1.2, False), (None, True)])
def test_the_watchdog_counts_cpu_not_waiting(seconds, hung):
    context = multiprocessing.get_context("fork")
    started = context.Value("d", 0.0, lock=False)
    child = context.Process(target=_call_for, args=(started, seconds))
    child.start()
    try:
        assert driver.watch(child, started, time.monotonic() + 30, hang_s=0.5) is hung
    finally:
        child.kill()
        child.join()
