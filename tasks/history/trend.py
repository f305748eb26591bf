"""Coverage per target across sweeps, as the markdown of the `covsweep-trend` artifact."""

from __future__ import annotations

from tasks.core.models import Sweep, TargetPoint

# Below this drop in line coverage (percentage points) a change is rounding noise, not a regression.
TOLERANCE = 0.01


def previous_line(history: list[Sweep], target: str) -> float | None:
    """The target's line coverage in the latest earlier sweep that measured it."""
    for sweep in reversed(history):
        point = sweep.point(target)
        if point and point.ok:
            return point.line
    return None


def regressions(history: list[Sweep], current: Sweep, tolerance: float = TOLERANCE) -> list[str]:
    found = []
    for point in current.points:
        before = previous_line(history, point.target)
        if point.ok and before is not None and point.line < before - tolerance:
            found.append(point.target)
    return found


def _cell(point: TargetPoint | None) -> str:
    if point is None:
        return "—"
    if not point.ok:
        return "?" if point.state == "Completed" else "failed"
    return f"{point.line:.1f}" + (f" ({point.modules_failed} module(s) failed)" if point.modules_failed else "")


def _flag(before: float | None, point: TargetPoint, tolerance: float) -> tuple[str, str]:
    if not point.ok:
        return "", f"**✖ failed**: {point.error or point.state}"
    if before is None:
        return "", "new"
    change = point.line - before
    if change < -tolerance:
        return f"{change:+.1f}", "**▼ regression**"
    return f"{change:+.1f}", "▲ improved" if change > tolerance else "="


def trend_markdown(history: list[Sweep], current: Sweep, tolerance: float = TOLERANCE) -> str:
    """Oldest sweep first; one row per target of the current sweep, line coverage % after each run."""
    sweeps = [*history, current]
    heads = [(s.started_at or "?")[:16].replace("T", " ") for s in sweeps]
    heads[-1] += " (this)"
    lines = [
        "# covsweep: coverage trend",
        "",
        f"Line coverage (%) after each of the last {len(sweeps)} sweeps; "
        f"a drop of more than {tolerance} points from the previous measurement is a regression.",
        "",
        "| target | " + " | ".join(heads) + " | change | |",
        "|---|" + "---:|" * len(sweeps) + "---:|---|",
    ]
    for point in current.points:
        before = previous_line(history, point.target)
        change, flag = _flag(before, point, tolerance)
        cells = [_cell(s.point(point.target)) for s in sweeps]
        lines.append(f"| `{point.target}` | " + " | ".join(cells) + f" | {change} | {flag} |")
    fell = regressions(history, current, tolerance)
    failed = [p.target for p in current.points if not p.ok]
    lines += ["", f"**{len(fell)} regression(s)**: " + ", ".join(f"`{t}`" for t in fell) if fell else "No regression."]
    if failed:
        lines += ["", f"**{len(failed)} target(s) failed**: " + ", ".join(f"`{t}`" for t in failed)]
    return "\n".join(lines)
