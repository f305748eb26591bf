"""Module aliases as the project's own tests import: Pynguin's `cart_ = sys.modules["shop.cart"]` and
`import shop.cart as module_0`, and any `import pkg.mod` of the project, become `from pkg.mod import Cart`
(or `from pkg import mod`, `import pkg.mod as mod`, `import pkg.mod`), and every `cart_.Cart` follows."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import GlobalScope, MetadataWrapper, ScopeProvider

from tasks.coverage.readable.syntax import (
    GENERIC_MODULE,
    VariableVisitor,
    bound_by,
    root_name,
    small_statement,
    tests_of,
    variables_in,
)
from tasks.project.style import ImportStyle, ProjectStyle


@dataclass
class Alias:
    """How the file names a module: `cart_` (an alias) or `shop.cart` (a dotted import)."""

    name: str
    module: str
    statement: int  # the top-level statement that binds it
    via_sys_modules: bool = False


@dataclass
class Usage:
    attributes: set[str] = field(default_factory=set)
    bare: bool = False  # the module object itself is used, not only its attributes


@dataclass
class Form:
    """How the rewritten file imports one module and refers to it."""

    module: str
    style: ImportStyle
    attributes: set[str]

    @property
    def bound(self) -> str:
        """The name the import binds."""
        return self.module.split(".")[0] if self.style == "dotted" else self.module.rsplit(".", 1)[-1]

    @property
    def meaning(self) -> str:
        """What that name refers to, as `_bindings` describes a module-level name."""
        return self.bound if self.style == "dotted" else self.module

    def module_object(self) -> cst.BaseExpression:
        return cst.parse_expression(self.module if self.style == "dotted" else self.bound)

    def attribute(self, name: str) -> cst.BaseExpression:
        if self.style == "names":
            return cst.Name(name)
        return cst.Attribute(value=self.module_object(), attr=cst.Name(name))

    def statement(self) -> cst.BaseStatement:
        package, _, last = self.module.rpartition(".")
        if self.style == "names":
            return cst.parse_statement(f"from {self.module} import {', '.join(sorted(self.attributes))}\n")
        if self.style == "package_module":
            return cst.parse_statement(f"from {package} import {last}\n")
        if self.style == "module_alias" and package:
            return cst.parse_statement(f"import {self.module} as {last}\n")
        return cst.parse_statement(f"import {self.module}\n")


def _sys_modules_key(value: cst.BaseExpression) -> str | None:
    """ "shop.cart" of `sys.modules["shop.cart"]`."""
    if not (isinstance(value, cst.Subscript) and get_full_name_for_node(value.value) == "sys.modules"):
        return None
    if len(value.slice) != 1 or not isinstance(value.slice[0].slice, cst.Index):
        return None
    key = value.slice[0].slice.value
    return key.evaluated_value if isinstance(key, cst.SimpleString) else None


def _from_module(small: cst.ImportFrom) -> str:
    dots = "." * len(small.relative)
    return dots + (get_full_name_for_node(small.module) or "") if small.module else dots


def _aliases_of(index: int, statement: cst.BaseStatement, under_test: str) -> list[Alias]:
    small = small_statement(statement)
    if isinstance(small, cst.Import):
        found = []
        for alias in small.names:
            dotted = get_full_name_for_node(alias.name) or ""
            found.append(
                Alias(name=alias.asname.name.value if alias.asname else dotted, module=dotted, statement=index)
            )
        return found
    if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
        package = _from_module(small)
        return [
            Alias(name=a.asname.name.value if a.asname else a.name.value, module=under_test, statement=index)
            for a in small.names
            if isinstance(a.name, cst.Name) and f"{package}.{a.name.value}" == under_test
        ]
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        if key := _sys_modules_key(small.value):
            return [Alias(name=small.targets[0].target.value, module=key, statement=index, via_sys_modules=True)]
    return []


def find_aliases(module: cst.Module, under_test: str, packages: set[str]) -> list[Alias]:
    """The aliases to rewrite: of the project's modules, and any generic `module_0` or sys.modules alias."""
    found = []
    for index, statement in enumerate(module.body):
        for alias in _aliases_of(index, statement, under_test):
            ours = alias.module == under_test or alias.module.split(".")[0] in packages
            if ours or alias.via_sys_modules or GENERIC_MODULE.match(alias.name):
                found.append(alias)
    return found


class _Resolver:
    """Which alias an expression refers to, unless a local name of the same name hides it there."""

    def __init__(self, aliases: list[Alias], scopes: dict[cst.CSTNode, object]) -> None:
        self.by_name = {a.name: a for a in aliases}
        self.scopes = scopes

    def alias_at(self, node: cst.BaseExpression) -> Alias | None:
        alias = self.by_name.get(get_full_name_for_node(node) or "")
        root = root_name(node)
        scope = self.scopes.get(root) if alias and root else None
        if scope is None or not any(isinstance(a.scope, GlobalScope) for a in scope[root.value]):
            return None
        return alias


class _Uses(VariableVisitor):
    """What each alias is used for, outside the statements that bind it and the tests left as they are."""

    def __init__(self, resolver: _Resolver, skipped: set[int]) -> None:
        super().__init__(skipped)
        self.resolver = resolver
        self.usage: dict[str, Usage] = {a.module: Usage() for a in resolver.by_name.values()}

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if alias := self.resolver.alias_at(node.value):
            self.usage[alias.module].attributes.add(node.attr.value)
            return False
        if alias := self.resolver.alias_at(node):
            self.usage[alias.module].bare = True
            return False
        return super().visit_Attribute(node)

    def visit_Name(self, node: cst.Name) -> None:
        if alias := self.resolver.alias_at(node):
            self.usage[alias.module].bare = True
        else:
            super().visit_Name(node)


