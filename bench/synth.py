"""A synthetic target project for the benchmarks: N small modules in a src/ layout package, a test
file per module that covers part of it, and a pyproject with `pythonpath = ["src"]`.

Deterministic: the same N gives the same project.
"""

from __future__ import annotations

import random
import re
import shutil
import textwrap
from pathlib import Path

PACKAGE = "benchpkg"
FUNCTIONS_PER_MODULE = 4

PYPROJECT = f"""\
[project]
name = "{PACKAGE}"
version = "0.0.0"
requires-python = ">=3.10"

[tool.pytest.ini_options]
pythonpath = ["src"]
testpaths = ["tests"]
"""

# Function templates: (source, calls that take each branch). A test file calls some of them.
TEMPLATES = [
    (
        """\
        def clamp_{i}(value, low={a}, high={b}):
            if value < low:
                return low
            if value > high:
                return high
            return value
        """,
        ["clamp_{i}({a} - 1) == {a}", "clamp_{i}({b} + 1) == {b}", "clamp_{i}({a}) == {a}"],
    ),
    (
        """\
        def classify_{i}(n):
            if n < 0:
                return "negative"
            elif n == 0:
                return "zero"
            elif n % {a} == 0:
                return "multiple"
            return "other"
        """,
        [
            'classify_{i}(-1) == "negative"',
            'classify_{i}(0) == "zero"',
            'classify_{i}({a}) == "multiple"',
            'classify_{i}({a} + 1) in ("other", "multiple")',
        ],
    ),
    (
        """\
        def total_{i}(items, limit={b}):
            result = 0
            for item in items:
                if item is None:
                    continue
                result += item
                if result > limit:
                    break
            return result
        """,
        ["total_{i}([1, None, 2]) == 3", "total_{i}([{b}, {b}, {b}]) == 2 * {b}", "total_{i}([]) == 0"],
    ),
    (
        """\
        def parse_{i}(text):
            text = text.strip()
            if not text:
                raise ValueError("empty")
            try:
                return int(text, {base})
            except ValueError:
                return None
        """,
        ['parse_{i}(" 10 ") == int("10", {base})', 'parse_{i}("zz!") is None'],
    ),
    (
        """\
        class Counter{i}:
            def __init__(self, start=0):
                self.value = start

            def step(self, by=1):
                if by <= 0:
                    raise ValueError("by must be positive")
                self.value += by
                return self.value

            def reset(self):
                old, self.value = self.value, 0
                return old
        """,
        ["Counter{i}({a}).step() == {a} + 1", "Counter{i}({a}).reset() == {a}"],
    ),
]


def module_source(index: int, rng: random.Random) -> tuple[str, list[str], list[str]]:
    """One module's source and the assertions its test file makes (part of its branches)."""
    chosen = rng.sample(range(len(TEMPLATES)), FUNCTIONS_PER_MODULE)
    parts, names, checks = [f'"""Synthetic module {index}."""\n'], [], []
    for k, t in enumerate(chosen):
        source, calls = TEMPLATES[t]
        values = {
            "i": f"{index}_{k}",
            "a": rng.randint(2, 9),
            "b": rng.randint(10, 99),
            "base": rng.choice([8, 10, 16]),
        }
        code = textwrap.dedent(source).format(**values)
        parts.append(code)
        names.append(re.match(r"(?:def|class) (\w+)", code).group(1))
        # Cover part of the module: skip some functions entirely, some branches of the others.
        if rng.random() < 0.7:
            checks += [c.format(**values) for c in rng.sample(calls, max(1, len(calls) // 2))]
    if not checks:  # every test file exercises its module at least a little
        checks.append(f"{names[0]} is not None")
    return "\n\n".join(parts), names, checks


def generate(root: Path, modules: int, seed: int = 20240601, with_tests: bool = True) -> Path:
    """Write the project into `root` (created) and return it; without tests, no tests/ folder."""
    rng = random.Random(seed)
    pkg = root / "src" / PACKAGE
    tests = root / "tests"
    pkg.mkdir(parents=True)
    tests.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "__init__.py").write_text("")  # empty: not a module of its own, so exactly N modules
    width = max(3, len(str(modules - 1)))
    for index in range(modules):
        name = f"mod_{index:0{width}d}"
        source, names, checks = module_source(index, rng)
        (pkg / f"{name}.py").write_text(source)
        body = [f"from {PACKAGE}.{name} import {', '.join(names)}", ""]
        for n, check in enumerate(checks):
            body += ["", f"def test_{n}():", f"    assert {check}", ""]
        (tests / f"test_{name}.py").write_text("\n".join(body))
    if not with_tests:
        shutil.rmtree(tests)
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--modules", type=int, default=300)
    args = parser.parse_args()
    print(generate(args.dest, args.modules))
