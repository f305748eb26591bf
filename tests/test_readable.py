"""Readable tests: accepted tests rewritten as a person would write them, and every rewrite run against
the original (pytest + per-test coverage, `--sandbox local` here, Docker in the last test) to show it
does what the original did."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tasks.core.models import Module, Project, SandboxConfig
from tasks.core.testfiles import test_names as names_of_tests
from tasks.coverage.readable.check import STEM, changed_tests, make_readable
from tasks.coverage.readable.formatting import ruff_format
from tasks.coverage.readable.imports import tidy_imports
from tasks.coverage.readable.rewrite import Rewritten, rewrite
from tasks.coverage.validation import readable_issues
from tasks.delivery.write import WriteRequest, write_files
from tasks.generators.pynguin import generate_with_pynguin
from tasks.project.discover import discover
from tasks.project.style import ProjectStyle, detect_style
from tasks.sandbox.pytest_support import junit_outcomes
from tasks.sandbox.runner import prepare_workspace
from tests import readable_samples as samples
from tests.helpers import write_project
from tests.test_write import run_pytest

SHOP_STYLE = ProjectStyle(imports="names", packages=["shop"])

# samples.PYNGUIN_CART_START rewritten.
CART_START = """\
    Cart()
    cart = Cart()
    Cart()
    cart_2 = Cart()
    cart_2.count()
    count = cart.count()
    cart_2.apply_coupon(code=count)
    assert cart_2.coupons == [0]"""
EXPECTED = {
    "PYNGUIN_CART": f"""\
import pytest

from shop.cart import Cart


def test_cart_subtotal_returns_zero():
    cart = Cart()
    assert cart.subtotal() == 0


@pytest.mark.xfail(strict=True)
def test_cart_total_fails():
{CART_START}
    assert cart_2.subtotal() == 0
    cart_2.apply_coupon(code=2114.09)
    cart_2.total()


def test_cart_apply_coupon_raises_value_error():
{CART_START}
    with pytest.raises(ValueError):
        cart_2.apply_coupon(code=count)
""",
    "PYNGUIN_DISCOUNTS": """\
import pytest

from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_percent_off_raises_value_error():
    total_cents = -2033
    threshold_discount(total_cents=total_cents)
    assert threshold_discount(total_cents=1220) == 1220
    assert coupon_percent(code=" reseved") == 0
    with pytest.raises(ValueError):
        percent_off(cents=b"Y<D>\\x82d\\x94\\t", percent=total_cents)


def test_best_price_returns_zero():
    code = "/uSV]"
    assert coupon_percent(code=code) == 0
    coupon_percent(code=code)
    assert best_price(cents=0, codes=code) == 0


@pytest.mark.xfail(strict=True)
def test_coupon_percent_fails():
    code = " reseted"
    result = coupon_percent(code=code)
    assert result == 0
    assert coupon_percent(code="SAVE") == 0
    codes = ["vPZP", "", code, "o6?hk&4{4Tk8u, ", code]
    best_price_result = best_price(cents=result, codes=codes)
    assert best_price_result == 0
    coupon_percent(code=best_price_result)
""",
    "PYNGUIN_INVENTORY": """\
import pytest

from shop.inventory import Inventory, OutOfStock


def test_inventory_reserve_raises_out_of_stock():
    inventory = Inventory()
    inventory.low_stock()
    low_stock = inventory.low_stock()
    OutOfStock(*low_stock)
    Inventory()
    Inventory()
    with pytest.raises(OutOfStock):
        inventory.reserve(sku="-Money of cannot mixf", quantity=10)


def test_inventory_low_stock_with_negative_limit():
    inventory = Inventory()
    inventory.add(sku="", quantity=3)
    inventory.low_stock(limit=-743)
""",
    "PYNGUIN_MONEY": """\
import pytest

from shop.money import Money


def test_money():
    Money(cents=36)


def test_money_parse_returns_money():
    assert isinstance(Money.parse(text=""), Money)


def test_money_eq_with_negative_other():
    money = Money(cents=-2171)
    money.__eq__(other=-2182)


def test_money_split_raises_value_error():
    money = Money.parse(text=".")
    assert isinstance(money, Money)
    with pytest.raises(ValueError):
        money.split(parts=-44)
