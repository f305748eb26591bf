"""Rule checks on a written test file, with levels and a score."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.models import Issue, Validation

# Calls that write to the path given as their first argument (os, shutil) ...
WRITING_CALLS = {"remove", "unlink", "rmtree", "rmdir", "removedirs", "rename", "replace",
                 "mkdir", "makedirs", "chmod"}
# ... and the pathlib methods that write to the path they are called on.
WRITING_METHODS = {"write_text", "write_bytes", "touch", "mkdir", "unlink", "rmdir", "rename", "replace",
                   "chmod", "symlink_to", "hardlink_to"}
PENALTY = {"ERROR": 0.5, "WARNING": 0.1, "INFO": 0.0}


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


def _literal_paths_written(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = _literal_path(node.args[0]) if node.args else None
        if name == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if (first and isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                    and set(mode.value) & set("wax+")):
                found.append(f"open({first!r}, {mode.value!r})")
        elif isinstance(func, ast.Attribute) and name in WRITING_METHODS and (path := _literal_path(func.value)):
            found.append(f"Path({path!r}).{name}()")
        elif name in WRITING_CALLS and first:
            found.append(f"{name}({first!r})")
    return found


def check_file(path: Path, failing: list[str]) -> Validation:
    issues: list[Issue] = []
    if not path.exists():
        issues.append(Issue(level="ERROR", rule="file-exists", message=f"{path} was not written"))
    elif not (text := path.read_text()).strip():
        issues.append(Issue(level="ERROR", rule="not-empty", message=f"{path} is empty"))
    else:
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            tree = None
            issues.append(Issue(level="ERROR", rule="valid-python", message=f"{path}: {exc}"))
        if not path.name.startswith("test_"):
            issues.append(Issue(level="ERROR", rule="test-naming", message=f"{path.name} is not collected by pytest"))
        if tree is not None:
            tests = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
            if not tests:
                issues.append(Issue(level="ERROR", rule="test-naming", message=f"{path.name} has no test_ function"))
            for write in _literal_paths_written(tree):
                issues.append(Issue(level="WARNING", rule="tmp-only",
                                    message=f"writes outside its tmp dir: {write}"))
    for name in failing:
        issues.append(Issue(level="ERROR", rule="passes", message=f"{name} failed in the final run"))
    score = max(0.0, 1.0 - sum(PENALTY[i.level] for i in issues))
    return Validation(score=round(score, 2), issues=issues)
