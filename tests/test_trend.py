"""The `covsweep-trend` markdown: one column per sweep, a regression flagged when line coverage falls."""

from __future__ import annotations

from tasks.core.models import Sweep, TargetPoint
from tasks.history.trend import regressions, trend_markdown


def sweep(when: str, **lines: float | None) -> Sweep:
    return Sweep(
        started_at=when,
        points=[
            TargetPoint(target=t, line=v, branch=v)
            if v is not None
            else TargetPoint(target=t, state="Failed", error="boom")
            for t, v in lines.items()
        ],
    )


def row(markdown: str, target: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| `{target}`"))


def test_a_drop_is_a_regression_and_a_rise_is_not():
    history = [sweep("2026-01-01T02:00", a=50.0, b=70.0), sweep("2026-01-02T02:00", a=60.0, b=70.0)]
    current = sweep("2026-01-03T02:00", a=55.5, b=80.0)
    assert regressions(history, current) == ["a"]
    md = trend_markdown(history, current)
    assert "| 50.0 | 60.0 | 55.5 | -4.5 | **▼ regression** |" in row(md, "a")
    assert "▲ improved" in row(md, "b")
    assert "**1 regression(s)**: `a`" in md


def test_a_failed_sweep_compares_with_the_last_measured_one():
    history = [sweep("2026-01-01T02:00", a=60.0), sweep("2026-01-02T02:00", a=None)]
    current = sweep("2026-01-03T02:00", a=59.0)
    assert regressions(history, current) == ["a"]
    assert "| 60.0 | failed | 59.0 |" in row(trend_markdown(history, current), "a")


def test_new_failed_and_unchanged_targets():
    history = [sweep("2026-01-01T02:00", a=60.0)]
    current = sweep("2026-01-02T02:00", a=60.0, b=10.0, c=None)
    md = trend_markdown(history, current)
    assert row(md, "a").endswith("| +0.0 | = |")
    assert row(md, "b").endswith("| new |")
    assert "**✖ failed**: boom" in row(md, "c")
    assert "No regression." in md and "**1 target(s) failed**: `c`" in md


def test_rounding_noise_is_no_regression():
    assert regressions([sweep("t", a=60.0)], sweep("u", a=59.995)) == []


def test_without_history_everything_is_new():
    md = trend_markdown([], sweep("2026-01-01T02:00", a=42.0))
    assert "(this)" in md and row(md, "a").endswith("| new |")