""",
    "PYNGUIN_EARLIER_CART": """\
from shop.cart import Cart


def test_cart_count_returns_3():
    cart = Cart()
    assert cart.lines == {}
    cart.add("apple", 50, 3)
    assert cart.count() == 3


def test_cart_remove_returns_none():
    cart = Cart()
    assert cart.remove("pear") is None
""",
    "LLM_CART": f"""\
import pytest

from shop.cart import Cart
from shop.discounts import best_price, percent_off


{samples.BEST_SINGLE_COUPON}


def test_percent_off_rejects_more_than_100():
    with pytest.raises(ValueError):
        percent_off(100, 101)  # a percentage above 100


def test_cart_count_returns_zero():
    cart = Cart()
    assert cart.count() == 0


class TestEmptyCart:
    def test_cart_total_returns_zero(self):
        empty = Cart()
        assert empty.total() == 0
""",
}
MODULE_OF = {
    "PYNGUIN_CART": "shop/cart.py",
    "PYNGUIN_DISCOUNTS": "shop/discounts.py",
    "PYNGUIN_INVENTORY": "shop/inventory.py",
    "PYNGUIN_MONEY": "shop/money.py",
    "PYNGUIN_EARLIER_CART": "shop/cart.py",
    "LLM_CART": "shop/cart.py",
}


def module_of(project: Project, path: str) -> Module:
    return next(m for m in project.modules if m.path == path)


def assert_does_the_same(
    config: SandboxConfig, project: Project, module: Module, original: str, rewritten: str, workspace: Path
) -> None:
    """The original's tests all pass (or xfail as marked), and each rewritten one ends alike and covers
    the same lines and arcs."""
    workspace = prepare_workspace(workspace)
    (workspace / "original.py").write_text(original)
    (workspace / "rewritten.py").write_text(rewritten)
    changed = changed_tests(
        config, project, module, workspace / "original.py", workspace / "rewritten.py", workspace, 120
    )
    outcomes = junit_outcomes(workspace / "original" / "junit.xml", STEM)
    assert outcomes and all(outcomes.values()), (workspace / "original" / "pytest.log").read_text()
    assert changed == []


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_a_generated_file_reads_as_a_person_would_write_it_and_does_the_same(sample, example, local_config, tmp_path):
    project = discover(example)
    module = module_of(project, MODULE_OF[sample])
    source = getattr(samples, sample)

    rewritten = rewrite(source, module=module, style=detect_style(project))

    assert rewritten.source == EXPECTED[sample]
    assert readable_issues(rewritten.source) == []
    assert_does_the_same(local_config, project, module, source, rewritten.source, tmp_path / "check")


def test_renames_map_each_numbered_test_to_its_new_name_and_leave_named_tests_alone(example):
    project = discover(example)

    rewritten = rewrite(samples.LLM_CART, module=module_of(project, "shop/cart.py"), style=SHOP_STYLE)

    assert rewritten.renames == {
        "test_1": "test_cart_count_returns_zero",
        "TestEmptyCart.test_2": "TestEmptyCart.test_cart_total_returns_zero",
    }


@pytest.mark.parametrize(
    "style, imports, reference",
    [
        ("names", "from shop.inventory import Inventory, OutOfStock\n", "    inventory = Inventory()\n"),
        ("package_module", "from shop import inventory\n", "    inventory_2 = inventory.Inventory()\n"),
        ("module_alias", "import shop.inventory as inventory\n", "    inventory_2 = inventory.Inventory()\n"),
        ("dotted", "import shop.inventory\n", "    inventory = shop.inventory.Inventory()\n"),
    ],
)
def test_module_aliases_become_the_import_the_projects_tests_use(
    example, local_config, tmp_path, style, imports, reference
):
    project = discover(example)
    module = module_of(project, "shop/inventory.py")

    rewritten = rewrite(samples.PYNGUIN_INVENTORY, module=module, style=ProjectStyle(imports=style, packages=["shop"]))

    assert imports in rewritten.source and reference in rewritten.source
    assert "sys" not in rewritten.source and "inventory_." not in rewritten.source
    # a local never hides the module it is named after
    assert_does_the_same(local_config, project, module, samples.PYNGUIN_INVENTORY, rewritten.source, tmp_path)


def test_a_name_that_would_hide_another_keeps_its_module_prefix(tmp_path, local_config):
    target = write_project(
        tmp_path / "p",
        {"pkg/__init__.py": "", "pkg/calc.py": "def max(a, b):\n    return a if a > b else b\n"},
    )
    project = discover(target)
    module = module_of(project, "pkg/calc.py")
    source = textwrap.dedent("""\
        import pkg.calc as module_0


        def test_0():
            var_0 = module_0.max(a=1, b=2)
            assert var_0 == max(1, 2)
        """)

    rewritten = rewrite(source, module=module, style=ProjectStyle(imports="names", packages=["pkg"])).source

    # `from pkg.calc import max` would hide the builtin the test compares with
    assert "from pkg import calc\n" in rewritten and "assert calc.max(a=1, b=2) == max(1, 2)" in rewritten
    assert_does_the_same(local_config, project, module, source, rewritten, tmp_path / "check")


NAMING = """\
import pytest

