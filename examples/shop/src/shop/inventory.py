"""Stock levels per product code, with reservations."""

from __future__ import annotations


class OutOfStock(Exception):
    pass


class Inventory:
    def __init__(self) -> None:
        self._stock: dict[str, int] = {}
        self._reserved: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self._stock[sku] = self._stock.get(sku, 0) + quantity

    def available(self, sku: str) -> int:
        return self._stock.get(sku, 0) - self._reserved.get(sku, 0)

    def reserve(self, sku: str, quantity: int) -> None:
        if quantity > self.available(sku):
            raise OutOfStock(sku)
        self._reserved[sku] = self._reserved.get(sku, 0) + quantity

    def release(self, sku: str, quantity: int) -> None:
        held = self._reserved.get(sku, 0)
        if quantity > held:
            raise ValueError(f"only {held} of {sku} reserved")
        if quantity == held:
            del self._reserved[sku]
        else:
            self._reserved[sku] = held - quantity

    def low_stock(self, limit: int = 5) -> list[str]:
        return sorted(sku for sku in self._stock if self.available(sku) < limit)
