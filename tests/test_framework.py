"""`--framework auto`: unittest for a project whose own tests are TestCase classes and nothing runs pytest."""

from __future__ import annotations

import pytest

from tasks.core.markers import MARKER
from tasks.project.discover import discover
from tasks.project.framework import detect_framework, framework_evidence
from tests.helpers import write_project

UNITTEST_PROJECT = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "def f():\n    return 1\n",
    "tests/__init__.py": "",
    "tests/base.py": "import unittest\n\n\nclass Base(unittest.TestCase):\n    maxDiff = None\n",
    "tests/test_mod.py": """\
        from pkg.mod import f
        from tests.base import Base


        class TestF(Base):
            def test_f(self):
                self.assertEqual(f(), 1)
    """,
    "tests/test_more.py": """\
        from unittest import TestCase


        class TestMore(TestCase):
            def test_more(self):
                assert True
    """,
    "setup.cfg": "[metadata]\nname = pkg\n",
    ".github/workflows/ci.yml": "jobs:\n  test:\n    steps:\n      - run: python -m unittest discover\n",
}


def test_a_project_of_testcase_classes_runs_unittest(tmp_path):
    root = write_project(tmp_path / "p", UNITTEST_PROJECT)

    evidence = framework_evidence(root)

    assert evidence.testcase_classes == ["tests/test_mod.py::TestF", "tests/test_more.py::TestMore"]
    assert evidence.pytest_reasons == []
    assert detect_framework(discover(root)) == "unittest"


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("pytest.ini", "[pytest]\n", "pytest.ini mentions pytest"),
        ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = '-q'\n", "pyproject.toml mentions pytest"),
        ("setup.cfg", "[tool:pytest]\ntestpaths = tests\n", "setup.cfg mentions pytest"),
        ("tox.ini", "[testenv]\ncommands = py.test\n", "tox.ini mentions pytest"),
        ("requirements-dev.txt", "pytest>=8\n", "requirements-dev.txt mentions pytest"),
        (".github/workflows/ci.yml", "jobs:\n  t:\n    steps:\n      - run: pytest -q\n", "ci.yml mentions pytest"),
        (".gitlab-ci.yml", "test:\n  script: python -m pytest\n", ".gitlab-ci.yml mentions pytest"),
        ("tests/conftest.py", "", "tests/conftest.py configures pytest"),
        ("tests/test_fixture.py", "import pytest\n", "tests/test_fixture.py imports pytest"),
        ("tests/test_plain.py", "def test_x():\n    assert 1\n", "tests/test_plain.py has plain test functions"),
        ("tests/test_cls.py", "class TestX:\n    def test_x(self):\n        pass\n", "test class TestX, which is no"),
    ],
)
def test_anything_that_runs_pytest_makes_it_pytest(tmp_path, name, text, reason):
    root = write_project(tmp_path / "p", {**UNITTEST_PROJECT, name: text})

    evidence = framework_evidence(root)

    assert any(reason in r for r in evidence.pytest_reasons), evidence.pytest_reasons
    assert detect_framework(discover(root)) == "pytest"


def test_a_project_without_tests_gets_pytest(tmp_path):
    root = write_project(tmp_path / "p", {"pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})

    assert framework_evidence(root).testcase_classes == []
    assert detect_framework(discover(root)) == "pytest"


def test_covsweep_files_and_virtualenvs_do_not_count(tmp_path):
    root = write_project(
        tmp_path / "p",
        {
            **UNITTEST_PROJECT,
            # A second run finds the first run's tests; a venv holds pytest's own test files.
            "tests/generated/test_pkg_mod.py": f"{MARKER} for pkg/mod.py (sha256 abc)\nimport pytest\n\n\ndef test_x():\n    pass\n",
            ".venv/lib/site-packages/pytest/test_x.py": "import pytest\n",
            "venv/test_y.py": "def test_y():\n    pass\n",
        },
    )

    assert framework_evidence(root).pytest_reasons == []
    assert detect_framework(discover(root)) == "unittest"
