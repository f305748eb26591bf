"""Rule checks on a written test file, with levels and a score."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.models import Issue, Validation

# Calls that reach outside a test's own tmp dir when given a literal path.
WRITING_CALLS = {"remove", "unlink", "rmtree", "rmdir", "rename", "replace", "write_text", "write_bytes",
                 "mkdir", "makedirs", "chmod", "symlink_to"}
PENALTY = {"ERROR": 0.5, "WARNING": 0.1, "INFO": 0.0}


def _literal_paths_written(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        literal = next((a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)), None)
        if name == "open" and len(node.args) > 1:
            mode = node.args[1]
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
                found.append(f"open({literal!r}, {mode.value!r})" if literal else "open(..., write mode)")
        elif name in WRITING_CALLS and literal:
            found.append(f"{name}({literal!r})")
    return found


def check_file(path: Path, failing: list[str]) -> Validation:
    issues: list[Issue] = []
    if not path.exists():
        issues.append(Issue(level="ERROR", rule="file-exists", message=f"{path} was not written"))
    elif not path.read_text().strip():
        issues.append(Issue(level="ERROR", rule="not-empty", message=f"{path} is empty"))
    else:
        try:
            tree = ast.parse(path.read_text())
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
