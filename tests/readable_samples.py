"""Test files to rewrite, kept small: Pynguin's real output for examples/shop, the format of its earlier
releases, and what an LLM writes."""

from __future__ import annotations

# Two of Pynguin's cart tests below start with the same statements, as its search found them.
PYNGUIN_CART_START = """\
    cart_.Cart()
    var_12 = cart_.Cart()
    cart_.Cart()
    var_13 = cart_.Cart()
    var_13.count()
    var_15 = var_12.count()
    var_13.apply_coupon(code=var_15)
    assert var_13.coupons == [0]"""
# Pynguin 0.48's own output for examples/shop (covsweep's sandbox image), cut to a few tests per module.
PYNGUIN_CART = f"""\
#  This file was automatically generated using Pynguin.

import pytest
import sys
import shop.cart

cart_ = sys.modules["shop.cart"]


def test_1():
    var_0 = cart_.Cart()
    var_1 = var_0.subtotal()
    assert var_1 == 0


@pytest.mark.xfail(strict=True)
def test_3():
{PYNGUIN_CART_START}
    var_21 = var_13.subtotal()
    assert var_21 == 0
    var_13.apply_coupon(code=2114.09)
    var_13.total()


def test_5():
{PYNGUIN_CART_START}
    with pytest.raises(ValueError):
        var_13.apply_coupon(code=var_15)
"""
PYNGUIN_DISCOUNTS = """\
#  This file was automatically generated using Pynguin.

import pytest
import sys
import shop.discounts

discounts_ = sys.modules["shop.discounts"]


def test_0():
    var_0 = -2033
    discounts_.threshold_discount(total_cents=var_0)
    var_3 = " reseved"
    var_29 = discounts_.threshold_discount(total_cents=1220)
    assert var_29 == 1220
    var_31 = discounts_.coupon_percent(code=var_3)
    assert var_31 == 0
    with pytest.raises(ValueError):
        discounts_.percent_off(cents=b"Y<D>\\x82d\\x94\\t", percent=var_0)


def test_1():
    var_0 = "/uSV]"
    var_1 = discounts_.coupon_percent(code=var_0)
    assert var_1 == 0
    discounts_.coupon_percent(code=var_0)
    var_3 = 0
    var_4 = discounts_.best_price(cents=var_3, codes=var_0)
    assert var_4 == 0


@pytest.mark.xfail(strict=True)
def test_5():
    var_47 = " reseted"
    var_50 = discounts_.coupon_percent(code=var_47)
    assert var_50 == 0
    var_52 = discounts_.coupon_percent(code="SAVE")
    assert var_52 == 0
    var_53 = "vPZP"
    var_54 = ""
    var_55 = "o6?hk&4{4Tk8u, "
    var_56 = [var_53, var_54, var_47, var_55, var_47]
    var_57 = discounts_.best_price(cents=var_50, codes=var_56)
    assert var_57 == 0
    discounts_.coupon_percent(code=var_57)
"""
PYNGUIN_INVENTORY = """\
#  This file was automatically generated using Pynguin.

import pytest
import sys
import shop.inventory

inventory_ = sys.modules["shop.inventory"]
from shop.inventory import OutOfStock


def test_0():
    var_0 = inventory_.Inventory()
    var_0.low_stock()
    var_2 = "-Money of cannot mixf"
    var_4 = var_0.low_stock()
    var_14 = inventory_.OutOfStock(*var_4)
    assert isinstance(var_14, inventory_.OutOfStock)
    inventory_.Inventory()
    inventory_.Inventory()
    var_6 = 10
    with pytest.raises(OutOfStock):
        var_0.reserve(sku=var_2, quantity=var_6)


def test_2():
    var_0 = inventory_.Inventory()
    var_0.add(sku="", quantity=3)
    var_0.low_stock(limit=-743)
"""
PYNGUIN_MONEY = """\
#  This file was automatically generated using Pynguin.

import pytest
import sys
import shop.money

money_ = sys.modules["shop.money"]


def test_1():
    var_11 = money_.Money(cents=36)
    assert isinstance(var_11, money_.Money)


def test_2():
    var_0 = ""
    var_1 = money_.Money.parse(text=var_0)
    assert isinstance(var_1, money_.Money)


def test_9():
    var_7 = -2182
    var_8 = money_.Money(cents=-2171)
    assert isinstance(var_8, money_.Money)
    var_8.__eq__(other=var_7)


def test_15():
    var_0 = "."
    var_11 = money_.Money.parse(text=var_0)
    assert isinstance(var_11, money_.Money)
    var_12 = -44
    with pytest.raises(ValueError):
        var_11.split(parts=var_12)
"""
# The format of Pynguin's earlier releases (0.1x-0.3x): `module_0` aliases, `test_case_N`, and the
# type of every constructed object restated as an f-string.
PYNGUIN_EARLIER_CART = """\
import shop.cart as module_0
import shop.cart as module_0


def test_case_0():
    cart_0 = module_0.Cart()
    assert f"{type(cart_0).__module__}.{type(cart_0).__qualname__}" == "shop.cart.Cart"
    assert cart_0 is not None
    assert cart_0.lines == {}
    int_0 = 3
    cart_0.add("apple", 50, int_0)
    int_1 = cart_0.count()
    assert int_1 == 3


def test_case_1():
    cart_0 = module_0.Cart()
    assert type(cart_0) is module_0.Cart
    none_type_0 = cart_0.remove("pear")
    assert none_type_0 is None
"""
# A test of LLM_CART below, written as a person would: a rewrite keeps it as it is, comment and all.
BEST_SINGLE_COUPON = """\
# Coupons never stack: the best single one wins.
def test_best_single_coupon_wins():
    cart = Cart()
    cart.add("apple", 10_000, 2)  # 200.00, over the threshold
    cart.apply_coupon("SAVE10")
    cart.apply_coupon("WELCOME")
    assert cart.total() == best_price(18_000, ["SAVE10", "WELCOME"])"""
# What an LLM writes: good names and comments, imports repeated, the odd numbered test.
LLM_CART = f"""\
import pytest
from shop.cart import Cart
from shop.cart import Cart
import shop.discounts as discounts
from shop.discounts import best_price
import pytest


{BEST_SINGLE_COUPON}


def test_percent_off_rejects_more_than_100():
    with pytest.raises(ValueError):
        discounts.percent_off(100, 101)  # a percentage above 100


def test_1():
    cart = Cart()
    assert cart.count() == 0


class TestEmptyCart:
    def test_2(self):
        empty = Cart()
        assert empty.total() == 0
"""
