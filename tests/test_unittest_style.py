"""Generated pytest-style tests as unittest.TestCase classes, run the way a unittest project's CI runs
them (`python -m unittest discover`, without pytest installed), and measured per test in the sandbox."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.models import Project
from tasks.coverage.data import contexts_coverage, write_rcfile
from tasks.coverage.unittest_style import to_unittest
from tasks.project.discover import discover
from tasks.sandbox import runner as sandbox
from tasks.sandbox.pytest_support import sandbox_env
from tasks.sandbox.unittest_support import discovery_roots, install_runner, unittest_args, unittest_outcomes
from tests.helpers import write_project

MOD = """\
import os

RATE = 1


def price(amount):
    if amount < 0:
        raise ValueError("negative amount")
    return amount * RATE


def home():
    return os.environ.get("SHOP_HOME", "none")
"""
# What an LLM or Pynguin writes: plain functions, pytest's helpers and fixtures.
GENERATED = """\
# Test cases in pytest style
import pytest
import warnings

import pkg.mod as module_0
from pkg.mod import price


def test_price():
    assert price(2) == 2


@pytest.mark.xfail(strict=True)
def test_case_pynguin_expects_a_failure():
    module_0.price(-1)


def test_raises_with_match_and_excinfo():
    with pytest.raises(ValueError, match="negative") as excinfo:
        price(-5)
    assert "amount" in str(excinfo.value)
    assert excinfo.type is ValueError


def test_raises_when_nothing_raises():
    with pytest.raises(ValueError):
        price(1)


def test_warns():
    with pytest.warns(UserWarning, match="careful"):
        warnings.warn("be careful", UserWarning)


@pytest.mark.parametrize("amount, expected", [(0, 0), (3, 3)])
def test_parametrized(amount, expected):
    assert price(amount) == expected


@pytest.mark.parametrize("amount", [1, 2])
def test_parametrized_with_a_failing_case(amount):
    assert price(amount) == 1


def test_monkeypatch(monkeypatch):
    monkeypatch.setattr(module_0, "RATE", 10)
    monkeypatch.setenv("SHOP_HOME", "/srv")
    assert price(2) == 20
    assert module_0.home() == "/srv"


def test_monkeypatch_was_undone():
    assert price(2) == 2
    assert module_0.home() == "none"


def test_tmp_path(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert (tmp_path / "f.txt").read_text() == "x"


def test_fail_is_a_failure():
    pytest.fail("on purpose")


def test_approx_has_no_equivalent():
    assert price(1) == pytest.approx(1.0)


def test_capsys_has_no_equivalent(capsys):
    print("x")
    assert capsys.readouterr().out == "x\\n"
"""
EXPECTED = {
    "test_price": "ok",
    "test_case_pynguin_expects_a_failure": "expected failure",
    "test_raises_with_match_and_excinfo": "ok",
    "test_raises_when_nothing_raises": "FAIL",
    "test_warns": "ok",
    "test_parametrized": "ok",
    "test_parametrized_with_a_failing_case": "FAIL",
    "test_monkeypatch": "ok",
    "test_monkeypatch_was_undone": "ok",
    "test_tmp_path": "ok",
    "test_fail_is_a_failure": "FAIL",
}
OWN_TEST = """\
import unittest

from pkg.mod import price


class TestPrice(unittest.TestCase):
    def test_price(self):
        self.assertEqual(price(1), 1)
"""


def unittest_project(root: Path, generated: str) -> Path:
    """A project whose CI runs `python -m unittest`, with covsweep's converted file under tests/generated."""
    return write_project(
        root,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": MOD,
            "tests/__init__.py": "",
            "tests/test_price.py": OWN_TEST,
            "tests/generated/__init__.py": "",
            "tests/generated/test_pkg_mod.py": generated,
        },
    )


def without_pytest(tmp_path: Path) -> dict[str, str]:
    """An environment where `import pytest` fails, as in a project that never installed it."""
    shadow = tmp_path / "no-pytest"
    shadow.mkdir()
    (shadow / "pytest.py").write_text("raise ImportError('pytest is not installed here')\n")
    return {**os.environ, "PYTHONPATH": str(shadow), "PYTHONDONTWRITEBYTECODE": "1"}


