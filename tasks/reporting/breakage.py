"""Generated tests that make the project's own tests fail in its suite (shared state, monkeypatching,
test order): found by bisection over the generated tests, each half run with the project's tests that
failed, in the order the suite ran them. The project's tests are never touched: only culprits go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.coverage.measurement import Measurement

# node ids to run in this order, the project's tests watched -> those of them that failed
RunWith = Callable[[list[str], list[str]], list[str]]
MAX_RUNS = 24  # runs of one bisection; past them, every test still suspected goes


def newly_broken(baseline: Measurement, final: Measurement) -> list[str]:
    """The project's own tests that fail with the generated tests on disk and passed without them."""
    before = set(baseline.failed_project)
    return [t for t in final.failed_project if t not in before]


@dataclass
class _Bisection:
    broken: list[str]
    position: dict[str, int]
    run_with: RunWith
    runs: int = 0

    def breaks(self, generated: list[str]) -> bool:
        """Do the broken tests fail again when run with these generated tests only?"""
        self.runs += 1
        ordered = sorted(generated + self.broken, key=self.position.__getitem__)
        return bool(self.run_with(ordered, self.broken))

    def culprits(self, suspects: list[str]) -> list[str]:
        """The suspects that break the project's tests (suspects known to break them together)."""
        if len(suspects) == 1 or self.runs >= MAX_RUNS:
            return suspects
        half = len(suspects) // 2
        first, second = suspects[:half], suspects[half:]
        in_first, in_second = self.breaks(first), self.breaks(second)
        if not (in_first or in_second):
            return suspects  # they break them only together: all of them go
        return (self.culprits(first) if in_first else []) + (self.culprits(second) if in_second else [])


def find_culprits(final: Measurement, suspects: list[str], broken: list[str], run_with: RunWith) -> list[str]:
    """The node ids of the `suspects` (generated tests) that make `broken` fail; none when `broken` fail
    without any generated test (their own order, a flaky test) or do not fail again with the suspects."""
    bisection = _Bisection(broken, {t: i for i, t in enumerate(final.order)}, run_with)
    if not suspects or bisection.breaks([]) or not bisection.breaks(suspects):
        return []
    return bisection.culprits(suspects)


def file_of(target: Path, node_id: str) -> Path:
    return target / node_id.split("::")[0]


def by_file(target: Path, node_ids: list[str]) -> dict[Path, list[str]]:
    """Generated test node ids -> their files and qualified names (`test_x`, `TestY.test_z`)."""
    files: dict[Path, list[str]] = {}
    for node_id in node_ids:
        files.setdefault(file_of(target, node_id), []).append(".".join(node_id.split("::")[1:]))
    return files
