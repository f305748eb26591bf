"""Variables named after what they hold: `var_51 = Cart()` -> `cart`, `var_3 = cart.total()` -> `total`,
a constant used once written where it is used, a result asserted right away asserted directly
(`assert cart.total() == 0`), and a value nothing reads not kept in a variable."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import Assignment, MetadataWrapper, ParentNodeProvider, ScopeProvider

from tasks.coverage.readable.syntax import (
    GENERIC_TEST,
    GENERIC_VARIABLE,
    NUMBERED,
    free_name,
    is_class_name,
    last_name,
    single_target,
    small_statement,
    snake,
    statements,
    tests_of,
    variables_in,
)

NUMBERS = (cst.Integer, cst.Float, cst.Imaginary)
STRINGS = (cst.SimpleString, cst.ConcatenatedString)
CONTAINER_NAMES = {cst.List: "items", cst.Tuple: "values", cst.Set: "members", cst.Dict: "mapping"}


@dataclass
class Plan:
    """What happens to one test's generic variables, by node id."""

    renames: dict[int, str] = field(default_factory=dict)  # Name node -> its new name
    inlines: dict[int, cst.BaseExpression] = field(default_factory=dict)  # Name node -> the value it stands for
    removed: set[int] = field(default_factory=set)  # statements that go
    unassigned: set[int] = field(default_factory=set)  # `v = f()` statements that become `f()`


def _immutable(node: cst.BaseExpression, bound: set[str]) -> bool:
    """A literal that evaluates to the same immutable value wherever it is written."""
    if isinstance(node, NUMBERS + STRINGS):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("None", "True", "False") or (hasattr(builtins, node.value) and node.value not in bound)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        return isinstance(node.expression, NUMBERS)
    if isinstance(node, cst.Tuple):
        return all(isinstance(e, cst.Element) and _immutable(e.value, bound) for e in node.elements)
    return False


def _leftmost(node: cst.BaseExpression) -> cst.BaseExpression:
    """The first operand Python evaluates in `node`: where a value computed just before can go unchanged."""
    if isinstance(node, (cst.Attribute, cst.Subscript)):
        return _leftmost(node.value)
    if isinstance(node, cst.Comparison):
        return _leftmost(node.left)
    if isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
        return _leftmost(node.left)
    if isinstance(node, cst.UnaryOperation):
        return _leftmost(node.expression)
    if isinstance(node, cst.Call):
        # Looking up a plain name (isinstance, len) has no effect: its first argument comes first.
        plain = isinstance(node.func, cst.Name) and node.args and not node.args[0].star and not node.args[0].keyword
        return _leftmost(node.args[0].value) if plain else _leftmost(node.func)
    return node


def _literal_name(value: cst.BaseExpression) -> str:
    if isinstance(value, NUMBERS) or isinstance(value, cst.UnaryOperation):
        return "number"
    if isinstance(value, cst.SimpleString):
        return "data" if "b" in value.prefix.lower() else "text"
    if isinstance(value, cst.Name):
        if value.value in ("True", "False"):
            return "flag"
        return "kind" if isinstance(getattr(builtins, value.value, None), type) else "function"
    if isinstance(value, cst.Lambda):
        return "function"
    return CONTAINER_NAMES.get(type(value), "value")


def _wanted(value: cst.BaseExpression, first_use: cst.CSTNode | None) -> list[str]:
    """Names for a variable holding `value`, best first."""
    if isinstance(value, cst.Call):
        callee = last_name(value.func)
        if is_class_name(callee):
            return [snake(callee)]
        if isinstance(value.func, cst.Attribute) and is_class_name(last_name(value.func.value)):
            if not callee.startswith("__"):
                return [snake(last_name(value.func.value))]  # Money.parse(...) makes a Money
        if callee and not callee.startswith("__"):
            named = snake(callee.removeprefix("get_"))
            return [named, "result", f"{named}_result"]
        return ["result"]
    if isinstance(first_use, cst.Arg) and first_use.keyword is not None:
        return [first_use.keyword.value]
    if isinstance(value, (cst.Attribute, cst.Name)) and _literal_name(value) not in ("kind", "function"):
        return [snake(last_name(value)) or "value"]
    return [_literal_name(value)]


