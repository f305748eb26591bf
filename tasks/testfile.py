"""Cutting generated test files into single tests and putting the kept ones back together."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


def _is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")


def _is_test_class(node: ast.stmt) -> bool:
    return isinstance(node, ast.ClassDef) and node.name.startswith("Test")


def _span(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def test_names(source: str) -> list[str]:
    """Qualified names of the tests pytest would collect: `test_x` and `TestY.test_z`."""
    names = []
    for node in ast.parse(source).body:
        if _is_test_function(node):
            names.append(node.name)
        elif _is_test_class(node):
            names += [f"{node.name}.{m.name}" for m in node.body if _is_test_function(m)]
    return names


@dataclass
class TestFileBuilder:
    """Accumulates kept tests of several generated files into one file, renaming clashes."""

    header: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def add(self, source: str, kept: set[str]) -> None:
        lines = source.splitlines()
        for node in ast.parse(source).body:
            first, last = _span(node)
            text = "\n".join(lines[first - 1:last])
            if _is_test_function(node):
                if node.name in kept:
                    self.body.append(self._renamed(text, node.name, "def"))
            elif _is_test_class(node):
                methods = [m for m in node.body if _is_test_function(m)]
                dropped = [m for m in methods if f"{node.name}.{m.name}" not in kept]
                if len(dropped) < len(methods):
                    self.body.append(self._renamed(_without(lines, first, last, dropped), node.name, "class"))
            elif text not in self.header:
                self.header.append(text)

    def _renamed(self, text: str, name: str, keyword: str) -> str:
        new, n = name, 1
        while new in self.names:
            n += 1
            new = f"{name}_{n}"
        self.names.add(new)
        return text if new == name else text.replace(f"{keyword} {name}", f"{keyword} {new}", 1)

    def count(self) -> int:
        return len(test_names(self.render())) if self.body else 0

    def render(self) -> str:
        return "\n".join(self.header) + "\n\n\n" + "\n\n\n".join(self.body) + "\n"


def _without(lines: list[str], first: int, last: int, dropped: list[ast.stmt]) -> str:
    skip = set()
    for node in dropped:
        start, end = _span(node)
        skip.update(range(start, end + 1))
    return "\n".join(line for no, line in enumerate(lines[first - 1:last], first) if no not in skip)
