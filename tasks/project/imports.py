"""A project's importable names, found through the file system under its import root: a module
task needs no list of the project's modules to find the one a name refers to."""

from __future__ import annotations

from pathlib import Path


def module_file(import_root: Path, dotted: str) -> Path | None:
    """The file `import dotted` loads from the import root (`pkg/mod.py` or `pkg/mod/__init__.py`);
    None for a name that is not the project's."""
    parts = dotted.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    base = import_root.joinpath(*parts)
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def top_level_names(import_root: Path) -> set[str]:
    """The project's top-level modules and packages: what a test may import of the project."""
    names: set[str] = set()
    for entry in import_root.iterdir() if import_root.is_dir() else ():
        if entry.name.endswith(".py") and entry.is_file():
            name = entry.name.removesuffix(".py")
        elif (entry / "__init__.py").is_file():
            name = entry.name
        else:
            continue
        if name.isidentifier():
            names.add(name)
    return names