class _Planner:
    def __init__(self, wrapper: MetadataWrapper, module_bound: set[str]) -> None:
        self.scopes = wrapper.resolve(ScopeProvider)
        self.parents = wrapper.resolve(ParentNodeProvider)
        self.module_bound = module_bound

    def top_statement(self, node: cst.CSTNode, body: cst.BaseSuite) -> cst.CSTNode:
        while (parent := self.parents.get(node)) is not None and parent is not body:
            node = parent
        return node

    def plan(self, function: cst.FunctionDef, plan: Plan) -> None:
        body = statements(function.body)
        if not body:
            return
        index = {id(s): i for i, s in enumerate(body)}
        scope = self.scopes[body[0]]
        bound = self.module_bound | {a.name for a in scope.assignments}
        taken = self.module_bound | variables_in(function)
        pattern = NUMBERED if GENERIC_TEST.match(function.name.value) else GENERIC_VARIABLE
        generic = {}
        for name in {a.name for a in scope.assignments if pattern.match(a.name)}:
            assignments = list(scope.assignments[name])
            if all(isinstance(a, Assignment) and isinstance(a.node, cst.Name) for a in assignments):
                first = self.top_statement(assignments[0].node, function.body)
                generic[name] = (index.get(id(first), len(body)), assignments)
        for _, (at, assignments) in sorted(generic.items(), key=lambda item: (item[1][0], item[0])):
            refs = [r.node for a in assignments for r in a.references]
            after = all(index.get(id(self.top_statement(r, function.body)), -1) > at for r in refs)
            self._plan_variable(plan, body, at, assignments, refs, after, bound, taken)

    def _plan_variable(
        self, plan: Plan, body: list, at: int, assignments: list, refs: list, after: bool, bound: set, taken: set
    ) -> None:
        """Drop, inline or name one generic variable; one assigned in several places or read before
        its assignment is only named."""
        assigned = single_target(body[at]) if at < len(body) else None
        if len(assignments) != 1 or assigned is None or not after:
            return self._rename(plan, assignments, refs, ["value"], taken)
        value = assigned[1]
        if not refs:
            return self._unused(plan, body[at], value, bound, len(body))
        if len(refs) == 1 and self._inline(plan, refs[0], value, at, body, bound):
            plan.removed.add(id(body[at]))
            return None
        return self._rename(plan, assignments, refs, _wanted(value, self.parents.get(refs[0])), taken)

    def _rename(self, plan: Plan, assignments: list, refs: list, wanted: list[str], taken: set[str]) -> None:
        new = next((w for w in wanted if free_name(w, taken) == w), None) or free_name(wanted[-1], taken)
        taken.add(new)
        for node in [a.node for a in assignments] + refs:
            plan.renames[id(node)] = new

    def _unused(self, plan: Plan, statement, value: cst.BaseExpression, bound: set[str], size: int) -> None:
        if not _immutable(value, bound):
            plan.unassigned.add(id(statement))
        elif size > 1:
            plan.removed.add(id(statement))

    def _inline(self, plan: Plan, ref: cst.CSTNode, value, at: int, body: list, bound: set[str]) -> bool:
        """A literal used once goes where it is used (an argument, an element, a comparison's right
        side); a call's result asserted in the very next line goes into that assertion."""
        parent = self.parents.get(ref)
        if _immutable(value, bound) and isinstance(parent, (cst.Arg, cst.Element, cst.ComparisonTarget)):
            plan.inlines[id(ref)] = value
            return True
        following = small_statement(body[at + 1]) if at + 1 < len(body) else None
        # An object a test made is kept in a variable, as people write it: only results go inline.
        made = isinstance(value, cst.Call) and is_class_name(last_name(value.func))
        postfix = isinstance(value, (cst.Call, cst.Attribute, cst.Subscript)) and not made
        if postfix and isinstance(following, cst.Assert) and _leftmost(following.test) is ref:
            plan.inlines[id(ref)] = value
            return True
        return False


class _Apply(cst.CSTTransformer):
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if id(original) in self.plan.inlines:
            return self.plan.inlines[id(original)].visit(self)
        if id(original) in self.plan.renames:
            return updated.with_changes(value=self.plan.renames[id(original)])
        return updated

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        if id(original) in self.plan.removed:
            return cst.RemoveFromParent()
        if id(original) in self.plan.unassigned and isinstance(updated.body[0], cst.Assign):
            return updated.with_changes(body=[cst.Expr(value=updated.body[0].value)])
        return updated


def name_variables(source: str, module_bound: set[str], kept: set[str]) -> str:
    """`source` with the generic variables of its tests (but those named in `kept`) named, inlined or dropped."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    planner = _Planner(wrapper, module_bound)
    plan = Plan()
    for name, test in tests_of(wrapper.module):
        if name not in kept:
            planner.plan(test, plan)
    if not (plan.renames or plan.inlines or plan.removed or plan.unassigned):
        return source
    return wrapper.module.visit(_Apply(plan)).code
