"""TestFileBuilder and test_names: cutting generated files into single tests and putting the kept
ones back together into one file that pytest runs."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from tasks.core import testfiles
from tasks.coverage import testfile
from tasks.sandbox.pytest_support import junit_outcomes

ROUND_1 = textwrap.dedent('''
    """Round one."""
    import math

    import pytest


    def helper(x):
        return x + 1


    LIMIT = 10


    @pytest.mark.parametrize("value", [1, 2, 3])
    def test_case_0(value):
        assert helper(value) == value + 1


    def test_case_1():
        assert math.floor(2.5) == 2


    def test_case_2():
        assert False, "dropped: fails"


    class TestThing:
        def setup_method(self):
            self.base = LIMIT

        def test_keep(self):
            assert self.base == 10

        @pytest.mark.xfail(strict=True)
        def test_drop(self):
            assert False

        def test_keep_too(self):
            assert helper(self.base) == 11


    class TestAllDropped:
        def test_nothing(self):
            assert False


    class Builder:
        def test_not_collected(self):
            assert False
''')

ROUND_2 = textwrap.dedent('''
    """Round two."""
    import math

    import pytest


    def helper(x):
        return x + 1


    def test_case_0():
        assert math.ceil(2.5) == 3


    @pytest.mark.skipif(False, reason="never")
    def test_case_0_2():
        assert helper(0) == 1


    class TestThing:
        def test_keep(self):
            assert math.pi > 3
''')


def run_pytest(path, tmp_path):
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "addopts=",
            f"--junitxml={junit}",
            str(path),
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, junit_outcomes(junit, path.stem)


def test_test_names_are_what_pytest_collects(tmp_path):
    assert testfiles.test_names(ROUND_1) == [
        "test_case_0",
        "test_case_1",
        "test_case_2",
        "TestThing.test_keep",
        "TestThing.test_drop",
        "TestThing.test_keep_too",
        "TestAllDropped.test_nothing",
    ]
    path = tmp_path / "test_round_1.py"
    path.write_text(ROUND_1)
    _, outcomes = run_pytest(path, tmp_path)
    # pytest's own collection (parametrized cases folded) agrees with test_names.
    assert sorted(outcomes) == sorted(testfiles.test_names(ROUND_1))


def test_only_the_named_tests_are_kept(tmp_path):
    builder = testfile.TestFileBuilder()
    builder.add(ROUND_1, {"test_case_0", "test_case_1", "TestThing.test_keep", "TestThing.test_keep_too"})
    source = builder.render()

    tree = ast.parse(source)
    assert testfiles.test_names(source) == [
        "test_case_0",
        "test_case_1",
        "TestThing.test_keep",
        "TestThing.test_keep_too",
    ]
    assert builder.count() == 4
    # dropped tests are gone, with their decorators; the kept ones keep theirs
    assert "test_case_2" not in source and "test_drop" not in source and "xfail" not in source
    assert "TestAllDropped" not in source
    assert '@pytest.mark.parametrize("value", [1, 2, 3])' in source
    # what the kept tests need stays: imports, helpers, constants, setup methods, other classes
    names = {getattr(n, "name", None) for n in tree.body}
    assert {"helper", "Builder"} <= names
    assert "LIMIT = 10" in source and "def setup_method(self):" in source
    assert "import math" in source and "import pytest" in source


def test_nothing_kept_counts_zero():
    builder = testfile.TestFileBuilder()
    builder.add(ROUND_1, set())
    assert builder.body == []
    assert builder.count() == 0


def test_two_rounds_rename_clashes_and_keep_shared_code_once():
    builder = testfile.TestFileBuilder()
    builder.add(ROUND_1, {"test_case_0", "test_case_1", "TestThing.test_keep"})
    builder.add(ROUND_2, {"test_case_0", "test_case_0_2", "TestThing.test_keep"})
    source = builder.render()

    names = testfiles.test_names(source)
    assert len(names) == len(set(names)) == builder.count() == 6
    assert names[:3] == ["test_case_0", "test_case_1", "TestThing.test_keep"]
    # the second round's tests are all there, none of them shadowing an earlier one
    second = names[3:]
    assert len(second) == 3 and not set(second) & set(names[:3])
    assert sum(1 for n in second if n.startswith("TestThing")) == 1
    tree = ast.parse(source)
    top = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(top) == len(set(top))
    # shared imports and helpers once, not once per round
    assert source.count("import math") == 1
    assert source.count("import pytest") == 1
    assert source.count("def helper(") == 1
    # decorators of the renamed tests stay with them
    renamed_skipif = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.decorator_list and "skipif" in ast.unparse(n.decorator_list[0])
    ]
    assert len(renamed_skipif) == 1 and "helper(0)" in ast.unparse(renamed_skipif[0])


def test_rendered_file_runs_and_passes_under_pytest(tmp_path):
    builder = testfile.TestFileBuilder()
    builder.add(ROUND_1, {"test_case_0", "test_case_1", "TestThing.test_keep", "TestThing.test_keep_too"})
    builder.add(ROUND_2, {"test_case_0", "test_case_0_2", "TestThing.test_keep"})
    path = tmp_path / "test_generated_module.py"
    path.write_text(builder.render())

    result, outcomes = run_pytest(path, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    # 3 parametrized cases + 1 + 2 methods, then 1 + 1 + 1 of round two
    assert "9 passed" in result.stdout, result.stdout
    assert sorted(outcomes) == sorted(testfiles.test_names(builder.render()))
    assert all(outcomes.values())


def test_rounds_that_bind_the_same_alias_to_different_modules_still_pass(tmp_path):
    """Pynguin numbers its module aliases per file: `module_1` is one module in a round and another
    in the next. Each kept test must still see the module it was generated (and passed) with."""
    round_a = textwrap.dedent("""
        import pytest
        import json as module_0
        import string as module_1


        def test_case_0():
            assert module_1.digits == "0123456789"
            assert module_0.loads("[1]") == [1]
    """)
    round_b = textwrap.dedent("""
        import pytest
        import json as module_0
        import math as module_1


        def test_case_0():
            assert module_1.floor(2.5) == 2
            assert module_0.dumps([1]) == "[1]"
    """)
    for source in (round_a, round_b):  # each round passes on its own
        alone = tmp_path / "alone" / "test_alone.py"
        alone.parent.mkdir(exist_ok=True)
        alone.write_text(source)
        result, _ = run_pytest(alone, alone.parent)
        assert result.returncode == 0, result.stdout
    builder = testfile.TestFileBuilder()
    builder.add(round_a, {"test_case_0"})
    builder.add(round_b, {"test_case_0"})
    path = tmp_path / "test_combined.py"
    path.write_text(builder.render())

    result, outcomes = run_pytest(path, tmp_path)

    assert result.returncode == 0, builder.render() + result.stdout
    assert len(outcomes) == 2 and all(outcomes.values())