def test_module_level_tests_become_one_testcase_without_pytest():
    conversion = to_unittest(GENERATED, "TestPkgMod")

    assert conversion.tests == [f"TestPkgMod.{name}" for name in EXPECTED]
    assert conversion.dropped == {
        "test_approx_has_no_equivalent": "uses pytest.approx",
        "test_capsys_has_no_equivalent": "fixture capsys",
    }
    tree = ast.parse(conversion.source)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "pytest" not in imported and "pytest" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    (holder,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert ast.unparse(holder.bases[0]) == "unittest.TestCase"


def test_python_m_unittest_runs_and_counts_the_converted_tests(tmp_path):
    conversion = to_unittest(GENERATED, "TestPkgMod")
    root = unittest_project(tmp_path / "proj", conversion.source)

    run = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", "."],
        cwd=root,
        env=without_pytest(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    outcomes = dict(
        re.findall(
            r"^\s*(test_\w+) \(tests\.generated\.test_pkg_mod\.TestPkgMod\.\w+\)(?: \(.*\))? \.\.\. (\S.*)$",
            run.stderr,
            re.M,
        )
    )
    assert outcomes == EXPECTED, run.stderr
    assert f"Ran {len(EXPECTED) + 1} tests" in run.stderr  # the project's own test and every converted one
    assert "test_price (tests.test_price.TestPrice.test_price) ... ok" in run.stderr


def test_plain_test_classes_get_the_testcase_base_and_hooks_are_reported():
    source = """\
import pytest


class TestGood:
    def test_a(self):
        assert True

    def helper(self):
        return 1


class TestHooked:
    def setup_method(self, method):
        self.x = 1

    def test_b(self):
        assert self.x == 1


async def test_async():
    pass


def test_fixture_of_its_own(thing):
    assert thing


def test_calls_another():
    test_async()
"""
    conversion = to_unittest(source, "TestMod")

    assert conversion.tests == ["TestGood.test_a"]
    assert conversion.dropped == {
        "TestHooked.test_b": "a pytest setup or teardown method",
        "test_async": "async test",
        "test_fixture_of_its_own": "fixture thing",
        "test_calls_another": "calls the test test_async",
    }
    assert "class TestGood(unittest.TestCase):" in conversion.source


def test_the_runner_reports_each_outcome_and_coverage_names_each_method(tmp_path):
    root = unittest_project(tmp_path / "proj", to_unittest(GENERATED, "TestPkgMod").source)
    (root / "tests/generated/test_slow.py").write_text(
        "import time\nimport unittest\n\n\nclass TestSlow(unittest.TestCase):\n"
        "    def test_sleeps(self):\n        try:\n            time.sleep(30)\n        except Exception:\n            pass\n"
    )
    project = discover(root)
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    command = local_command(project, workspace, timeout_s=2)

    subprocess.run(command, shell=True, cwd=root, env=without_pytest(tmp_path) | sandbox_env(project), timeout=120)

    outcomes = unittest_outcomes(workspace / "outcomes.json", "test_pkg_mod")
    assert outcomes == {f"TestPkgMod.{name}": verdict != "FAIL" for name, verdict in EXPECTED.items()}
    assert unittest_outcomes(workspace / "outcomes.json", "test_slow") == {"TestSlow.test_sleeps": False}
    per_test = contexts_coverage(workspace / ".coverage", root / "pkg/mod.py")
    # price's raise (line 8) runs in the excinfo test and not in test_price.
    assert 8 in per_test["tests.generated.test_pkg_mod.TestPkgMod.test_raises_with_match_and_excinfo"][0]
    assert 8 not in per_test["tests.generated.test_pkg_mod.TestPkgMod.test_price"][0]
    assert "tests.test_price.TestPrice.test_price" in per_test


def local_command(project: Project, workspace: Path, timeout_s: float | None = None) -> str:
    runner = install_runner(workspace)
    rcfile = write_rcfile(workspace, project, per_test=True)
    args = unittest_args(runner, discovery_roots(project.test_paths), workspace / "outcomes.json")
    if timeout_s is not None:
        args = args.replace("--timeout 30", f"--timeout {timeout_s:g}")
    return f"{sys.executable} -m coverage run --rcfile={rcfile} {args}"


def test_discovery_roots_start_above_every_package_and_once(tmp_path):
    root = write_project(
        tmp_path / "p",
        {
            "tests/__init__.py": "",
            "tests/unit/__init__.py": "",
            "tests/generated/__init__.py": "",
            "test/test_x.py": "",
            "test/generated/test_y.py": "",
            "checks/unit/__init__.py": "",
        },
    )
    paths = [root / "tests/generated", root / "tests", root / "test/test_x.py", root / "test/generated"]

    # tests/generated is reached from tests (a package); test/generated is not reached from test.
    assert discovery_roots(paths + [root / "checks/unit"]) == [
        (root / "test", root / "test"),
        (root / "tests", root),
        (root / "checks/unit", root / "checks"),
        (root / "test/generated", root / "test/generated"),
    ]


@pytest.mark.docker
def test_the_sandboxed_unittest_run_measures_per_test(docker_config, tmp_path):
    root = unittest_project(tmp_path / "proj", to_unittest(GENERATED, "TestPkgMod").source)
    project = discover(root)
    workspace = sandbox.prepare_workspace(tmp_path / "ws")
    runner = install_runner(workspace)
    rcfile = write_rcfile(workspace, project, per_test=True)
    args = unittest_args(runner, discovery_roots(project.test_paths), workspace / "outcomes.json")
    script = f'cd {root}\n"$PY" -m coverage run --rcfile={rcfile} {args} > {workspace}/unittest.log 2>&1'

    result = sandbox.run(
        docker_config, script, workspace=workspace, read_only=[root], timeout=300, env=sandbox_env(project)
    )

    assert not result.timed_out
    assert result.exit_code == 1  # three converted tests fail on purpose
    outcomes = unittest_outcomes(workspace / "outcomes.json", "test_pkg_mod")
    assert outcomes == {f"TestPkgMod.{name}": verdict != "FAIL" for name, verdict in EXPECTED.items()}
    per_test = contexts_coverage(workspace / ".coverage", root / "pkg/mod.py")
    # Every test that runs a line of pkg/mod.py, under its own name.
    calling = set(EXPECTED) - {"test_warns", "test_tmp_path", "test_fail_is_a_failure"}
    assert set(per_test) == {f"tests.generated.test_pkg_mod.TestPkgMod.{name}" for name in calling} | {
        "tests.test_price.TestPrice.test_price"
    }
    assert 8 in per_test["tests.generated.test_pkg_mod.TestPkgMod.test_raises_with_match_and_excinfo"][0]
