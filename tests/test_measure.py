"""The one-run coverage measurement: baseline and final validation, in the real sandbox."""

from __future__ import annotations

import pytest

from tasks.core.markers import MARKER
from tasks.coverage.measurement import measure
from tasks.project.discover import discover
from tests.helpers import write_project

pytestmark = pytest.mark.docker


def test_baseline_of_the_example_splits_per_module(example, docker_config, tmp_path):
    project = discover(example)
    measured = measure(docker_config, project, project.test_paths, tmp_path / "ws", 300)
    files = measured.coverage.files
    assert set(files) == {m.path for m in project.modules}
    money = files["shop/money.py"].percentages()
    assert 0 < money.line < 100 and 0 < money.branch < 100 and 0 < money.function < 100
    assert files["shop/inventory.py"].percentages().line == 0.0  # no test imports it
    assert measured.failed_tests == {}


def test_a_project_without_tests_has_a_zero_baseline(docker_config, tmp_path):
    project = discover(write_project(tmp_path / "p", {"calc.py": "def add(a, b):\n    return a + b\n"}))
    measured = measure(docker_config, project, project.test_paths, tmp_path / "ws", 300)
    coverage = measured.coverage.files["calc.py"]
    assert coverage.statements and coverage.percentages().line == 0.0


def test_a_generated_file_that_cannot_even_import_is_reported_failing(docker_config, tmp_path):
    project = discover(
        write_project(
            tmp_path / "p",
            {
                "calc.py": "def add(a, b):\n    return a + b\n",
                "tests/generated/test_calc.py": f"{MARKER} for calc.py\nfrom calc import nothing\n\n\n"
                "def test_add():\n    pass\n",
            },
        )
    )
    measured = measure(docker_config, project, project.test_paths, tmp_path / "ws", 300)
    assert measured.failed_tests == {str(project.target / "tests/generated/test_calc.py"): ["test_add"]}
