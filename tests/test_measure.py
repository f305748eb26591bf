"""The one-run coverage measurement: baseline and final validation, in the real sandbox."""

from __future__ import annotations

import pytest

from tasks.core.markers import MARKER
from tasks.coverage.measurement import measure, run_measurement
from tasks.project.discover import discover
from tests.helpers import write_project
from tests.round_fakes import local_results

pytestmark = pytest.mark.docker

CALC = "def add(a, b):\n    if a < 0:\n        return 0\n    return a + b\n"
CALC_TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


@pytest.fixture
def results_here(tmp_path):
    with local_results(tmp_path / "results"):
        yield


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


def test_an_unchanged_project_reuses_its_measurement_and_a_changed_file_is_measured_again(
    docker_config, tmp_path, results_here
):
    project = discover(write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS}))
    first = measure(docker_config, project, project.test_paths, tmp_path / "ws1", 300)
    again = measure(docker_config, project, project.test_paths, tmp_path / "ws2", 300)
    assert (first.reused, again.reused) == (False, True)
    assert again.coverage == first.coverage

    (project.target / "tests/test_calc.py").write_text(
        CALC_TESTS + "\n\ndef test_negative():\n    assert add(-1, 2) == 0\n"
    )
    changed = measure(docker_config, project, project.test_paths, tmp_path / "ws3", 300)
    independent = run_measurement(docker_config, project, project.test_paths, tmp_path / "ws4", 300)
    assert not changed.reused
    assert changed.coverage == independent.coverage
    assert (
        changed.coverage.files["calc.py"].percentages().line
        == 100.0
        > first.coverage.files["calc.py"].percentages().line
    )


def test_a_measurement_is_not_reused_under_other_settings(docker_config, tmp_path, results_here):
    project = discover(write_project(tmp_path / "p", {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS}))
    measure(docker_config, project, project.test_paths, tmp_path / "ws1", 300)
    assert not measure(docker_config, project, project.test_paths, tmp_path / "ws2", 200).reused
    assert not measure(docker_config, project, [], tmp_path / "ws3", 300).reused
