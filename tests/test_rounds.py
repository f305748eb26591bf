"""The offline generator as `--generator pynguin` runs it: the examples generator first, Pynguin on what it
leaves, the best of both kept test by test; and what the round aims Pynguin's search at."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from flows.spec_to_production import spec_to_production
from tasks.core.errors import ModuleError
from tasks.core.models import FileCoverage, Mutant
from tasks.coverage.filtering import Covered, FilterResult
from tasks.generators.examples import generate_with_examples
from tasks.generators.rounds import pynguin_aim
from tasks.project.discover import discover
from tasks.sandbox.runner import prepare_workspace
from tests.helpers import independent_measurement, percent, write_project
from tests.test_examples import TOKENS

# Every argument is an object of another module's class with no repr that rebuilds it: the examples
# generator can write none of its calls, Pynguin builds the objects itself.
GEOMETRY = """
class Point:
    def __init__(self, x: int, y: int):
        self.x = x
        self.y = y
"""
MEASURE = """
from shapes.geometry import Point


def quadrant(point: Point) -> str:
    if point.x == 0 or point.y == 0:
        return "axis"
    if point.x > 0:
        return "first" if point.y > 0 else "fourth"
    return "second" if point.y > 0 else "third"


def distance(a: Point, b: Point) -> int:
    return abs(a.x - b.x) + abs(a.y - b.y)
"""


# ---------------------------------------------------------------- where Pynguin's search goes


def aim_job(changed: list[int] | None = None) -> SimpleNamespace:
    baseline = FileCoverage(statements=[1, 2, 3, 5, 6, 7], executed_lines=[1, 5])
    return SimpleNamespace(baseline=baseline, changed_lines=changed, coverage_target=80.0)


def with_survivors(*lines: int) -> FilterResult:
    mutants = [Mutant(name=f"m{n}", file="m.py", line=n, original="a", mutated="b", status="survived") for n in lines]
    return FilterResult(
        kept=[], counts={}, covered=Covered(), output="", sandbox_start_s=0, duration_s=0, survivors=mutants
    )


def test_pynguin_is_aimed_at_missed_changed_lines_first_then_missed_lines_then_surviving_mutants():
    job = aim_job(changed=[3, 6, 9])
    assert pynguin_aim(job, Covered(lines={1, 5}), None).lines == [3, 6]
    assert pynguin_aim(job, Covered(lines={1, 3, 5, 6}), None).lines == [2, 7]
    assert pynguin_aim(aim_job(), Covered(lines={1, 5}), None).lines == []  # nothing kept yet: the whole module
    assert pynguin_aim(aim_job(), Covered(lines={1, 2, 5}), None).lines == [3, 6, 7]
    every_line = Covered(lines={1, 2, 3, 5, 6, 7})
    assert pynguin_aim(aim_job(), every_line, with_survivors(6, 2)).lines == [2, 6]
    assert pynguin_aim(aim_job(), every_line, None).lines == []  # nothing left to aim at: the whole module
    assert pynguin_aim(job, every_line, None).plateau_at == 80.0


# ---------------------------------------------------------------- a real run, in the sandbox


@pytest.fixture(scope="module")
def offline_run(prefect_api, sandbox_image, tmp_path_factory):
    root = tmp_path_factory.mktemp("offline")
    root.chmod(0o755)
    files = {
        "tokens/__init__.py": "",
        "tokens/kinds.py": TOKENS,
        "shapes/__init__.py": "",
        "shapes/geometry.py": GEOMETRY,
        "shapes/measure.py": MEASURE,
    }
    target = write_project(root / "proj", files)
    report = spec_to_production(
        target=str(target),
        modules=["tokens/kinds.py", "shapes/measure.py"],
        generator="pynguin",
        max_iterations=2,
        timeout=200,
        mutants=10,
        concurrency=2,
    )
    return target, {m.module: m for m in report.modules}


def delivered(target: Path, module) -> str:
    assert module.generated_files, module
    return (target / module.generated_files[0]).read_text()


@pytest.mark.timeout(900)
def test_a_pynguin_run_on_a_regex_module_keeps_the_examples_generators_tests(offline_run):
    target, modules = offline_run
    kinds = modules["tokens/kinds.py"]
    assert (kinds.success, kinds.generator) == (True, "pynguin"), kinds
    text = delivered(target, kinds)
    # The version branches want a string matching VERSION with a stage: what the examples generator
    # draws from the pattern, and Pynguin's random strings do not reach (tests/test_examples.py).
    returned = {
        node.comparators[0].value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Compare) and isinstance(node.comparators[0], ast.Constant)
    }
    assert {"release-candidate", "prerelease", "version"} <= returned, text
    assert kinds.coverage.line >= 80, kinds.coverage
    assert "hypothesis" not in text


@pytest.mark.timeout(900)
def test_the_reported_coverage_is_what_an_independent_coverage_run_measures(offline_run, tmp_path):
    target, modules = offline_run
    for package in ("tokens", "shapes"):
        (tmp_path / package).mkdir()
        measured = independent_measurement(target, tmp_path / package, source=package)
        for name, entry in measured["files"].items():
            module = modules.get(name)
            if module is None:
                continue  # not processed: its figures are not in question
            summary = entry["summary"]
            assert module.coverage.line == percent(summary["covered_lines"], summary["num_statements"]), module
            assert module.coverage.branch == percent(summary["covered_branches"], summary["num_branches"]), module


@pytest.mark.timeout(900)
def test_a_module_where_the_examples_generator_finds_nothing_gets_pynguins_tests(offline_run, docker_config, tmp_path):
    target, modules = offline_run
    project = discover(target)
    module = next(m for m in project.modules if m.path == "shapes/measure.py")
    with pytest.raises(ModuleError, match="produced no tests"):
        generate_with_examples(docker_config, project, module, prepare_workspace(tmp_path / "ws"), seed=1, budget_s=10)

    measure = modules["shapes/measure.py"]
    assert measure.success and measure.tests.accepted > 0, measure
    assert measure.coverage.line > measure.coverage_before.line
    assert "quadrant(" in delivered(target, measure) or "distance(" in delivered(target, measure)
