"""Discount rules: percentages, thresholds and coupon codes."""

from __future__ import annotations


def percent_off(cents: int, percent: int) -> int:
    if not 0 <= percent <= 100:
        raise ValueError("percent must be between 0 and 100")
    return cents - cents * percent // 100


def threshold_discount(total_cents: int, threshold_cents: int = 10_000, percent: int = 10) -> int:
    """Take `percent` off totals at or above the threshold."""
    if total_cents >= threshold_cents:
        return percent_off(total_cents, percent)
    return total_cents


def coupon_percent(code: str) -> int:
    code = code.strip().upper()
    if not code:
        return 0
    if code.startswith("SAVE") and code[4:].isdigit():
        percent = int(code[4:])
        return percent if percent <= 50 else 0
    if code == "WELCOME":
        return 15
    return 0


def best_price(cents: int, codes: list[str]) -> int:
    """The lowest price any single coupon gives, never below zero."""
    best = cents
    for code in codes:
        best = min(best, percent_off(cents, coupon_percent(code)))
    return max(best, 0)
