"""Whether plain `pytest`, run from a project's root, already finds the project's modules: its
configuration puts the import root on sys.path (the `pythonpath` ini option), or a conftest.py at the
root makes pytest's default import mode put the root there. Then generated tests need nothing of their own."""

from __future__ import annotations

import configparser
import shlex
import tomllib
from pathlib import Path

from pydantic import BaseModel

from tasks.core.models import Project

# pytest's own order, per folder, from the invocation folder upwards (_pytest/config/findpaths.py).
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
INI_SECTIONS = {"pytest.ini": "pytest", ".pytest.ini": "pytest", "tox.ini": "pytest", "setup.cfg": "tool:pytest"}


class PytestConfig(BaseModel):
    path: Path
    options: dict[str, str | list[str]]

    def paths(self, key: str) -> list[Path]:
        """An ini option of type `paths`, relative to the file's folder."""
        value = self.options.get(key, [])
        entries = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
        return [(self.path.parent / entry).resolve() for entry in entries]

    def text(self, key: str) -> str:
        value = self.options.get(key, "")
        return value if isinstance(value, str) else " ".join(str(v) for v in value)


def _read(path: Path) -> dict | None:
    """The pytest options a configuration file holds; None when it holds no pytest section."""
    try:
        if path.name == "pyproject.toml":
            table = tomllib.loads(path.read_text()).get("tool", {}).get("pytest")
            if not isinstance(table, dict):
                return None
            # [tool.pytest.ini_options]; pytest 9 also reads a native [tool.pytest] table.
            return table["ini_options"] if isinstance(table.get("ini_options"), dict) else table
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, configparser.Error):
        return None
    section = INI_SECTIONS[path.name]
    if parser.has_section(section):
        return dict(parser.items(section))
    return {} if path.name in ("pytest.ini", ".pytest.ini") else None


def locate(start: Path) -> PytestConfig | None:
    """The configuration file pytest uses when run in `start` with no arguments."""
    for folder in [start, *start.parents]:
        for name in CONFIG_FILES:
            path = folder / name
            if path.is_file() and (options := _read(path)) is not None:
                return PytestConfig(path=path, options=options)
    return None


def import_root_configured(project: Project, out: Path) -> bool:
    """Whether plain pytest, from the target's root, imports the project's modules in tests under `out`
    without help: never for an `out` outside the target, which the project's configuration does not see."""
    out, target = out.resolve(), project.target.resolve()
    if not out.is_relative_to(target):
        return False
    config = locate(target)
    root = project.import_root.resolve()
    if config is None:
        return False
    if root in config.paths("pythonpath"):
        return True
    # A conftest.py at the rootdir, outside any package: pytest's default `prepend` import mode puts
    # its folder first on sys.path before collecting anything.
    return (
        root == target
        and config.path.parent == target
        and (target / "conftest.py").is_file()
        and not (target / "__init__.py").exists()
        and "importlib" not in config.text("addopts")
    )
