"""How covsweep runs unittest in a sandbox and reads back what each test did: the twin of pytest_support.

The runner is `unittest_runner.py`, copied into the run's workspace: unittest's own discovery and
runner, with each test's outcome written as JSON. Under `coverage run --rcfile=...` with
`dynamic_context = test_function`, coverage.py names each TestCase method's context
`<module>.<Class>.<method>`, as it names a pytest test's `<module>.<function>`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tasks.sandbox.pytest_support import PER_TEST_TIMEOUT_S
from tasks.sandbox.runner import readable_file

RUNNER = Path(__file__).with_name("unittest_runner.py")
RUNNER_NAME = "covsweep_unittest.py"


def install_runner(workspace: Path) -> Path:
    """The runner script in the workspace, where the sandbox can read it."""
    return readable_file(workspace / RUNNER_NAME, RUNNER.read_text())


def _reached(start: Path, path: Path) -> bool:
    """Whether discovery from `start` reaches `path`: it goes down into packages only."""
    if not path.is_relative_to(start):
        return False
    between = path.relative_to(start).parts
    return all((start.joinpath(*between[: i + 1]) / "__init__.py").exists() for i in range(len(between)))


def discovery_roots(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(start, top) per test folder, as `python -m unittest discover -s START -t TOP` needs them: TOP is
    the folder above every package START is in (START itself when it is no package). A folder that
    discovery from another one reaches is not started again: its tests would run twice."""
    roots: list[tuple[Path, Path]] = []
    for start in sorted({p if p.is_dir() else p.parent for p in paths}, key=lambda p: (len(p.parts), str(p))):
        if any(_reached(other, start) for other, _ in roots):
            continue
        top = start
        while (top / "__init__.py").exists() and top.parent != top:
            top = top.parent
        roots.append((start, top))
    return roots


def unittest_args(runner: Path, roots: list[tuple[Path, Path]], outcomes: Path, pattern: str = "test*.py") -> str:
    """The runner's command line after `"$PY"` or `"$PY" -m coverage run --rcfile=...`."""
    args = [str(runner)]
    for start, top in roots:
        args += ["--discover", str(start), str(top)]
    args += ["--pattern", pattern, "--outcomes", str(outcomes), "--timeout", str(PER_TEST_TIMEOUT_S)]
    return " ".join(shlex.quote(a) for a in args)


def unittest_outcomes(outcomes: Path, stem: str) -> dict[str, bool]:
    """qualname -> passed for the tests of module `stem` (as junit_outcomes gives them for pytest);
    an expected failure passed, an unexpected success failed."""
    if not outcomes.exists():
        return {}
    results: dict[str, bool] = {}
    for test_id, outcome in json.loads(outcomes.read_text()).items():
        parts = test_id.split(".")
        if stem not in parts[:-1]:
            continue
        qualname = ".".join(parts[parts.index(stem) + 1 :])
        results[qualname] = outcome in ("passed", "expected_failure")
    return results