from shop.cart import Cart
from shop.discounts import coupon_percent, threshold_discount
from shop.inventory import Inventory
from shop.money import Money


def test_0():
    var_0 = Cart()
    var_1 = var_0.remove(sku="pear")
    assert var_1 is None


def test_1():
    assert coupon_percent(code=" ") == 0


def test_2():
    assert Money(cents=5) == Money(cents=5)


def test_3():
    assert not Money(cents=5) < Money(cents=5)


def test_4():
    var_0 = Inventory()
    assert var_0.low_stock() == []


def test_5():
    assert coupon_percent("WELCOME") == 15


def test_6():
    assert str(Money(cents=1234, currency="usd")) == "12.34 USD"


def test_7():
    var_0 = Cart()
    var_0.apply_coupon(code="SAVE10")
    assert var_0.coupons == ["SAVE10"]


def test_8():
    with pytest.raises(ValueError):
        Money(cents=1, currency="euros")


def test_9():
    threshold_discount(total_cents=0)


def test_10():
    assert coupon_percent(code="") == 0


def test_coupon_percent_returns_zero():
    assert coupon_percent(code="other") == 0
"""


def test_test_names_say_which_function_they_exercise_and_what_they_check(example, local_config, tmp_path):
    project = discover(example)
    module = module_of(project, "shop/cart.py")

    rewritten = rewrite(NAMING, module=module, style=SHOP_STYLE)

    assert rewritten.renames == {
        "test_0": "test_cart_remove_returns_none",
        "test_1": "test_coupon_percent_returns_zero_2",  # unique: the file has a test of that name
        "test_2": "test_money",  # equal to something other than a literal: no case
        "test_3": "test_money_returns_false",
        "test_4": "test_inventory_low_stock_returns_empty",
        "test_5": "test_coupon_percent_returns_15",
        "test_6": "test_money_2",  # "12.34 USD" says nothing short: no case
        "test_7": "test_cart_apply_coupon_updates_coupons",
        "test_8": "test_money_raises_value_error",
        "test_9": "test_threshold_discount_with_zero_total_cents",
        "test_10": "test_coupon_percent_returns_zero_3",
    }
    assert "def test_coupon_percent_returns_zero():" in rewritten.source
    assert_does_the_same(local_config, project, module, NAMING, rewritten.source, tmp_path)


CANNOT_FAIL = """\
from shop.cart import Cart
from shop.discounts import best_price
from shop.money import Money


def test_constructed_then_restated():
    cart = Cart()
    assert isinstance(cart, Cart)
    assert cart is not None
    assert type(cart) is Cart
    assert f"{type(cart).__module__}.{type(cart).__qualname__}" == "shop.cart.Cart"
    assert type(cart).__name__ == "Cart"
    assert cart.count() == 0


def test_checks_that_can_fail_stay():
    money = Money.parse("1.50 EUR")
    assert isinstance(money, Money)
    price = best_price(100, [])
    assert price is not None
    cart = Cart()
    cart = money
    assert isinstance(cart, Money)
