"""Inside one test: pytest's calls rewritten as unittest's (see unittest_style)."""

from __future__ import annotations

import ast

MOCK = "unittest.mock"
ALLOWED_ATTRIBUTES = {"excinfo": {"exception"}, "monkeypatch": {"enter_context"}}


class NotConvertible(Exception):
    """A test that has no unittest equivalent here; the message says why."""


def pytest_aliases(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to pytest or its members -> what they are (`pytest`, `pytest.raises`)."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name: a.name for a in node.names if a.name.split(".")[0] in ("pytest", "_pytest")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pytest", "_pytest"):
            aliases |= {a.asname or a.name: f"pytest.{a.name}" for a in node.names}
    return aliases


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def pytest_api(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """`raises` for pytest.raises (or its alias), `mark.parametrize` ...; None when it is not pytest's."""
    dotted = _dotted(node)
    if dotted is None or dotted.split(".")[0] not in aliases:
        return None
    head, _, rest = dotted.partition(".")
    full = aliases[head] + (f".{rest}" if rest else "")
    return full.partition(".")[2] or "pytest"


def _expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def _call(function: str, args: list[ast.expr], keywords: list[ast.keyword] = ()) -> ast.Call:
    return ast.Call(func=_expr(function), args=list(args), keywords=list(keywords))


def _flag(value: ast.expr | None, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, ast.Constant) and isinstance(value.value, bool):
        return value.value
    raise NotConvertible("raising= that is not True or False")


def _popped(mapping: ast.expr, key: ast.expr, raising: bool) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=mapping, attr="pop"), args=[key] + [_expr("None")] * (not raising), keywords=[]
    )


def _monkeypatched(attr: str, args: list[ast.expr], keywords: dict[str, ast.expr]) -> ast.expr:
    """The unittest.mock patcher of one monkeypatch call, entered on the test's ExitStack."""
    raising = _flag(keywords.pop("raising", None), True)
    if keywords:
        raise NotConvertible(f"monkeypatch.{attr} with {', '.join(map(str, keywords))}")
    create = [ast.keyword(arg="create", value=_expr("True"))] * (not raising)
    environ = _expr("os.environ")
    if attr == "setattr" and len(args) == 3:
        return _entered(_call(f"{MOCK}.patch.object", args, create))
    if attr == "setattr" and len(args) == 2 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return _entered(_call(f"{MOCK}.patch", args, create))
    if attr == "setenv" and len(args) == 2:
        return _entered(
            _call(f"{MOCK}.patch.dict", [environ, ast.Dict(keys=[args[0]], values=[_call("str", [args[1]])])])
        )
    if attr == "setitem" and len(args) == 3:
        return _entered(_call(f"{MOCK}.patch.dict", [args[0], ast.Dict(keys=[args[1]], values=[args[2]])]))
    if attr == "delenv" and len(args) == 1:
        return _popped(_entered(_call(f"{MOCK}.patch.dict", [environ])), args[0], raising)
    if attr == "delitem" and len(args) == 2:
        return _popped(_entered(_call(f"{MOCK}.patch.dict", [args[0]])), args[1], raising)
    raise NotConvertible(f"monkeypatch.{attr}")


def _entered(patcher: ast.Call) -> ast.Call:
    return _call("monkeypatch.enter_context", [patcher])


class BodyRewriter(ast.NodeTransformer):
    """pytest.raises/warns/fail/skip, excinfo and monkeypatch calls in a test body, as unittest's."""

    def __init__(self, aliases: dict[str, str], fixtures: set[str]):
        self.aliases = aliases
        self.fixtures = fixtures
        self.excinfo: set[str] = set()
        self.recorders: set[str] = set()

    def visit_With(self, node: ast.With) -> ast.With:
        for item in node.items:
            call = item.context_expr
            api = pytest_api(call.func, self.aliases) if isinstance(call, ast.Call) else None
            if api in ("raises", "warns", "deprecated_call"):
                item.context_expr = self._asserting(api, call)
                if isinstance(item.optional_vars, ast.Name):
                    (self.excinfo if api == "raises" else self.recorders).add(item.optional_vars.id)
        self.generic_visit(node)
        return node

    def _asserting(self, api: str, call: ast.Call) -> ast.Call:
        if api == "deprecated_call" and not call.args and not call.keywords:
            return _call("self.assertWarns", [_expr("(DeprecationWarning, PendingDeprecationWarning)")])
        keywords = {k.arg: k.value for k in call.keywords}
        match = keywords.pop("match", None)
        if len(call.args) != 1 or keywords:
            raise NotConvertible(f"pytest.{api} with these arguments")
        method = "self.assertRaises" if api == "raises" else "self.assertWarns"
        return _call(method + "Regex" * (match is not None), call.args + [match] * (match is not None))

    def visit_Call(self, node: ast.Call) -> ast.expr:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in self.excinfo and func.attr == "match" and len(node.args) == 1:
                exception = _call("str", [_expr(f"{func.value.id}.exception")])
                return _call("self.assertRegex", [exception, self.visit(node.args[0])])
            if func.value.id == "monkeypatch" and "monkeypatch" in self.fixtures:
                args = [self.visit(a) for a in node.args]
                return _monkeypatched(func.attr, args, {k.arg: self.visit(k.value) for k in node.keywords})
        self.generic_visit(node)
        api = pytest_api(node.func, self.aliases)
        if api == "raises" and len(node.args) >= 2 and not node.keywords:
            return _call("self.assertRaises", node.args)
        if api in ("fail", "skip") and len(node.args) <= 1 and not node.keywords:
            return _call("self.fail" if api == "fail" else "self.skipTest", node.args or [ast.Constant("")])
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id in self.excinfo:
            if node.attr == "value":
                return _expr(f"{node.value.id}.exception")
            if node.attr == "type":
                return _call("type", [_expr(f"{node.value.id}.exception")])
        self.generic_visit(node)
        return node

    def check(self, body: list[ast.stmt]) -> None:
        """What is left of pytest after the rewrite makes the test not convertible."""
        allowed = {name: ALLOWED_ATTRIBUTES["excinfo"] for name in self.excinfo}
        if "monkeypatch" in self.fixtures:
            allowed["monkeypatch"] = ALLOWED_ATTRIBUTES["monkeypatch"]
        for statement in body:
            for node in ast.walk(statement):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and pytest_aliases(ast.Module(body=[node])):
                    raise NotConvertible("imports pytest")
                if isinstance(node, (ast.Name, ast.Attribute)) and (api := pytest_api(node, self.aliases)):
                    raise NotConvertible(f"uses pytest.{api}" if api != "pytest" else "uses pytest")
                if isinstance(node, ast.Name) and node.id in self.recorders and isinstance(node.ctx, ast.Load):
                    raise NotConvertible("reads what pytest.warns recorded")
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.Name) and child.id in allowed and isinstance(child.ctx, ast.Load):
                        if not (isinstance(node, ast.Attribute) and node.attr in allowed[child.id]):
                            raise NotConvertible(f"uses {child.id} in a way unittest has no equivalent for")
