"""A shopping cart that prices its lines with discounts."""

from __future__ import annotations

from shop.discounts import best_price, threshold_discount


class Cart:
    def __init__(self) -> None:
        self.lines: dict[str, tuple[int, int]] = {}
        self.coupons: list[str] = []

    def add(self, sku: str, unit_cents: int, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        _, held = self.lines.get(sku, (unit_cents, 0))
        self.lines[sku] = (unit_cents, held + quantity)

    def remove(self, sku: str) -> None:
        self.lines.pop(sku, None)

    def count(self) -> int:
        return sum(quantity for _, quantity in self.lines.values())

    def subtotal(self) -> int:
        return sum(unit * quantity for unit, quantity in self.lines.values())

    def apply_coupon(self, code: str) -> None:
        if code in self.coupons:
            raise ValueError(f"coupon {code} already applied")
        self.coupons.append(code)

    def total(self) -> int:
        price = threshold_discount(self.subtotal())
        if self.coupons:
            price = best_price(price, self.coupons)
        return price
