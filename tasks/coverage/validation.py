"""Rule checks on a written test file, with levels and a score."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.core.models import Issue, Validation
from tasks.core.testfiles import is_test_class, is_test_function, literal_paths_written
from tasks.coverage.readable.leftovers import leftovers

PENALTY = {"ERROR": 0.5, "WARNING": 0.1, "INFO": 0.0}
READABLE = {
    "generic-names": "named by number, not by what they are",
    "duplicate-imports": "imported more than once",
    "sys-path": "edits sys.path (a conftest.py or the project's pytest configuration does that once)",
    "cannot-fail": "assertions that cannot fail",
}
SHOWN = 5  # examples per issue: enough to find the rest
# Calls that check an outcome: pytest.raises/warns/fail/approx and unittest's self.assert*/fail*,
# mock's assert_called*, numpy's and pandas' assert_* (by their last name: `x.raises(...)`).
CHECKING_CALLS = {"raises", "warns", "deprecated_call", "fail"}
CHECKING_PREFIXES = ("assert", "failIf", "failUnless")


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _checks(node: ast.AST, checking_helpers: set[str]) -> bool:
    """Does `node` assert, expect an exception, or call a helper of the file that does?"""
    for child in ast.walk(node):
        if isinstance(child, (ast.Assert, ast.Raise)):
            return True
        if isinstance(child, ast.Call):
            name = _called_name(child)
            if name in CHECKING_CALLS or name.startswith(CHECKING_PREFIXES) or name in checking_helpers:
                return True
            # @pytest.mark.xfail(raises=E): an expected exception too.
            if name == "xfail" and any(k.arg == "raises" for k in child.keywords):
                return True
    return False


def _checking_helpers(tree: ast.Module) -> set[str]:
    """The file's own non-test functions that check something, directly or through one another."""
    helpers = {
        n.name: n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not is_test_function(n)
    }
    checking: set[str] = set()
    while grown := {name for name, node in helpers.items() if name not in checking and _checks(node, checking)}:
        checking |= grown
    return checking


def assertion_free(tree: ast.Module) -> list[str]:
    """Tests (`test_x`, `TestY.test_z`) with no assertion and no expected exception: they pass
    whatever the code under test returns."""
    helpers = _checking_helpers(tree)
    tests = [(n.name, n) for n in tree.body if is_test_function(n)]
    for cls in (n for n in tree.body if is_test_class(n)):
        tests += [(f"{cls.name}.{m.name}", m) for m in cls.body if is_test_function(m)]
    return [name for name, node in tests if not _checks(node, helpers)]


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
            for write in literal_paths_written(tree):
                issues.append(Issue(level="WARNING", rule="tmp-only", message=f"writes outside its tmp dir: {write}"))
            if unchecked := assertion_free(tree):
                message = f"no assertion and no expected exception in: {', '.join(unchecked)}"
                issues.append(Issue(level="WARNING", rule="no-assertion", message=message))
            issues += readable_issues(text)
    for name in failing:
        issues.append(Issue(level="ERROR", rule="passes", message=f"{name} failed in the final run"))
    return Validation(score=score(issues), issues=issues)


def score(issues: list[Issue]) -> float:
    return round(max(0.0, 1.0 - sum(PENALTY[i.level] for i in issues)), 2)


def readable_issues(text: str) -> list[Issue]:
    """Rule `readable`: one WARNING per kind of what a reviewer would still stumble on in a test file."""
    return [
        Issue(
            level="WARNING",
            rule="readable",
            message=f"{READABLE[kind]}: {', '.join(found[:SHOWN])}"
            + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""),
        )
        for kind, found in leftovers(text).items()
    ]
