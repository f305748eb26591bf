"""What a target project declares it needs to import and to run its own tests, as PEP 508 strings.

Read: pyproject.toml [project].dependencies, its optional-dependencies and dependency-groups
named like test or dev, setup.cfg install_requires / tests_require / the same extras, and the
requirements files of REQUIREMENT_FILES (with their -r includes). Not read: setup.py, Poetry's
and Pipenv's tables, local paths and URLs (`pkg @ https://...`, VCS): the offline build could not fetch them.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tasks.models import InputError

# The project's own tests need these too: pytest plugins mostly live in a test or dev set.
TEST_SETS = ("test", "tests", "testing", "dev")
REQUIREMENT_FILES = (
    "requirements.txt", "requirements-test.txt", "requirements-tests.txt", "test-requirements.txt",
    "requirements-dev.txt", "dev-requirements.txt",
)
INCLUDE_OPTIONS = ("-r", "--requirement")


def declared_requirements(project_dir: Path) -> list[str]:
    """Sorted and without duplicates; [] when the project declares nothing."""
    project_dir = Path(project_dir)
    found: list[str] = []
    name, extras = None, {}
    if (project_dir / "pyproject.toml").is_file():
        name, runtime, extras = _pyproject(project_dir / "pyproject.toml")
        found += runtime
    if (project_dir / "setup.cfg").is_file():
        cfg_name, runtime, cfg_extras = _setup_cfg(project_dir / "setup.cfg")
        name = name or cfg_name
        found += runtime
        extras = {**cfg_extras, **extras}
    extras = {canonicalize_name(key): value for key, value in extras.items()}
    found += [r for key in TEST_SETS for r in extras.get(key, [])]
    for filename in REQUIREMENT_FILES:
        if (project_dir / filename).is_file():
            found += _requirements_file(project_dir / filename, set())
    return sorted(_installable(found, name, extras))


def _normal(requirement: Requirement) -> str:
    """One spelling per requirement: `Six >= 1.16` and `six>=1.16` are the same to pip and to the image's hash."""
    requirement.name = canonicalize_name(requirement.name)
    return str(requirement)


def _parse(text: str, where: Path) -> str:
    try:
        return _normal(Requirement(text))
    except InvalidRequirement as exc:
        raise InputError(f"{where}: cannot read the requirement {text!r}: {str(exc).splitlines()[0]}") from None


def _installable(found: list[str], name: str | None, extras: dict[str, list[str]]) -> set[str]:
    """Without the project itself (`mypkg[test]` in its own lists is mounted, not installed: its
    extras' requirements stand for it) and without direct URLs (an offline build cannot fetch them)."""
    own = canonicalize_name(name) if name else None
    kept: set[str] = set()
    pending, seen_extras = list(found), set()
    while pending:
        requirement = Requirement(pending.pop())
        if own and canonicalize_name(requirement.name) == own:
            for extra in {canonicalize_name(e) for e in requirement.extras} - seen_extras:
                seen_extras.add(extra)
                pending += extras.get(extra, [])
            continue
        if not requirement.url:
            kept.add(_normal(requirement))
    return kept


def _pyproject(path: Path) -> tuple[str | None, list[str], dict[str, list[str]]]:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    project = data.get("project", {})
    sets = {key: list(value) for key, value in project.get("optional-dependencies", {}).items()}
    groups = data.get("dependency-groups", {})
    for key in groups:
        sets.setdefault(key, []).extend(_group(groups, key, path, set()))
    runtime = [_parse(r, path) for r in project.get("dependencies", [])]
    return project.get("name"), runtime, {k: [_parse(r, path) for r in v] for k, v in sets.items()}


def _group(groups: dict, key: str, path: Path, seen: set[str]) -> list[str]:
    """A PEP 735 dependency group with its {include-group = ...} entries expanded."""
    if key in seen:
        raise InputError(f"{path}: dependency group {key!r} includes itself")
    entries = []
    for entry in groups.get(key, []):
        if isinstance(entry, dict) and "include-group" in entry:
            entries += _group(groups, entry["include-group"], path, seen | {key})
        elif isinstance(entry, str):
            entries.append(entry)
    return entries


def _setup_cfg(path: Path) -> tuple[str | None, list[str], dict[str, list[str]]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise InputError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None

    def lines(section: str, option: str) -> list[str]:
        value = parser.get(section, option, fallback="")
        return [_parse(line, path) for line in (_strip_comment(v) for v in value.splitlines()) if line]

    extras = {key: lines("options.extras_require", key) for key in parser.options("options.extras_require")} \
        if parser.has_section("options.extras_require") else {}
    if parser.has_option("options", "tests_require"):
        extras.setdefault("test", []).extend(lines("options", "tests_require"))
    return parser.get("metadata", "name", fallback=None), lines("options", "install_requires"), extras


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*", "", line).strip()


def _requirements_file(path: Path, seen: set[Path]) -> list[str]:
    """Requirement lines of a pip requirements file and of the files it includes; other options are pip's business, not ours."""
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    text = re.sub(r"\\\n", " ", path.read_text(errors="replace"))
    found: list[str] = []
    for line in (_strip_comment(raw) for raw in text.splitlines()):
        if not line:
            continue
        option, _, rest = line.partition(" ")
        if option in INCLUDE_OPTIONS or option.startswith("--requirement="):
            include = rest.strip() or option.partition("=")[2]
            if include and (path.parent / include).is_file():
                found += _requirements_file(path.parent / include, seen)
            continue
        if line.startswith("-"):
            continue  # -e ., -c, --index-url, ...: the target itself or pip's settings
        try:
            # Per-requirement options such as --hash follow the requirement: cut them off.
            found.append(_normal(Requirement(line.split(" --")[0].strip())))
        except InvalidRequirement:
            continue  # a local path or a VCS URL: nothing a wheelhouse can be filled with
    return found