class _Replace(cst.CSTTransformer):
    def __init__(self, resolver: _Resolver, forms: dict[str, Form], skipped: set[int]) -> None:
        self.resolver, self.forms, self.skipped = resolver, forms, set(skipped)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return id(node) not in self.skipped

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return id(node) not in self.skipped

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skipped.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skipped.add(id(node.keyword))

    def _form(self, node: cst.BaseExpression) -> Form | None:
        alias = self.resolver.alias_at(node)
        return self.forms.get(alias.module) if alias else None

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if form := self._form(original.value):
            return form.attribute(original.attr.value).with_changes(lpar=original.lpar, rpar=original.rpar)
        if form := self._form(original):
            return form.module_object()
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if id(original) in self.skipped:
            return updated
        form = self._form(original)
        return form.module_object() if form else updated


def _bindings(module: cst.Module, aliases: list[Alias]) -> dict[str, str]:
    """Module-level name -> what it refers to: a module or `module.name`, else the statement binding it."""
    by_statement = {a.statement: a for a in aliases if a.via_sys_modules}
    bound: dict[str, str] = {}
    for index, statement in enumerate(module.body):
        small = small_statement(statement)
        if isinstance(small, cst.Import):
            for a in small.names:
                dotted = get_full_name_for_node(a.name) or ""
                name = a.asname.name.value if a.asname else dotted.split(".")[0]
                bound[name] = dotted if a.asname else name
        elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
            for a in small.names:
                name = a.asname.name.value if a.asname else a.name.value
                bound[name] = f"{_from_module(small)}.{get_full_name_for_node(a.name)}"
        elif index in by_statement:
            bound[by_statement[index].name] = by_statement[index].module
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            bound[statement.name.value] = f"<statement {index}>"
        else:
            for name in bound_by(statement):
                bound.setdefault(name, f"<statement {index}>")
    return bound


def _form(module: str, usage: Usage, preferred: ImportStyle, bound: dict[str, str], variables: set[str]) -> Form | None:
    """The project's import style for `module`, unless a name it would bind means something else here;
    then `from pkg import mod`, then `import pkg.mod`; None when even that clashes."""

    def free(name: str, meaning: str) -> bool:
        # A name used but not bound at module level is a local or a builtin: it must not be hidden.
        return bound.get(name, meaning) == meaning and (name not in variables or name in bound)

    for style in dict.fromkeys([preferred, "package_module", "dotted"]):
        if style == "package_module" and "." not in module:
            continue
        form = Form(module=module, style=style, attributes=usage.attributes)
        if style == "names":
            if not usage.bare and all(free(a, f"{module}.{a}") for a in usage.attributes):
                return form
        elif free(form.bound, form.meaning):
            return form
    return None


def _unused(module: cst.Module, candidates: set[int], rebound: set[str]) -> set[int]:
    """The statements among `candidates` whose names nothing else refers to (`rebound`: bound anew)."""
    body = module.body
    used = variables_in(module, {id(body[i]) for i in candidates}) - rebound
    return {i for i in candidates if not (bound_by(body[i]) & used)}


def _rebind(module: cst.Module, aliases: list[Alias], forms: dict[str, Form]) -> cst.Module:
    """The new imports in place of the alias statements nothing refers to any more, and of `import sys`
    once no sys.modules alias needs it."""
    body = list(module.body)
    # A name the new imports bind again (to the same module: _form made sure) is no longer the old one's.
    removed = _unused(module, {a.statement for a in aliases if a.module in forms}, {f.bound for f in forms.values()})
    if any(a.via_sys_modules and a.statement in removed for a in aliases):
        imports_sys = {
            i for i, s in enumerate(body) if bound_by(s) == {"sys"} and isinstance(small_statement(s), cst.Import)
        }
        removed |= _unused(module, removed | imports_sys, set()) & imports_sys
    imports = [form.statement() for form in forms.values()]
    at = min(removed) if removed else _after_imports(body)
    if removed:
        imports[0] = imports[0].with_changes(leading_lines=body[at].leading_lines)
    kept = [s for i, s in enumerate(body) if i not in removed]
    position = at - sum(1 for i in removed if i < at)
    return module.with_changes(body=kept[:position] + imports + kept[position:])


def _after_imports(body: list[cst.BaseStatement]) -> int:
    at = 0
    for index, statement in enumerate(body):
        if isinstance(small_statement(statement), (cst.Import, cst.ImportFrom)):
            at = index + 1
    return at


def rewrite_aliases(source: str, style: ProjectStyle, under_test: str, kept: set[str]) -> str:
    """`source` with its module aliases in the project's import style; tests named in `kept` untouched."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    module = wrapper.module
    aliases = find_aliases(module, under_test, set(style.packages))
    if not aliases:
        return source
    resolver = _Resolver(aliases, wrapper.resolve(ScopeProvider))
    skipped = {id(module.body[a.statement]) for a in aliases}
    kept_tests = [node for name, node in tests_of(module) if name in kept]
    skipped |= {id(node) for node in kept_tests}
    uses = _Uses(resolver, skipped)
    module.visit(uses)
    # The tests kept as they are must not see a name of theirs (a builtin, say) bound anew either.
    variables = uses.variables.union(*(variables_in(node) for node in kept_tests))
    bound = _bindings(module, aliases)
    forms = {}
    for dotted, usage in uses.usage.items():
        form = _form(dotted, usage, style.imports, bound, variables)
        if form is not None and (usage.attributes or usage.bare):
            forms[dotted] = form
    if not forms:
        return source
    return _rebind(module.visit(_Replace(resolver, forms, skipped)), aliases, forms).code
