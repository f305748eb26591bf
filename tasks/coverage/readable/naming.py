"""Test names that say what a test exercises: `test_<function>_<case>`, the function from the calls the
test makes, the case from what it checks (`raises_value_error`, `returns_none`, `updates_lines`, ...)."""

from __future__ import annotations

import re

import libcst as cst
from libcst.helpers import get_full_name_for_node

from tasks.coverage.readable.syntax import (
    GENERIC_TEST,
    RESERVED,
    free_name,
    is_class_name,
    is_test,
    is_test_class,
    last_name,
    root_name,
    single_target,
    small_statement,
    snake,
    statements,
)

MAX_VALUE_CHARS = 12  # `returns_1220`, `returns_welcome`; longer values say less than a suffix


class _Calls(cst.CSTVisitor):
    """The calls in a piece of code, outermost first."""

    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    visitor = _Calls()
    node.visit(visitor)
    return visitor.calls


class Subjects:
    """What the calls of one test exercise, knowing the project's names and the test's objects."""

    def __init__(self, project_names: set[str], function: cst.FunctionDef) -> None:
        self.project_names = project_names
        self.classes: dict[str, str] = {}  # variable -> the class of the object it holds
        for statement in statements(function.body):
            if (assigned := single_target(statement)) and isinstance(assigned[1], cst.Call):
                func = assigned[1].func
                made = last_name(func) if is_class_name(last_name(func)) else ""
                if not made and isinstance(func, cst.Attribute) and is_class_name(last_name(func.value)):
                    made = last_name(func.value)
                if made:
                    self.classes[assigned[0]] = made

    def exercises(self, call: cst.Call) -> bool:
        """A call of the project's code: through one of its imported names, or a method of an object."""
        if isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Call):
            return self.exercises(call.func.value)  # Cart().count()
        root = root_name(call.func)
        if root is None:
            return False
        if root.value in self.project_names or root.value in self.classes:
            return True
        return isinstance(call.func, cst.Attribute) and root.value not in RESERVED and root.value != "pytest"

    def describe(self, call: cst.Call) -> str:
        """cart_add for cart.add(...), money_parse for Money.parse(...), coupon_percent for coupon_percent(...)."""
        func = call.func
        if not isinstance(func, cst.Attribute):
            return snake(last_name(func))
        owner = func.value
        if isinstance(owner, cst.Name) and owner.value in self.classes:
            return f"{snake(self.classes[owner.value])}_{snake(func.attr.value)}"
        if isinstance(owner, cst.Call) and is_class_name(last_name(owner.func)):
            owner = owner.func  # Cart().count()
        if is_class_name(last_name(owner)):
            return f"{snake(last_name(owner))}_{snake(func.attr.value)}"
        return snake(func.attr.value)

    def first(self, node: cst.CSTNode | None) -> cst.Call | None:
        return next((c for c in _calls(node) if self.exercises(c)), None) if node is not None else None


def _raised(statement: cst.BaseStatement) -> str | None:
    """ValueError of `with pytest.raises(ValueError):`."""
    if not isinstance(statement, cst.With):
        return None
    for item in statement.items:
        call = item.item
        if isinstance(call, cst.Call) and (get_full_name_for_node(call.func) or "").endswith("raises") and call.args:
            expected = call.args[0].value
            if isinstance(expected, cst.Tuple) and expected.elements:
                expected = expected.elements[0].value
            return last_name(expected) or "error"
    return None


def _expects_failure(function: cst.FunctionDef) -> bool:
    return any(
        (get_full_name_for_node(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator) or "").endswith(
            "xfail"
        )
        for d in function.decorators
    )


def _value_word(value: cst.BaseExpression) -> str:
    """none, true, false, zero, empty, 1220, minus_5, welcome; '' when the value says nothing short."""
    if isinstance(value, cst.Name) and value.value in ("None", "True", "False"):
        return value.value.lower()
    if isinstance(value, (cst.List, cst.Tuple, cst.Set, cst.Dict)) and not value.elements:
        return "empty"
    if isinstance(value, cst.Integer):
        number = value.evaluated_value
        return "zero" if number == 0 else str(number) if len(str(number)) <= MAX_VALUE_CHARS else ""
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        inner = _value_word(value.expression)
        return f"minus_{inner}" if inner.isdigit() else ""
    if isinstance(value, cst.SimpleString):
        text = value.evaluated_value
        if not text:
            return "empty"
        word = snake(str(text))
        return word if re.fullmatch(r"[a-z][a-z0-9_]*", word) and len(word) <= MAX_VALUE_CHARS else ""
    return ""


