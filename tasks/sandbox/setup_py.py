"""What a setup.py declares it needs, read without running it on the host.

The static read takes the literal arguments of its setup() call: lists and strings of
requirements, names bound once to such literals, `+` between them, `extras_require` as a dict
literal or `dict(...)`, and `**kwargs` from a dict literal (the setup.py that Poetry generates).
Anything else (a function call, a name bound twice or changed after binding) is NotStatic:
then the PEP 517 metadata hook, run in the sandbox, reads it (`metadata_declarations` turns
what the hook reports into the same shape).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel

KEYWORDS = ("name", "install_requires", "tests_require", "extras_require")
# Calls that change a list or dict in place: a name they touch is not the literal it was bound to.
MUTATORS = {"append", "extend", "insert", "remove", "pop", "clear", "update", "setdefault", "__setitem__"}
# setuptools writes an extra's requirement as `req; <marker> and extra == "name"` (packaging's spelling).
EXTRA_MARKER = re.compile(r'^(?:(?P<marker>.+) and )?extra == "(?P<extra>[^"]+)"$')


class NotStatic(Exception):
    """The setup() call is not literal enough to read without running it; the message says what."""


class SetupDeclarations(BaseModel):
    name: str | None = None
    install_requires: list[str] = []
    extras: dict[str, list[str]] = {}


def with_marker(requirement: str, marker: str) -> str:
    """`req` under an extra key such as "test:python_version < '3.8'" gets that marker too."""
    if not marker:
        return requirement
    head, separator, own = requirement.partition(";")
    return f"{head.strip()}; ({own.strip()}) and ({marker})" if separator else f"{requirement}; {marker}"


def metadata_declarations(name: str | None, requires_dist: list[str], tests_require: list[str]) -> SetupDeclarations:
    """The Requires-Dist lines of a wheel's METADATA, split back into runtime and extras."""
    declared = SetupDeclarations(name=name, extras={"test": list(tests_require)} if tests_require else {})
    for line in requires_dist:
        requirement, _, marker = (part.strip() for part in line.partition(";"))
        matched = EXTRA_MARKER.match(marker)
        if matched:
            extra_requirement = with_marker(requirement, matched["marker"] or "")
            declared.extras.setdefault(matched["extra"], []).append(extra_requirement)
        elif "extra" not in marker:
            declared.install_requires.append(line)
        # any other use of `extra` in a marker is not one setuptools writes: not read
    return declared


def read_setup_py(path: Path) -> SetupDeclarations:
    """Raises NotStatic naming the first argument that is not a literal."""
    try:
        tree = ast.parse(path.read_text(errors="replace"), str(path))
    except SyntaxError as exc:
        raise NotStatic(f"it does not parse: {exc.msg} (line {exc.lineno})") from None
    names = _Names(tree)
    arguments = _setup_arguments(tree, names)
    declared = SetupDeclarations(
        name=_string(arguments.get("name"), names),
        install_requires=names.strings(arguments.get("install_requires"), "install_requires"),
    )
    for key, requirements in _extras(arguments.get("extras_require"), names).items():
        extra, _, marker = key.partition(":")
        target = declared.extras.setdefault(extra.strip(), []) if extra.strip() else declared.install_requires
        target.extend(with_marker(r, marker.strip()) for r in requirements)
    tests_require = names.strings(arguments.get("tests_require"), "tests_require")
    if tests_require:
        declared.extras.setdefault("test", []).extend(tests_require)
    return declared


class _Names:
    """The file's names bound exactly once by a plain assignment, and never changed in place."""

    def __init__(self, tree: ast.Module):
        self.bound: dict[str, ast.expr] = {}
        stores: dict[str, int] = {}
        self.changed: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                stores[node.id] = stores.get(node.id, 0) + 1
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.bound[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                self.bound[node.target.id] = node.value
            self.changed |= _changed_in_place(node)
        self.ambiguous = {name for name, count in stores.items() if count > 1}

    def value(self, node: ast.Name, what: str) -> ast.expr:
        if node.id in self.ambiguous or node.id in self.changed:
            raise NotStatic(f"{what}: {node.id} is bound more than once or changed after it is bound")
        if node.id not in self.bound:
            raise NotStatic(f"{what}: {node.id} is not bound to a literal in setup.py")
        return self.bound[node.id]

    def strings(self, node: ast.expr | None, what: str, depth: int = 0) -> list[str]:
        """A list, tuple or multi-line string of requirements."""
        if node is None:
            return []
        if depth > 20:
            raise NotStatic(f"{what}: names refer to each other in a loop")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [line for line in (raw.split("#")[0].strip() for raw in node.value.splitlines()) if line]
        if isinstance(node, ast.Name):
            return self.strings(self.value(node, what), what, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.strings(node.left, what, depth + 1) + self.strings(node.right, what, depth + 1)
        if isinstance(node, (ast.List, ast.Tuple)):
            found: list[str] = []
            for item in node.elts:
                inner = item.value if isinstance(item, ast.Starred) else item
                if not isinstance(item, ast.Starred) and not _is_string(item):
                    raise NotStatic(f"{what} holds `{_source(item)}`, not a string")
                found += self.strings(inner, what, depth + 1)
            return found
        raise NotStatic(f"{what} is `{_source(node)}`")


def _changed_in_place(node: ast.AST) -> set[str]:
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
        return {node.value.id} if isinstance(node.value, ast.Name) else set()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        return {node.func.value.id} if isinstance(node.func.value, ast.Name) else set()
    return set()


def _is_string(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _source(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(node: ast.expr | None, names: _Names) -> str | None:
    """The project's name, where it is a literal: only used to tell its own `pkg[extra]` apart."""
    if isinstance(node, ast.Name) and node.id in names.bound and node.id not in names.ambiguous:
        node = names.bound[node.id]
    return node.value if node is not None and _is_string(node) else None


def _setup_call(tree: ast.Module) -> ast.Call:
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "setup")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "setup")
        )
    ]
    if not calls:
        raise NotStatic("it has no setup() call")
    if len(calls) > 1:
        raise NotStatic(f"it has {len(calls)} setup() calls")
    return calls[0]


def _setup_arguments(tree: ast.Module, names: _Names) -> dict[str, ast.expr]:
    """setup()'s keyword arguments that matter here, with `**kwargs` of a dict literal spread out."""
    arguments: dict[str, ast.expr] = {}
    for keyword in _setup_call(tree).keywords:
        if keyword.arg is not None:
            arguments[keyword.arg] = keyword.value
            continue
        for key, value in _dict_items(keyword.value, names, "setup(**...)").items():
            arguments[key] = value
    return {key: value for key, value in arguments.items() if key in KEYWORDS}


def _dict_items(node: ast.expr, names: _Names, what: str) -> dict[str, ast.expr]:
    if isinstance(node, ast.Name):
        node = names.value(node, what)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        items: dict[str, ast.expr] = {}
        for keyword in node.keywords:
            items |= {keyword.arg: keyword.value} if keyword.arg else _dict_items(keyword.value, names, what)
        return items
    if not isinstance(node, ast.Dict):
        raise NotStatic(f"{what} is `{_source(node)}`")
    items = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            items |= _dict_items(value, names, what)
        elif _is_string(key):
            items[key.value] = value
        else:
            raise NotStatic(f"{what} has the key `{_source(key)}`")
    return items


def _extras(node: ast.expr | None, names: _Names) -> dict[str, list[str]]:
    if node is None:
        return {}
    items = _dict_items(node, names, "extras_require")
    return {key: names.strings(value, f"extras_require[{key!r}]") for key, value in items.items()}
