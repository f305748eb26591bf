"""Assertions that cannot fail: Pynguin restates a constructor's type right after calling it
(`assert isinstance(cart, Cart)`, `assert cart is not None`, `assert f"{type(cart).__module__}..."`)."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from tasks.coverage.readable.syntax import (
    code,
    is_class_name,
    last_name,
    single_target,
    small_statement,
    statements,
    tests_of,
    variables_in,
)

TYPE_NAMES = {"__module__", "__qualname__", "__name__"}


def _type_of(node: cst.BaseExpression) -> str | None:
    """`v` of `type(v)` and `v.__class__`."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "type":
        if len(node.args) == 1 and isinstance(node.args[0].value, cst.Name):
            return node.args[0].value.value
    if isinstance(node, cst.Attribute) and node.attr.value == "__class__" and isinstance(node.value, cst.Name):
        return node.value.value
    return None


def _type_text_of(node: cst.BaseExpression) -> str | None:
    """`v` of `type(v).__qualname__` and of f-strings made only of such parts."""
    if isinstance(node, cst.Attribute) and node.attr.value in TYPE_NAMES:
        return _type_of(node.value)
    if isinstance(node, cst.FormattedString):
        subjects = {
            _type_text_of(part.expression) if isinstance(part, cst.FormattedStringExpression) else ""
            for part in node.parts
        }
        subjects.discard("")
        return subjects.pop() if len(subjects) == 1 else None
    return None


def _restates(test: cst.BaseExpression, constructed: dict[str, str]) -> bool:
    if isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance":
        args = test.args
        return (
            len(args) == 2
            and isinstance(args[0].value, cst.Name)
            and constructed.get(args[0].value.value) == code(args[1].value)
        )
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return False
    target = test.comparisons[0]
    operator, right = target.operator, target.comparator
    if isinstance(test.left, cst.Name) and test.left.value in constructed:
        return isinstance(operator, cst.IsNot) and isinstance(right, cst.Name) and right.value == "None"
    if (subject := _type_of(test.left)) in constructed:
        return isinstance(operator, (cst.Is, cst.Equal)) and code(right) == constructed[subject]
    if (subject := _type_text_of(test.left)) in constructed and isinstance(right, cst.SimpleString):
        class_name = constructed[subject].rsplit(".", 1)[-1]
        text = str(right.evaluated_value)
        return isinstance(operator, cst.Equal) and (text == class_name or text.endswith(f".{class_name}"))
    return False


def _constructed(statement: cst.BaseStatement, constructed: dict[str, str]) -> None:
    """Track `v = Cls(...)` (v -> "Cls", as written); any other binding of v forgets it."""
    if assigned := single_target(statement):
        name, value = assigned
        constructed.pop(name, None)
        if isinstance(value, cst.Call) and is_class_name(last_name(value.func)):
            constructed[name] = code(value.func)
    elif not isinstance(small_statement(statement), (cst.Assert, cst.Expr)):
        for name in variables_in(statement):
            constructed.pop(name, None)


def tautologies(function: cst.FunctionDef) -> Iterator[cst.BaseStatement]:
    """The statements of `function` that assert what its own constructor call already guarantees."""
    constructed: dict[str, str] = {}
    for statement in statements(function.body):
        small = small_statement(statement)
        if isinstance(small, cst.Assert) and _restates(small.test, constructed):
            yield statement
        else:
            _constructed(statement, constructed)


def remove_tautologies(module: cst.Module, kept: set[str]) -> cst.Module:
    """`module` without such assertions, in the tests not named in `kept`."""
    doomed = {id(s) for name, test in tests_of(module) if name not in kept for s in tautologies(test)}
    if not doomed:
        return module
    return module.visit(_Without(doomed))


def find_tautologies(module: cst.Module) -> list[tuple[str, str]]:
    """(test, assertion) for each assertion that cannot fail."""
    return [(name, code(s).strip()) for name, test in tests_of(module) for s in tautologies(test)]


class _Without(cst.CSTTransformer):
    def __init__(self, doomed: set[int]) -> None:
        self.doomed = doomed

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        return cst.RemoveFromParent() if id(original) in self.doomed else updated
