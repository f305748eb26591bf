"""Test-by-test filtering in the real sandbox: failing, flaky and no-gain tests go, one by one."""

from __future__ import annotations

import textwrap

import pytest

from tasks.coverage.filtering import Covered, filter_tests
from tasks.coverage.measurement import measure
from tasks.project.discover import discover
from tasks.sandbox.runner import prepare_workspace
from tests.helpers import SHOP_INVENTORY_TESTS

pytestmark = pytest.mark.docker

CANDIDATE = """
import os
import shop.discounts as d


def test_threshold_applies():
    assert d.threshold_discount(20_000) == 18_000


def test_threshold_again():
    assert d.threshold_discount(30_000) == 27_000


def test_wrong_expectation():
    assert d.coupon_percent("WELCOME") == 99


def test_depends_on_the_run():
    assert os.environ.get("PYTHONHASHSEED") == "1"


def test_coupons():
    assert d.coupon_percent("save20") == 20
    assert d.coupon_percent("SAVE90") == 0
"""


@pytest.fixture
def measured(example, docker_config, tmp_path):
    project = discover(example)
    baseline = measure(docker_config, project, project.test_paths, tmp_path / "baseline", 300)
    return project, baseline


def filter_candidate(measured, config, tmp_path, module_path: str, source: str, reruns: int):
    """`source` as a generated test file for `module_path`, filtered against the example's baseline."""
    project, baseline = measured
    module = next(m for m in project.modules if m.path == module_path)
    before = baseline.coverage.files[module.path]
    candidate = prepare_workspace(tmp_path / "ws") / "test_covsweep_1.py"
    candidate.write_text(source)
    return filter_tests(
        config, project, module, candidate, before, Covered.of(before), reruns=reruns, timeout=120
    ), before


def test_keeps_only_passing_reliable_tests_that_add_coverage(measured, docker_config, tmp_path):
    result, before = filter_candidate(
        measured, docker_config, tmp_path, "shop/discounts.py", textwrap.dedent(CANDIDATE), reruns=3
    )

    assert sorted(result.kept) == ["test_coupons", "test_threshold_applies"]
    counts = result.counts
    assert (
        counts.proposed,
        counts.accepted,
        counts.rejected_failing,
        counts.rejected_flaky,
        counts.rejected_no_gain,
    ) == (5, 2, 1, 1, 1)
    assert result.covered.lines > set(before.executed_lines)
    assert result.covered.branches > set(before.executed_branches)


def test_a_test_that_adds_nothing_over_the_baseline_is_dropped(measured, docker_config, tmp_path):
    # The project's own tests already add these two amounts.
    result, _ = filter_candidate(
        measured,
        docker_config,
        tmp_path,
        "shop/money.py",
        "from shop.money import Money\n\n\ndef test_add():\n    assert Money(1) + Money(2) == Money(3)\n",
        reruns=2,
    )

    assert result.kept == []
    assert result.counts.rejected_no_gain == 1


def test_a_file_that_cannot_be_imported_rejects_its_tests_as_failing(measured, docker_config, tmp_path):
    result, _ = filter_candidate(
        measured,
        docker_config,
        tmp_path,
        "shop/cart.py",
        "import shop.no_such_module\n\n\ndef test_x():\n    assert True\n",
        reruns=2,
    )

    assert result.kept == []
    assert result.counts.rejected_failing == 1
    assert "no_such_module" in result.output


def test_a_kept_tests_import_time_lines_count_as_covered(measured, docker_config, tmp_path):
    """The def and class lines of a module no project test imports run when a generated test
    imports it, outside every test: covered once the file is kept, as the final run counts them."""
    result, before = filter_candidate(
        measured, docker_config, tmp_path, "shop/inventory.py", SHOP_INVENTORY_TESTS, reruns=1
    )

    assert before.executed_lines == []
    assert len(result.kept) == 3
    assert result.covered.lines == set(before.statements)


def test_without_a_kept_test_no_import_time_line_counts(measured, docker_config, tmp_path):
    result, before = filter_candidate(
        measured,
        docker_config,
        tmp_path,
        "shop/inventory.py",
        "from shop.inventory import Inventory\n\n\ndef test_wrong():\n    assert Inventory().available('x') == 1\n",
        reruns=1,
    )

    assert result.kept == [] and result.counts.rejected_failing == 1
    assert result.covered.lines == set(before.executed_lines) == set()
