"""Amounts of money in integer cents, so sums never drift."""

from __future__ import annotations


class Money:
    def __init__(self, cents: int, currency: str = "EUR"):
        if not isinstance(cents, int):
            raise TypeError("cents must be an int")
        if len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"not a currency code: {currency!r}")
        self.cents = cents
        self.currency = currency.upper()

    @classmethod
    def parse(cls, text: str) -> "Money":
        amount, _, currency = text.strip().partition(" ")
        whole, _, frac = amount.partition(".")
        if len(frac) > 2:
            raise ValueError(f"too many decimals: {text!r}")
        sign = -1 if whole.startswith("-") else 1
        cents = abs(int(whole or "0")) * 100 + int(frac.ljust(2, "0") or "0")
        return cls(sign * cents, currency or "EUR")

    def _check(self, other: "Money") -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.cents - other.cents, self.currency)

    def times(self, factor: int) -> "Money":
        return Money(self.cents * factor, self.currency)

    def split(self, parts: int) -> list["Money"]:
        """Split into `parts` amounts that differ by at most one cent and add up exactly."""
        if parts <= 0:
            raise ValueError("parts must be positive")
        base, rest = divmod(self.cents, parts)
        return [Money(base + (1 if i < rest else 0), self.currency) for i in range(parts)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.cents, self.currency) == (other.cents, other.currency)

    def __lt__(self, other: "Money") -> bool:
        self._check(other)
        return self.cents < other.cents

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        return f"{sign}{whole}.{frac:02d} {self.currency}"

    __repr__ = __str__
