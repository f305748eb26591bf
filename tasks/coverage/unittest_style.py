"""Pytest-style tests (plain functions with assert, as an LLM or Pynguin writes them) as unittest.TestCase
classes, for projects whose CI runs `python -m unittest` and would never run a plain function.

Module-level test functions become methods of one TestCase class; plain `Test*` classes get the
TestCase base. What pytest provides is rewritten where unittest has the same thing: `pytest.raises`
(`assertRaises[Regex]`, `excinfo.value` -> `.exception`), `pytest.warns`, `pytest.fail`, `pytest.skip`,
`@pytest.mark.parametrize` (a loop of `subTest`s), `@pytest.mark.xfail` (`expectedFailure`), the
fixtures `tmp_path` (a TemporaryDirectory) and `monkeypatch` (setattr, setenv, delenv, setitem, delitem
as unittest.mock patches on an ExitStack). Any other use of pytest makes a test not convertible: it is
reported with the reason, and the caller drops it.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

from pydantic import BaseModel

from tasks.core.models import Module
from tasks.core.testfiles import is_test_class, is_test_function, test_names
from tasks.coverage.unittest_calls import MOCK, BodyRewriter, NotConvertible, pytest_aliases, pytest_api

FIXTURES = {"tmp_path", "monkeypatch"}
PYTEST_HOOKS = {"setup_method", "teardown_method", "setup_class", "teardown_class", "setup", "teardown"}


class Conversion(BaseModel):
    source: str
    tests: list[str]
    dropped: dict[str, str]  # test name -> why it could not be converted


def _span_text(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1 : node.end_lineno])


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _without_pytest(node: ast.Import | ast.ImportFrom, aliases: dict[str, str]) -> ast.stmt | None:
    """An import statement without its pytest names; None when nothing else is left."""
    if isinstance(node, ast.ImportFrom):
        return None if _bound(node) & set(aliases) else node
    kept = [a for a in node.names if (a.asname or a.name).split(".")[0] not in aliases]
    return ast.Import(names=kept) if kept else None


def _leads(node: ast.stmt) -> bool:
    """The docstring and `from __future__` imports, which must come first."""
    docstring = (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    )
    return docstring or (isinstance(node, ast.ImportFrom) and node.module == "__future__")


class _Header:
    """The file's module-level code without pytest: what depends on pytest is left out, and the names it
    bound make the tests that use them not convertible."""

    def __init__(self, tree: ast.Module, lines: list[str], aliases: dict[str, str]):
        self.texts: list[str] = []
        self.leading = 0
        self.imports: set[str] = set()
        self.bound: set[str] = set()
        self.unavailable: dict[str, str] = {}
        for node in tree.body:
            if is_test_function(node) or is_test_class(node):
                continue
            text = _span_text(lines, node)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and _bound(node) & set(aliases):
                if (node := _without_pytest(node, aliases)) is None:
                    continue
                text = ast.unparse(node)
            if set(aliases) & _names(node):
                self.unavailable |= {name: f"uses {name}, which needs pytest" for name in _bound(node)}
                continue
            if isinstance(node, ast.Import):
                self.imports |= {a.name for a in node.names if not a.asname}
            self.bound |= _bound(node)
            if _leads(node) and self.leading == len(self.texts):
                self.leading += 1
            self.texts.append(text)

    def render(self, extra_imports: list[str]) -> str:
        added = [f"import {name}" for name in extra_imports if name not in self.imports]
        return "\n".join(self.texts[: self.leading] + added + self.texts[self.leading :])


def _parametrize(decorator: ast.expr) -> tuple[list[str], ast.expr]:
    call = decorator
    if not isinstance(call, ast.Call) or len(call.args) != 2 or any(k.arg != "ids" for k in call.keywords):
        raise NotConvertible("@pytest.mark.parametrize with indirect or other options")
    names = call.args[0]
    if isinstance(names, ast.Constant) and isinstance(names.value, str):
        return [n.strip() for n in names.value.split(",") if n.strip()], call.args[1]
    if isinstance(names, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in names.elts
    ):
        return [e.value for e in names.elts], call.args[1]
    raise NotConvertible("@pytest.mark.parametrize with computed names")


def _xfail(decorator: ast.expr) -> ast.expr:
    if isinstance(decorator, ast.Call) and (
        decorator.args or any(k.arg not in ("strict", "reason") for k in decorator.keywords)
    ):
        raise NotConvertible("@pytest.mark.xfail with a condition or raises=")
    return ast.parse("unittest.expectedFailure", mode="eval").body


def _decorators(func: ast.FunctionDef, aliases: dict[str, str]) -> tuple[list, list[ast.expr], bool]:
    """(parametrize cases, decorators to keep, whether a decorator not of pytest supplies arguments)."""
    cases, kept, foreign = [], [], False
    for decorator in func.decorator_list:
        api = pytest_api(decorator.func if isinstance(decorator, ast.Call) else decorator, aliases)
        if api == "mark.parametrize":
            cases.append(_parametrize(decorator))
        elif api == "mark.xfail":
            kept.append(_xfail(decorator))
        elif api is not None:
            raise NotConvertible(f"@pytest.{api}")
        else:
            kept.append(decorator)
            foreign = True
    return cases, kept, foreign


def _wrap(body: list[ast.stmt], fixtures: set[str], cases: list) -> list[ast.stmt]:
    """The body inside fresh fixtures per case, inside a subTest per parametrized case."""
    contexts = []
    if "monkeypatch" in fixtures:
        contexts.append("contextlib.ExitStack() as monkeypatch")
    if "tmp_path" in fixtures:
        contexts.append("tempfile.TemporaryDirectory() as tmp_dir")
    if contexts:
        wrapper = ast.parse(f"with {', '.join(contexts)}:\n    pass").body[0]
        prologue = ast.parse("tmp_path = pathlib.Path(tmp_dir)").body if "tmp_path" in fixtures else []
        wrapper.body = prologue + body
        body = [wrapper]
    if cases:
        names = [name for case_names, _ in cases for name in case_names]
        inner = ast.parse(f"with self.subTest({', '.join(f'{n}={n}' for n in names)}):\n    pass").body[0]
        inner.body = body
        body = [inner]
        for case_names, values in reversed(cases):
            loop = ast.parse(f"for {', '.join(case_names)} in _:\n    pass").body[0]
            loop.iter, loop.body = values, body
            body = [loop]
    return body


def _parameters(func: ast.FunctionDef, cases: list, foreign: bool, method: bool) -> tuple[list[ast.arg], set[str]]:
    """(arguments kept after self, fixtures to provide)."""
    args = func.args.posonlyargs + func.args.args + func.args.kwonlyargs
    if method:
        args = args[1:]
    if func.args.vararg or func.args.kwarg or func.args.defaults or func.args.kw_defaults:
        raise NotConvertible("arguments with defaults or * / **")
    if foreign:
        # A decorator of its own (mock.patch, hypothesis) supplies them, in unittest as in pytest.
        return args, set()
    parametrized = {name for case_names, _ in cases for name in case_names}
    fixtures = {a.arg for a in args} - parametrized
    if unknown := sorted(fixtures - FIXTURES):
        raise NotConvertible(f"fixture {', '.join(unknown)}")
    return [], fixtures


def convert_test(func: ast.stmt, aliases: dict[str, str], unavailable: dict[str, str], method: bool) -> ast.FunctionDef:
    """One test as a TestCase method; NotConvertible says why it cannot be one."""
    if not isinstance(func, ast.FunctionDef):
        raise NotConvertible("async test")
    cases, decorators, foreign = _decorators(func, aliases)
    kept_args, fixtures = _parameters(func, cases, foreign, method)
    used = set().union(*(_names(s) for s in func.body))
    if not method and "self" in used:
        raise NotConvertible("uses the name self")
    if blocked := sorted(used & set(unavailable)):
        raise NotConvertible(unavailable[blocked[0]])
    rewriter = BodyRewriter(aliases, fixtures)
    body = [rewriter.visit(copy.deepcopy(s)) for s in func.body]
    rewriter.check(body)
    new = copy.deepcopy(func)
    new.args = ast.arguments(
        posonlyargs=[], args=[ast.arg(arg="self")] + kept_args, kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    new.body, new.decorator_list = _wrap(body, fixtures, cases), decorators
    return ast.fix_missing_locations(new)


def _needed_imports(tests_text: str) -> list[str]:
    """The modules the converted tests name (the rewrites add unittest.mock, contextlib, os, pathlib, tempfile)."""
    names = _names(ast.parse(tests_text))
    needed = ["unittest.mock" if f"{MOCK}." in tests_text else "unittest"]
    return needed + [module for module in ("contextlib", "os", "pathlib", "tempfile") if module in names]


def _class_name(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}{n}"
    return name


def _convert_class(node: ast.ClassDef, aliases, unavailable, dropped: dict[str, str]) -> ast.ClassDef | None:
    tests = [m for m in node.body if is_test_function(m)]
    reason = None
    if any(isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name in PYTEST_HOOKS for m in node.body):
        reason = "a pytest setup or teardown method"
    elif node.bases and not any(ast.unparse(b).endswith("TestCase") for b in node.bases):
        reason = "base classes that are no TestCase"
    elif set(aliases) & set().union(*(_names(m) for m in node.body if not is_test_function(m))):
        reason = "class members that use pytest"
    if reason:
        dropped |= {f"{node.name}.{m.name}": reason for m in tests}
        return None
    new = copy.deepcopy(node)
    new.bases = node.bases or [ast.parse("unittest.TestCase", mode="eval").body]
    new.body = []
    for member in node.body:
        if not is_test_function(member):
            new.body.append(member)
            continue
        try:
            new.body.append(convert_test(member, aliases, unavailable, method=True))
        except NotConvertible as exc:
            dropped[f"{node.name}.{member.name}"] = str(exc)
    return new if any(is_test_function(m) for m in new.body) else None


def unittest_class_name(module: Module) -> str:
    """`TestMoney` for shop/money.py, `TestShop` for shop/__init__.py: the class of a module's converted tests."""
    parts = Path(module.path).with_suffix("").parts
    stem = parts[-2] if parts[-1] == "__init__" and len(parts) > 1 else parts[-1]
    return "Test" + "".join(word[:1].upper() + word[1:] for word in stem.split("_") if word)


