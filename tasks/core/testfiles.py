"""What counts as a test: test files, the tests pytest collects in one, and writes a test must not make."""

from __future__ import annotations

import ast

# Calls that write to the path given as their first argument (os, shutil) ...
WRITING_CALLS = {"remove", "unlink", "rmtree", "rmdir", "removedirs", "rename", "replace", "mkdir", "makedirs", "chmod"}
# ... and the pathlib methods that write to the path they are called on.
WRITING_METHODS = {
    "write_text",
    "write_bytes",
    "touch",
    "mkdir",
    "unlink",
    "rmdir",
    "rename",
    "replace",
    "chmod",
    "symlink_to",
    "hardlink_to",
}


def is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py")


def is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")


def is_test_class(node: ast.stmt) -> bool:
    return isinstance(node, ast.ClassDef) and node.name.startswith("Test")


def test_names(source: str) -> list[str]:
    """Qualified names of the tests pytest would collect: `test_x` and `TestY.test_z`."""
    names = []
    for node in ast.parse(source).body:
        if is_test_function(node):
            names.append(node.name)
        elif is_test_class(node):
            names += [f"{node.name}.{m.name}" for m in node.body if is_test_function(m)]
    return names


def _literal_path(node: ast.AST) -> str | None:
    """A path written as a literal: "x", Path("x"), Path("x") / name; None for anything else (tmp_path / "x")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and node.args:
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if func in {"Path", "PurePath", "PosixPath"}:
            return _literal_path(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _literal_path(node.left)
    return None


def literal_paths_written(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = _literal_path(node.args[0]) if node.args else None
        if name == "open":
            mode = (
                node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            )
            if (
                first
                and isinstance(mode, ast.Constant)
                and isinstance(mode.value, str)
                and set(mode.value) & set("wax+")
            ):
                found.append(f"open({first!r}, {mode.value!r})")
        elif isinstance(func, ast.Attribute) and name in WRITING_METHODS and (path := _literal_path(func.value)):
            found.append(f"Path({path!r}).{name}()")
        elif name in WRITING_CALLS and first:
            found.append(f"{name}({first!r})")
    return found
