"""How covsweep reads a pytest run back: each test's node id and outcome, in the order they ran, from a
real pytest run in a subprocess (no sandbox): the node ids run those tests again."""

from __future__ import annotations

import subprocess
import sys

from tasks.sandbox.pytest_support import junit_node_ids, pytest_args
from tests.helpers import write_project

SUITE = {
    "tests/test_b.py": """\
        import pytest


        @pytest.mark.parametrize("x", [1, 2])
        def test_param(x):
            assert x == 1


        class TestGroup:
            def test_in_class(self):
                assert True
        """,
    "tests/sub/test_a.py": "def test_fails():\n    assert False\n",
}


def run(root, *args: str) -> list[tuple[str, bool]]:
    junit = root / "junit.xml"
    command = f'"{sys.executable}" {pytest_args(list(args), junit)}'
    subprocess.run(command, shell=True, cwd=root, capture_output=True, check=False)
    return junit_node_ids(junit)


def test_node_ids_and_outcomes_come_back_in_the_order_the_tests_ran(tmp_path):
    root = write_project(tmp_path / "suite", SUITE)

    ran = run(root, "tests")

    assert ran == [
        ("tests/sub/test_a.py::test_fails", False),
        ("tests/test_b.py::test_param[1]", True),
        ("tests/test_b.py::test_param[2]", False),
        ("tests/test_b.py::TestGroup::test_in_class", True),
    ]


def test_the_node_ids_run_those_tests_again_in_the_order_given(tmp_path):
    root = write_project(tmp_path / "suite", SUITE)

    ran = run(root, "tests/test_b.py::TestGroup::test_in_class", "tests/sub/test_a.py::test_fails")

    assert ran == [("tests/test_b.py::TestGroup::test_in_class", True), ("tests/sub/test_a.py::test_fails", False)]
