"""Cutting generated test files into single tests and putting the kept ones back together."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field

from tasks.core.testfiles import is_test_class, is_test_function, test_names


def _span(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def _bindings(node: ast.stmt, text: str) -> dict[str, tuple[str, bool]]:
    """Module-level names a statement binds -> (what they are bound to, whether renaming the name
    in place is safe). `from m import (a, b)` binds `a` to the same thing however it is wrapped."""
    if isinstance(node, ast.Import):
        return {(a.asname or a.name.split(".")[0]): (f"import {a.name}", bool(a.asname)) for a in node.names}
    if isinstance(node, ast.ImportFrom):
        source = "." * node.level + (node.module or "")
        return {
            (a.asname or a.name): (f"from {source} import {a.name}", bool(a.asname))
            for a in node.names
            if a.name != "*"
        }
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name: (text, True)}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id: (text, True) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return {}


def _rename_identifiers(source: str, renames: dict[str, str]) -> str:
    """Rename names (not attributes after a dot, not text in strings or comments) in `source`."""
    tokens, previous = [], None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string in renames and not (previous and previous.string == "."):
            tok = tok._replace(string=renames[tok.string])
        tokens.append(tok)
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = tok
    return tokenize.untokenize(tokens)


@dataclass
class TestFileBuilder:
    """Accumulates kept tests of several generated files into one file, renaming clashes."""

    header: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    bodies: set[str] = field(default_factory=set)
    bindings: dict[str, str] = field(default_factory=dict)  # header name -> what it is bound to

    def add(self, source: str, kept: set[str]) -> None:
        source = self._rebind(source)
        lines = source.splitlines()
        for node in ast.parse(source).body:
            first, last = _span(node)
            text = "\n".join(lines[first - 1 : last])
            if is_test_function(node):
                if node.name in kept:
                    self._append(text, node.name, "def")
            elif is_test_class(node):
                methods = [m for m in node.body if is_test_function(m)]
                dropped = [m for m in methods if f"{node.name}.{m.name}" not in kept]
                if len(dropped) < len(methods):
                    self._append(_without(lines, first, last, dropped), node.name, "class")
            else:
                for name, (bound, _) in _bindings(node, text).items():
                    self.bindings.setdefault(name, bound)
                if text not in self.header:
                    self.header.append(text)

    def _rebind(self, source: str) -> str:
        """A module-level name this round binds to something else than an earlier round did
        (Pynguin numbers its `module_N` aliases per file) gets a name of its own in this round."""
        tree = ast.parse(source)
        lines = source.splitlines()
        used = set(self.bindings) | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        renames: dict[str, str] = {}
        for node in tree.body:
            if is_test_function(node) or is_test_class(node):
                continue
            first, last = _span(node)
            text = "\n".join(lines[first - 1 : last])
            for name, (bound, renamable) in sorted(_bindings(node, text).items()):
                if renamable and self.bindings.get(name, bound) != bound and name not in renames:
                    n = 2
                    while f"{name}_{n}" in used:
                        n += 1
                    renames[name] = f"{name}_{n}"
                    used.add(renames[name])
        return _rename_identifiers(source, renames) if renames else source

    def _append(self, text: str, name: str, keyword: str) -> None:
        """Add a test under a free name; the same test body twice (a file written again) once."""
        body = text.replace(f"{keyword} {name}", f"{keyword} _", 1)
        if body in self.bodies:
            return
        self.bodies.add(body)
        new, n = name, 1
        while new in self.names:
            n += 1
            new = f"{name}_{n}"
        self.names.add(new)
        self.body.append(text if new == name else text.replace(f"{keyword} {name}", f"{keyword} {new}", 1))

    def count(self) -> int:
        return len(test_names(self.render())) if self.body else 0

    def render(self) -> str:
        return "\n".join(self.header) + "\n\n\n" + "\n\n\n".join(self.body) + "\n"


def _without(lines: list[str], first: int, last: int, dropped: list[ast.stmt]) -> str:
    skip = set()
    for node in dropped:
        start, end = _span(node)
        skip.update(range(start, end + 1))
    return "\n".join(line for no, line in enumerate(lines[first - 1 : last], first) if no not in skip)