def _checked(test: cst.BaseExpression) -> tuple[cst.BaseExpression, str]:
    """(what an assertion checks, the word for what it expects)."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return test.expression, "false"
    if isinstance(test, cst.Call) and last_name(test.func) == "isinstance" and len(test.args) == 2:
        return test.args[0].value, snake(last_name(test.args[1].value))
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        target = test.comparisons[0]
        if isinstance(target.operator, (cst.Equal, cst.Is)):
            return test.left, _value_word(target.comparator)
        return test.left, ""
    return test, "true"


def _state(subject: cst.BaseExpression) -> str | None:
    """`lines` of cart.lines and of len(cart.lines): the assertion is about an object's state."""
    if isinstance(subject, cst.Call) and isinstance(subject.func, cst.Name) and subject.args:
        subject = subject.args[0].value
    return subject.attr.value if isinstance(subject, cst.Attribute) else None


def _argument_word(call: cst.Call) -> str:
    """with_negative_limit for low_stock(limit=-743): a notable keyword argument of the call."""
    for arg in call.args:
        if arg.keyword is None:
            continue
        word = _value_word(arg.value)
        if word.startswith("minus_"):
            return f"with_negative_{arg.keyword.value}"
        if word in ("zero", "empty", "none"):
            return f"with_{'no' if word == 'none' else word}_{arg.keyword.value}"
    return ""


def _before(body: list[cst.BaseStatement], at: int, name: str, subjects: Subjects) -> cst.Call | None:
    """The last call before statement `at` that made the object `name` or called a method of it."""
    for statement in reversed(body[:at]):
        target = single_target(statement)
        for call in _calls(statement):
            made = target is not None and target[0] == name
            on_it = (root := root_name(call.func)) is not None and root.value == name
            if (made or on_it) and subjects.exercises(call):
                return call
    return None


def _owner(subject: cst.BaseExpression) -> cst.Name | None:
    """`cart` of cart, cart.lines and len(cart.lines)."""
    if isinstance(subject, cst.Call) and isinstance(subject.func, cst.Name) and subject.args:
        subject = subject.args[0].value
    return root_name(subject)


def _from_assertion(body: list[cst.BaseStatement], subjects: Subjects) -> tuple[cst.Call | None, str]:
    """The call the last assertion checks, and the case it checks."""
    for at in range(len(body) - 1, -1, -1):
        small = small_statement(body[at])
        if not isinstance(small, cst.Assert):
            continue
        subject, word = _checked(small.test)
        call = subjects.first(subject)
        if call is None and (owner := _owner(subject)) is not None:
            call = _before(body, at, owner.value, subjects)
        if state := _state(subject):
            return call, f"updates_{snake(state)}"
        return call, f"returns_{word}" if word else ""
    return None, ""


def describe_test(function: cst.FunctionDef, project_names: set[str], fallback: str) -> str:
    """`test_<function>_<case>` for one test; `fallback` names the function when no call says."""
    subjects = Subjects(project_names, function)
    body = statements(function.body)
    call, case = None, ""
    for statement in reversed(body):
        if (error := _raised(statement)) is not None:
            call, case = subjects.first(statement.body), f"raises_{snake(error)}"
            break
    if call is None and _expects_failure(function):
        call, case = next((c for s in reversed(body) if (c := subjects.first(s))), None), "fails"
    if call is None and not case:
        call, case = _from_assertion(body, subjects)
    if call is None:
        call = next((c for s in reversed(body) if (c := subjects.first(s))), None)
    if call is not None and not case:
        case = _argument_word(call)
    parts = [subjects.describe(call) if call is not None else fallback, case]
    return "test_" + "_".join(p for p in parts if p)


def name_tests(
    module: cst.Module, project_names: set[str], fallback: str, kept: set[str]
) -> tuple[cst.Module, dict[str, str]]:
    """Generic test names (test_0, test_case_3) replaced; renames old -> new, qualified by class."""
    renames: dict[str, str] = {}

    def rename(body: list[cst.BaseStatement], prefix: str) -> list[cst.BaseStatement]:
        taken = {s.name.value for s in body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}
        result = []
        for statement in body:
            if is_test(statement) and GENERIC_TEST.match(statement.name.value):
                old = statement.name.value
                if f"{prefix}{old}" not in kept:
                    new = free_name(describe_test(statement, project_names, fallback), taken)
                    taken.add(new)
                    renames[f"{prefix}{old}"] = f"{prefix}{new}"
                    statement = statement.with_changes(name=cst.Name(new))
            elif is_test_class(statement):
                members = rename(list(statement.body.body), f"{statement.name.value}.")
                statement = statement.with_changes(body=statement.body.with_changes(body=members))
            result.append(statement)
        return result

    return module.with_changes(body=rename(list(module.body), "")), renames
