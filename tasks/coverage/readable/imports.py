"""A test file's imports without duplicates, merged and grouped as isort and ruff's `I` rules do:
`from __future__`, the standard library, third-party packages, the project, relative imports."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from tasks.coverage.readable.syntax import bound_by, code, small_statement

SECTIONS = ("future", "stdlib", "third_party", "first_party", "local")


@dataclass(frozen=True, order=True)
class Binding:
    """One name an import statement binds: `import module [as alias]` or `from module import name [as alias]`."""

    module: str
    name: str = ""  # empty for `import module`
    alias: str = ""

    @property
    def bound(self) -> str:
        """The name it binds."""
        return self.alias or self.name or self.module.split(".")[0]

    def section(self, first_party: set[str]) -> str:
        top = self.module.split(".")[0]
        if self.module.startswith("."):
            return "local"
        if top == "__future__":
            return "future"
        if top in first_party:
            return "first_party"
        return "stdlib" if top in sys.stdlib_module_names else "third_party"


def bindings_of(statement: cst.BaseStatement) -> list[Binding] | None:
    small = small_statement(statement)
    if isinstance(small, cst.Import):
        return [
            Binding(get_full_name_for_node(a.name) or "", alias=a.asname.name.value if a.asname else "")
            for a in small.names
        ]
    if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
        dots = "." * len(small.relative)
        module = dots + (get_full_name_for_node(small.module) or "") if small.module else dots
        return [
            Binding(module, get_full_name_for_node(a.name) or "", a.asname.name.value if a.asname else "")
            for a in small.names
        ]
    return None


def _has_comment(statement: cst.BaseStatement) -> bool:
    text = code(statement)
    return "#" in text


def _type_order(name: str) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, Classes, then functions and modules."""
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1 if name[:1].isupper() else 2), name.lower()


def _lines(bindings: list[Binding]) -> list[str]:
    """One section's statements: plain imports first, then `from` imports merged per module."""
    plain = sorted({b for b in bindings if not b.name}, key=lambda b: (b.module.lower(), b.alias))
    lines = [f"import {b.module}" + (f" as {b.alias}" if b.alias else "") for b in plain]
    by_module: dict[str, list[Binding]] = {}
    for binding in sorted({b for b in bindings if b.name}, key=lambda b: b.module.lower()):
        by_module.setdefault(binding.module, []).append(binding)
    for module, names in by_module.items():
        bare = sorted({b.name for b in names if not b.alias}, key=_type_order)
        if bare:
            lines.append(f"from {module} import {', '.join(bare)}")
        lines += [f"from {module} import {b.name} as {b.alias}" for b in sorted(n for n in names if n.alias)]
    return lines


def _block(body: list[cst.BaseStatement]) -> tuple[int, int]:
    """[start, end) of the imports at the head of the file, after its docstring."""
    start = (
        1
        if body
        and isinstance(small_statement(body[0]), cst.Expr)
        and isinstance(small_statement(body[0]).value, (cst.SimpleString, cst.ConcatenatedString))
        else 0
    )
    end = start
    while end < len(body) and bindings_of(body[end]) is not None:
        end += 1
    return start, end


def _organized(block: list[cst.BaseStatement], first_party: set[str]) -> list[cst.BaseStatement]:
    bindings = [b for statement in block for b in bindings_of(statement) or []]
    statements: list[cst.BaseStatement] = []
    for section in SECTIONS:
        lines = _lines([b for b in bindings if b.section(first_party) == section])
        for number, line in enumerate(lines):
            statement = cst.parse_statement(line + "\n")
            if number == 0 and statements:
                statement = statement.with_changes(leading_lines=[cst.EmptyLine()])
            statements.append(statement)
    if statements:
        statements[0] = statements[0].with_changes(leading_lines=block[0].leading_lines)
    return statements


def _again(statement: cst.BaseStatement, known: set[Binding], rest: list[cst.BaseStatement]) -> bool:
    """An import further down that binds only what the head of the file already bound, to the same
    thing, and that nothing in between binds otherwise."""
    bindings = bindings_of(statement)
    if not bindings or not set(bindings) <= known or _has_comment(statement):
        return False
    others: set[str] = set()
    for other in rest:
        if bindings_of(other) is None:
            # A compound statement at module level (if, try) may bind anything.
            others |= (
                bound_by(other)
                if small_statement(other) or isinstance(other, (cst.FunctionDef, cst.ClassDef))
                else {"*"}
            )
    return not ({b.bound for b in bindings} & others) and "*" not in others


def tidy_imports(source: str, first_party: set[str]) -> str:
    """`source` with no import twice; its leading imports merged and grouped unless a comment is among them."""
    module = cst.parse_module(source)
    body = list(module.body)
    start, end = _block(body)
    block = body[start:end]
    if any(_has_comment(s) for s in block):
        seen: set[str] = set()
        kept = []
        for statement in block:
            text = code(statement).strip()
            if text not in seen:
                kept.append(statement)
            seen.add(text)
        block = kept
    elif block:
        block = _organized(block, first_party)
    known = {b for statement in block for b in bindings_of(statement) or []}
    rest = [s for s in body[end:] if not _again(s, known, body[end:])]
    tidied = module.with_changes(body=body[:start] + block + rest)
    return tidied.code if not tidied.deep_equals(module) else source
