"""The test framework a project's own CI runs: unittest when its tests are unittest.TestCase classes and
nothing in its configuration runs pytest; pytest otherwise (a TestCase also runs under pytest, a plain
test function never runs under unittest)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel

from tasks.core.markers import is_covsweep_file
from tasks.core.models import Framework, Project
from tasks.core.testfiles import is_test_file, is_test_function

PYTEST_WORD = re.compile(r"\bpy\.?test\b")
# Where a project configures, installs or calls its test runner.
CONFIG_GLOBS = (
    "pytest.ini",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
    "setup.py",
    "noxfile.py",
    "Makefile",
    "*requirements*.txt",
    "requirements/*.txt",
    ".github/workflows/*.yml",
    ".github/workflows/*.yaml",
    ".gitlab-ci.yml",
    ".travis.yml",
    "azure-pipelines.yml",
    ".circleci/config.yml",
    "bitbucket-pipelines.yml",
    "Jenkinsfile",
)
TEST_DIRS = {"tests", "test", "testing"}
SKIPPED_DIRS = {"venv", "env", "build", "dist", "site-packages", "node_modules", "__pycache__"}
MAX_FILES = 5000  # a huge tree is judged on its first files


class FrameworkEvidence(BaseModel):
    testcase_classes: list[str] = []
    pytest_reasons: list[str] = []

    @property
    def framework(self) -> Framework:
        return "unittest" if self.testcase_classes and not self.pytest_reasons else "pytest"


def _python_files(target: Path) -> list[Path]:
    """The project's own .py files below tests folders, and its test files anywhere; covsweep's excluded."""
    found = []
    for path in sorted(target.rglob("*.py")):
        parts = path.relative_to(target).parts
        if any(p.startswith(".") or p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        if (is_test_file(path.name) or path.name == "conftest.py" or TEST_DIRS & set(parts[:-1])) and not (
            is_covsweep_file(path)
        ):
            found.append(path)
        if len(found) >= MAX_FILES:
            break
    return found


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _pytest_in_tree(tree: ast.Module) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("pytest", "_pytest") for a in node.names):
            return "imports pytest"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pytest", "_pytest"):
            return "imports pytest"
    if any(is_test_function(node) for node in tree.body):
        return "has plain test functions, which unittest never runs"
    return None


def _testcase_classes(classes: dict[str, tuple[list[str], bool, Path]]) -> set[str]:
    """Class names derived from a *TestCase class, through the project's own base classes."""
    derived = {name for name, (bases, _, _) in classes.items() if any(b.endswith("TestCase") for b in bases)}
    while True:
        more = {name for name, (bases, _, _) in classes.items() if derived.intersection(bases)} - derived
        if not more:
            return derived
        derived |= more


def framework_evidence(target: Path) -> FrameworkEvidence:
    target = Path(target)
    reasons = []
    for pattern in CONFIG_GLOBS:
        for path in sorted(target.glob(pattern)):
            if path.is_file() and PYTEST_WORD.search(path.read_text(errors="replace")):
                reasons.append(f"{path.relative_to(target)} mentions pytest")
    # name -> (base names, has test methods, file)
    classes: dict[str, tuple[list[str], bool, Path]] = {}
    for path in _python_files(target):
        rel = path.relative_to(target)
        if path.name == "conftest.py":
            reasons.append(f"{rel} configures pytest")
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        if is_test_file(path.name) and (reason := _pytest_in_tree(tree)):
            reasons.append(f"{rel} {reason}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                tests = any(is_test_function(m) for m in node.body)
                classes[node.name] = ([_base_name(b) for b in node.bases], tests, rel)
    testcases = _testcase_classes(classes)
    found = [f"{rel}::{name}" for name, (_, tests, rel) in classes.items() if tests and name in testcases]
    plain = [
        f"{rel} has test class {name}, which is no TestCase"
        for name, (_, tests, rel) in classes.items()
        if tests and name not in testcases and name.startswith("Test")
    ]
    return FrameworkEvidence(testcase_classes=sorted(found), pytest_reasons=reasons + plain)


def detect_framework(project: Project) -> Framework:
    """`--framework auto`: unittest when the project's own tests are TestCase classes and nothing runs pytest."""
    return framework_evidence(project.target).framework


def resolve_framework(requested: str, project: Project) -> Framework:
    """--framework: auto is detect_framework's answer."""
    return detect_framework(project) if requested == "auto" else requested