def to_unittest(source: str, class_name: str) -> Conversion:
    """The tests of a pytest-style file as TestCase classes; module-level tests go into `class_name`."""
    if not class_name.startswith("Test"):
        raise ValueError(f"{class_name}: unittest and pytest collect classes named Test*")
    tree = ast.parse(source)
    aliases = pytest_aliases(tree)
    header = _Header(tree, source.splitlines(), aliases)
    # A test that calls another test would call a name that is a method now.
    unavailable = header.unavailable | {n.name: f"calls the test {n.name}" for n in tree.body if is_test_function(n)}
    dropped: dict[str, str] = {}
    methods, classes = [], []
    for node in tree.body:
        if is_test_function(node):
            try:
                methods.append(convert_test(node, aliases, unavailable, method=False))
            except NotConvertible as exc:
                dropped[node.name] = str(exc)
        elif is_test_class(node) and (converted := _convert_class(node, aliases, unavailable, dropped)):
            classes.append(converted)
    if methods:
        taken = {n.name for n in tree.body if isinstance(n, ast.ClassDef)} | header.bound | set(header.unavailable)
        holder = ast.parse(f"class {_class_name(class_name, taken)}(unittest.TestCase):\n    pass").body[0]
        holder.body = methods
        classes.insert(0, ast.fix_missing_locations(holder))
    tests_text = "\n\n\n".join(ast.unparse(c) for c in classes)
    text = header.render(_needed_imports(tests_text)) + "\n\n\n" + tests_text + "\n"
    return Conversion(source=text, tests=test_names(text) if classes else [], dropped=dropped)
