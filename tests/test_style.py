"""The style rules ruff cannot check: no function of the product over 60 lines unless a comment says why."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

PACKAGES = ("covsweep", "flows", "tasks", "blocks")
MAX_LINES = 60
# On the line before the `def` (or before its decorators), or on a line of its signature up to the first body line.
REASON = re.compile(r"#\s*long:\s*\S")


def _has_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    above = [lines[first - 2]] if first >= 2 else []
    heading = lines[node.lineno - 1 : node.body[0].lineno]
    return any(REASON.search(line) for line in above + heading)


def long_functions(source: str, name: str = "<source>") -> list[str]:
    """`name:line function (N lines)` for each function over MAX_LINES lines without a `# long:` reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_LINES and not _has_reason(lines, node):
                found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_of_the_product_is_over_60_lines_without_a_reason():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found += long_functions(path.read_text(), str(path.relative_to(REPO)))
    assert found == []


def _function(lines: int, before: str = "", inside: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 3))
    return f"{before}def f(\n    a,\n):{inside}\n{body}"


def test_the_check_counts_from_def_to_the_last_line_and_reads_the_reason():
    assert long_functions(_function(60)) == []
    assert long_functions(_function(61)) == ["<source>:1 f (61 lines)"]
    assert long_functions(_function(61, before="# long: one table of every option\n")) == []
    assert long_functions(_function(61, before="@decorated\n# long: why\n")) == ["<source>:3 f (61 lines)"]
    assert long_functions(_function(61, before="# long: why\n@decorated\n")) == []
    assert long_functions(_function(61, inside="  # long: a state machine read top to bottom")) == []
    assert long_functions(_function(61, before="# long:\n")) == ["<source>:2 f (61 lines)"]


def test_nested_functions_and_methods_count_too():
    source = "class C:\n    def m(self):\n" + "".join(f"        y{i} = {i}\n" for i in range(61))
    assert long_functions(source) == ["<source>:2 m (62 lines)"]


def test_the_product_directories_are_there():
    # Guards the scan above against a rename that would leave it checking nothing.
    assert all(any((REPO / package).rglob("*.py")) for package in PACKAGES)
