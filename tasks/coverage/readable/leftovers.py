"""What a reviewer would still stumble on in a test file: names a generator numbered, the same import
twice, sys.path edits, assertions that cannot fail."""

from __future__ import annotations

from collections import Counter

import libcst as cst
from libcst.helpers import get_full_name_for_node

from tasks.coverage.readable.imports import bindings_of
from tasks.coverage.readable.modules import find_aliases
from tasks.coverage.readable.syntax import (
    GENERIC_MODULE,
    GENERIC_TEST,
    GENERIC_VARIABLE,
    code,
    single_target,
    statements,
    tests_of,
)
from tasks.coverage.readable.tautologies import find_tautologies

SYS_PATH_EDITS = {"insert", "append", "extend"}


class _SysPath(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Call(self, node: cst.Call) -> None:
        parts = (get_full_name_for_node(node.func) or "").split(".")
        if len(parts) == 3 and parts[0] in ("sys", "_covsweep_sys") and parts[1:2] == ["path"]:
            if parts[2] in SYS_PATH_EDITS:
                self.found.append(code(node))


def leftovers(source: str) -> dict[str, list[str]]:
    """Per kind (generic-names, duplicate-imports, sys-path, cannot-fail): what was found, as code."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        return {}
    names = [name for name, _ in tests_of(module) if GENERIC_TEST.match(name.rsplit(".", 1)[-1])]
    for _, test in tests_of(module):
        names += [t[0] for s in statements(test.body) if (t := single_target(s)) and GENERIC_VARIABLE.match(t[0])]
    names += [a.name for a in find_aliases(module, "", set()) if a.via_sys_modules or GENERIC_MODULE.match(a.name)]
    imports = Counter(b for statement in module.body for b in bindings_of(statement) or [])
    sys_path = _SysPath()
    module.visit(sys_path)
    found = {
        "generic-names": list(dict.fromkeys(names)),
        "duplicate-imports": [f"{b.module}{'.' + b.name if b.name else ''}" for b, n in imports.items() if n > 1],
        "sys-path": sys_path.found,
        "cannot-fail": [f"{test}: {assertion}" for test, assertion in find_tautologies(module)],
    }
    return {kind: items for kind, items in found.items() if items}