"""


def test_assertions_that_cannot_fail_go_and_those_that_can_stay(example, local_config, tmp_path):
    project = discover(example)
    module = module_of(project, "shop/cart.py")

    rewritten = rewrite(CANNOT_FAIL, module=module, style=SHOP_STYLE).source

    first, second = rewritten.split("def test_checks_that_can_fail_stay():")
    assert first.count("assert ") == 1 and "assert cart.count() == 0" in first
    assert second == CANNOT_FAIL.split("def test_checks_that_can_fail_stay():")[1]
    (before,) = readable_issues(CANNOT_FAIL)
    assert before.message.startswith("assertions that cannot fail: test_constructed_then_restated: assert isinstance")
    assert before.message.count("test_constructed_then_restated:") == 5 and "test_checks" not in before.message
    assert readable_issues(rewritten) == []
    assert_does_the_same(local_config, project, module, CANNOT_FAIL, rewritten, tmp_path)


def test_tests_to_keep_stay_as_written_with_the_aliases_they_use(example, local_config, tmp_path):
    project = discover(example)
    module = module_of(project, "shop/cart.py")

    rewritten = rewrite(samples.PYNGUIN_CART, module=module, style=SHOP_STYLE, keep={"test_3"})

    original_test_3 = samples.PYNGUIN_CART[samples.PYNGUIN_CART.index("@pytest.mark.xfail") :].split("\n\n\n")[0]
    assert original_test_3 in rewritten.source
    assert 'cart_ = sys.modules["shop.cart"]' in rewritten.source and "import sys" in rewritten.source
    assert set(rewritten.renames) == {"test_1", "test_5"}
    assert "def test_cart_subtotal_returns_zero():\n    cart = Cart()\n" in rewritten.source
    assert_does_the_same(local_config, project, module, samples.PYNGUIN_CART, rewritten.source, tmp_path)


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_rewriting_a_rewritten_file_changes_nothing(sample):
    module = Module(path=MODULE_OF[sample], dotted=MODULE_OF[sample][:-3].replace("/", "."), file=Path("/x"), sha256="")
    once = rewrite(getattr(samples, sample), module=module, style=SHOP_STYLE)

    twice = rewrite(once.source, module=module, style=SHOP_STYLE)

    assert twice == Rewritten(source=once.source)


def test_source_that_does_not_parse_comes_back_as_it_is():
    module = Module(path="shop/cart.py", dotted="shop.cart", file=Path("/x"), sha256="")
    broken = "def test_0(:\n    var_0 = 1\n"

    assert rewrite(broken, module=module, style=SHOP_STYLE) == Rewritten(source=broken)


def test_changed_tests_names_each_test_whose_outcome_or_coverage_changed(example, local_config, tmp_path):
    project = discover(example)
    module = module_of(project, "shop/discounts.py")
    original = textwrap.dedent("""\
        from shop.discounts import coupon_percent, threshold_discount


        def test_0():
            assert coupon_percent("SAVE20") == 20


        def test_1():
            assert threshold_discount(20_000) == 18_000


        def test_2():
            assert coupon_percent("WELCOME") == 15
        """)
    rewritten = (
        original.replace("def test_0", "def test_coupon_percent")
        .replace("threshold_discount(20_000) == 18_000", "threshold_discount(500) == 500")  # passes, other lines
        .replace('"WELCOME") == 15', '"WELCOME") == 16')  # now fails
    )
    workspace = prepare_workspace(tmp_path / "check")
    (workspace / "a.py").write_text(original)
    (workspace / "b.py").write_text(rewritten)

    changed = changed_tests(local_config, project, module, workspace / "a.py", workspace / "b.py", workspace, 120)

    assert changed == ["test_1", "test_2"]
    (workspace / "c.py").write_text(original.replace("def test_0", "def test_coupon_percent_returns_20"))
    assert changed_tests(local_config, project, module, workspace / "a.py", workspace / "c.py", workspace, 120) == []


def test_a_test_whose_rewrite_changes_what_it_does_keeps_its_original_text(tmp_path, local_config):
    """A module that looks at the running test's name: renaming test_0 changes what it does."""
    target = write_project(
        tmp_path / "probe",
        {
            "pkg/__init__.py": "",
            "pkg/probe.py": """
                import os


                def numbered_test():
                    if "::test_0 " in os.environ.get("PYTEST_CURRENT_TEST", ""):
                        return True
                    return False
                """,
        },
    )
    project = discover(target)
    module = module_of(project, "pkg/probe.py")
    source = textwrap.dedent("""\
        import pkg.probe as module_0


        def test_0():
            var_0 = module_0.numbered_test()
            assert var_0 is True


        def test_1():
            var_0 = module_0.numbered_test()
            assert var_0 is False
        """)
    style = detect_style(project)

    result = make_readable(local_config, project, module, source, style, tmp_path / "ws", 300)

    assert "def test_0():\n    var_0 = module_0.numbered_test()\n    assert var_0 is True\n" in result.source
    assert "def test_numbered_test_returns_false():\n    assert numbered_test() is False\n" in result.source
    assert result.renames == {"test_1": "test_numbered_test_returns_false"}
    assert_does_the_same(local_config, project, module, source, result.source, tmp_path / "again")


