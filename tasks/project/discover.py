"""Find the modules of a target project and where its tests are."""

from __future__ import annotations

import ast
import fnmatch
import hashlib
from pathlib import Path

from tasks.core.errors import InputError
from tasks.core.models import Module, Project
from tasks.core.testfiles import is_test_file

SKIPPED_DIRS = {
    "tests",
    "test",
    "testing",
    "docs",
    "doc",
    "build",
    "dist",
    "site-packages",
    "node_modules",
    "venv",
    "env",
    "examples",
    "benchmarks",
    "__pycache__",
}
SKIPPED_FILES = {"setup.py", "conftest.py", "noxfile.py", "fabfile.py", "__main__.py"}


def _skipped_dir(name: str) -> bool:
    return name in SKIPPED_DIRS or name.startswith(".") or name.endswith(".egg-info")


def _import_root(target: Path) -> Path:
    src = target / "src"
    return src if src.is_dir() and any(src.rglob("*.py")) else target


def _module_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(_skipped_dir(part) for part in rel.parts[:-1]):
            continue
        if path.name in SKIPPED_FILES or is_test_file(path.name):
            continue
        # A file below a folder without __init__.py is a script, not an importable module.
        if any(not (root / Path(*rel.parts[:i]) / "__init__.py").exists() for i in range(1, len(rel.parts))):
            continue
        if not path.read_bytes().strip() and path.name == "__init__.py":
            continue
        found.append(path)
    return found


def _test_paths(target: Path) -> list[Path]:
    dirs = [target / name for name in ("tests", "test") if (target / name).is_dir()]
    if dirs:
        return dirs
    return sorted(p for p in target.glob("*.py") if is_test_file(p.name))


def _package_root(path: Path) -> Path:
    """The folder a file is imported from: above every package (folder with __init__.py) it is in."""
    root = path.parent
    while (root / "__init__.py").exists() and root.parent != root:
        root = root.parent
    return root


def _module(root: Path, path: Path, parse: bool = True) -> Module:
    source = path.read_bytes()
    rel = path.relative_to(root)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    syntax_error = None
    try:
        if parse:
            ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        syntax_error = f"{rel}: {exc.__class__.__name__}: {exc}"
    return Module(
        path=rel.as_posix(),
        dotted=".".join(parts),
        file=path.resolve(),
        sha256=hashlib.sha256(source).hexdigest(),
        syntax_error=syntax_error,
    )


def discover(target: Path, patterns: list[str] | None = None, parse: bool = True) -> Project:
    """The modules of a project directory (src/ or flat layout) or of a single .py file. Without `parse`,
    a directory's modules are not parsed for syntax errors (a tenth of a second at 400 modules), for what
    needs only their files; a single file always is (its syntax error is bad input)."""
    target = Path(target).expanduser()
    if not target.exists():
        raise InputError(f"target {target} does not exist")
    target = target.resolve()
    if target.is_file():
        if target.suffix != ".py":
            raise InputError(f"target {target} is neither a directory nor a .py file")
        root = _package_root(target)
        module = _module(root, target)
        if module.syntax_error:
            raise InputError(f"target {target} is not valid Python: {module.syntax_error}")
        project_dir = root.parent if root.name == "src" else root
        return Project(target=project_dir, import_root=root, test_paths=_test_paths(project_dir), modules=[module])
    if not target.is_dir():
        raise InputError(f"target {target} is neither a directory nor a .py file")
    root = _import_root(target)
    modules = [_module(root, path, parse) for path in _module_files(root)]
    if patterns:
        modules = [
            m
            for m in modules
            if any(
                fnmatch.fnmatch(m.path, p) or fnmatch.fnmatch(m.file.relative_to(target).as_posix(), p)
                for p in patterns
            )
        ]
    if not modules:
        scope = f" matching {', '.join(patterns)}" if patterns else ""
        raise InputError(f"no Python modules found in {target}{scope}")
    return Project(target=target, import_root=root, test_paths=_test_paths(target), modules=modules)
