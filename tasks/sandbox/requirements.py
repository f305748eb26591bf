"""What a target project declares it needs to import and to run its own tests, as PEP 508 strings.

Read: pyproject.toml [project].dependencies, its optional-dependencies and dependency-groups
named like test or dev, setup.cfg install_requires / tests_require / the same extras, setup.py's
install_requires / tests_require / extras_require where its setup() call is literal (setup_py.py;
otherwise the PEP 517 hook in the sandbox reads them, see target_image.py), and the requirements
files of REQUIREMENT_FILES (with their -r includes). Not read: Poetry's and Pipenv's tables, local
paths and URLs (`pkg @ https://...`, VCS): the offline build could not fetch them.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field

from tasks.core.errors import InputError
from tasks.sandbox.setup_py import NotStatic, SetupDeclarations, read_setup_py

# The project's own tests need these too: pytest plugins mostly live in a test or dev set.
TEST_SETS = ("test", "tests", "testing", "dev")
REQUIREMENT_FILES = (
    "requirements.txt",
    "requirements-test.txt",
    "requirements-tests.txt",
    "test-requirements.txt",
    "requirements-dev.txt",
    "dev-requirements.txt",
)
INCLUDE_OPTIONS = ("-r", "--requirement")


Declarations = tuple[str | None, list[str], dict[str, list[str]]]


class Declared(BaseModel):
    requirements: list[str] = Field(description="sorted, without duplicates")
    setup_py_unread: str = Field(
        default="", description="why setup.py's dependencies could not be read statically; '' when read or absent"
    )


def read_declared(project_dir: Path, setup_py: SetupDeclarations | None = None) -> Declared:
    """What the project declares; `setup_py`: what the metadata hook read from its setup.py, where
    the static read could not (without it, such a setup.py adds nothing and says why)."""
    project_dir = Path(project_dir)
    sources: list[Declarations] = []
    if (project_dir / "pyproject.toml").is_file():
        sources.append(_pyproject(project_dir / "pyproject.toml"))
    if (project_dir / "setup.cfg").is_file():
        sources.append(_setup_cfg(project_dir / "setup.cfg"))
    unread = ""
    if setup_py is None and (project_dir / "setup.py").is_file():
        try:
            setup_py = read_setup_py(project_dir / "setup.py")
        except NotStatic as exc:
            unread = str(exc)
    if setup_py is not None:
        where = project_dir / "setup.py"
        runtime = [_parse(r, where) for r in setup_py.install_requires]
        sources.append((setup_py.name, runtime, {k: [_parse(r, where) for r in v] for k, v in setup_py.extras.items()}))
    name = next((source[0] for source in sources if source[0]), None)
    found = [r for source in sources for r in source[1]]
    extras: dict[str, list[str]] = {}
    for source in sources:
        for key, requirements in source[2].items():
            extras.setdefault(canonicalize_name(key), []).extend(requirements)
    found += [r for key in TEST_SETS for r in extras.get(key, [])]
    for filename in REQUIREMENT_FILES:
        if (project_dir / filename).is_file():
            found += _requirements_file(project_dir / filename, set())
    return Declared(requirements=sorted(_installable(found, name, extras)), setup_py_unread=unread)


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


def _pyproject(path: Path) -> Declarations:
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


def _setup_cfg(path: Path) -> Declarations:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise InputError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None

    def lines(section: str, option: str) -> list[str]:
        value = parser.get(section, option, fallback="")
        return [_parse(line, path) for line in (_strip_comment(v) for v in value.splitlines()) if line]

    extras = (
        {key: lines("options.extras_require", key) for key in parser.options("options.extras_require")}
        if parser.has_section("options.extras_require")
        else {}
    )
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