def test_ruff_formats_to_the_projects_line_length_and_leaves_what_it_cannot_parse():
    call = "assert best_price(cents=10_000, codes=['SAVE10', 'WELCOME', 'SAVE20']) == 8_000\n"
    source = f"def test_x():\n    {call}"

    assert ruff_format(source, 120) == source.replace("'", '"')
    assert ruff_format(source, 60).count("\n") > 3  # wrapped
    assert ruff_format("def test_x(:\n", 88) == "def test_x(:\n"


def test_imports_are_merged_grouped_and_never_repeated():
    source = textwrap.dedent('''\
        """Docstring."""
        import pytest
        from shop.cart import Cart
        import os
        from shop.cart import Cart, CONSTANT
        import pytest
        from . import helpers

        VALUE = 1
        from shop.cart import Cart
        import json


        def test_x():
            pass
        ''')

    assert tidy_imports(source, {"shop"}) == textwrap.dedent('''\
        """Docstring."""
        import os

        import pytest

        from shop.cart import CONSTANT, Cart

        from . import helpers

        VALUE = 1
        import json


        def test_x():
            pass
        ''')


def test_imports_with_comments_keep_their_order_and_lose_only_exact_repeats():
    source = "import pytest  # noqa: F401\nimport os\nimport os\n\n\ndef test_x():\n    pass\n"

    assert tidy_imports(source, set()) == "import pytest  # noqa: F401\nimport os\n\n\ndef test_x():\n    pass\n"


def test_an_import_again_after_the_name_was_rebound_stays():
    source = "import os\n\nos = None\nimport os\n"

    assert tidy_imports(source, set()) == source


@pytest.mark.docker
def test_pynguins_output_for_the_example_rewritten_does_the_same_in_the_sandbox(example, docker_config, tmp_path):
    project = discover(example)
    module = module_of(project, "shop/cart.py")
    workspace = prepare_workspace(tmp_path / "ws")
    generated = generate_with_pynguin(docker_config, project, module, workspace, seed=1, search_s=5, timeout=200)
    raw = generated.file.read_text()

    result = make_readable(docker_config, project, module, raw, detect_style(project), workspace, 300)

    assert result.source != raw and result.renames
    assert readable_issues(raw) and readable_issues(result.source) == []
    (workspace / "raw.py").write_text(raw)
    (workspace / "readable.py").write_text(result.source)
    assert (
        changed_tests(docker_config, project, module, workspace / "raw.py", workspace / "readable.py", workspace, 300)
        == []
    )
    (written,) = write_files(
        project, example / "tests" / "generated", [WriteRequest(module=module, source=result.source)]
    )
    # plain pytest from the example's root: its pyproject puts src/ on sys.path, so no conftest.py
    passed = run_pytest("pytest", example, "tests/generated")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    ran = sum(int(n) for n in re.findall(r"(\d+) (?:passed|xfailed)", passed.stdout.splitlines()[-1]))
    assert ran == len(names_of_tests(written.path.read_text())) > 0
    assert sorted(p.name for p in written.path.parent.iterdir()) == [written.path.name]
