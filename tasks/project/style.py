"""How a project's own tests are written, for generated tests to read the same: the way they import the
project's modules, and the line length its formatter keeps."""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tasks.core.markers import is_covsweep_file
from tasks.core.models import ProjectRef
from tasks.core.testfiles import is_test_file
from tasks.project.imports import module_file, top_level_names

# names:          from pkg.mod import Cart         Cart()
# package_module: from pkg import mod              mod.Cart()
# module_alias:   import pkg.mod as mod            mod.Cart()
# dotted:         import pkg.mod                   pkg.mod.Cart()
ImportStyle = Literal["names", "package_module", "module_alias", "dotted"]
DEFAULT_LINE_LENGTH = 88  # ruff's and black's
MAX_TEST_FILES = 200  # a project's style shows in its first test files


class ProjectStyle(BaseModel):
    imports: ImportStyle = "names"
    packages: list[str] = Field(default_factory=list, description="the project's top-level modules and packages")
    line_length: int = Field(default=DEFAULT_LINE_LENGTH, ge=40, le=320)


def _test_files(project: ProjectRef) -> list[Path]:
    found: list[Path] = []
    for root in project.test_paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py")) if root.is_dir() else []
        found += [f for f in files if is_test_file(f.name) and not is_covsweep_file(f)]
    return found[:MAX_TEST_FILES]


def import_style_of(node: ast.stmt, import_root: Path, packages: set[str]) -> ImportStyle | None:
    """How one import statement imports a project module; None when it imports nothing of the project."""
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module.split(".")[0] not in packages:
            return None
        submodule = any(module_file(import_root, f"{node.module}.{alias.name}") for alias in node.names)
        return "package_module" if submodule else "names"
    if isinstance(node, ast.Import):
        project_names = [a for a in node.names if a.name.split(".")[0] in packages]
        if not project_names:
            return None
        return "module_alias" if any(a.asname for a in project_names) else "dotted"
    return None


def _imports_seen(project: ProjectRef, packages: set[str]) -> Counter[ImportStyle]:
    seen: Counter[ImportStyle] = Counter()
    for path in _test_files(project):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if style := import_style_of(node, project.import_root, packages):
                seen[style] += 1
    return seen


def _line_length(target: Path) -> int:
    """ruff's line-length (ruff.toml, .ruff.toml, pyproject's [tool.ruff]), else black's, else 88."""
    for name, path in (("ruff.toml", ()), (".ruff.toml", ()), ("pyproject.toml", ("tool", "ruff"))):
        settings = _toml_table(target / name, path)
        if isinstance(settings.get("line-length"), int):
            return settings["line-length"]
    black = _toml_table(target / "pyproject.toml", ("tool", "black"))
    return black["line-length"] if isinstance(black.get("line-length"), int) else DEFAULT_LINE_LENGTH


def _toml_table(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    for key in keys:
        table = table.get(key, {})
        if not isinstance(table, dict):
            return {}
    return table


def detect_style(project: ProjectRef) -> ProjectStyle:
    """The most common way the project's own tests import it (`names` when they do not), and its line length."""
    packages = top_level_names(project.import_root) if project.import_root.is_dir() else set()
    seen = _imports_seen(project, packages)
    # Ties go to the first of ImportStyle: `from pkg.mod import name` is the most common in pytest suites.
    order = list(ImportStyle.__args__)
    imports = max(order, key=lambda style: (seen[style], -order.index(style)))
    return ProjectStyle(
        imports=imports, packages=sorted(packages), line_length=min(320, max(40, _line_length(project.target)))
    )
