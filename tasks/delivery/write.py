"""Put accepted tests into the target: only covsweep's own files are ever written or replaced."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from pydantic import BaseModel

from tasks.core.markers import MARKER, is_covsweep_file, written_for
from tasks.core.models import Framework, Module, Project
from tasks.core.testfiles import test_names
from tasks.coverage.readable.imports import tidy_imports
from tasks.coverage.testfile import TestFileBuilder
from tasks.project.imports import top_level_names
from tasks.project.pytest_config import import_root_configured


class WriteRequest(BaseModel):
    module: Module
    source: str


class Written(BaseModel):
    module: str
    path: Path | None = None
    refused: str | None = None
    changed: bool = False


def test_file_name(module: Module, taken: set[str]) -> str:
    """`test_<module path with _>.py`, unless the project has a test module of that name (`taken`)."""
    name = "test_" + module.path.removesuffix(".py").replace("/", "_").replace(".", "_") + ".py"
    # pytest's default import mode rejects two test modules of the same basename.
    return name.removesuffix(".py") + "_covsweep.py" if name in taken else name


def _root_expression(out: Path, project: Project) -> str:
    """The import root as seen from a file in `out`: relative to it inside the target (the target may
    be cloned elsewhere), absolute outside."""
    if out.is_relative_to(project.target):
        depth = len(out.relative_to(project.target).parts)
        rel = project.import_root.relative_to(project.target).as_posix()
        return f"Path(__file__).resolve().parents[{depth}]" + (f" / {rel!r}" if rel != "." else "")
    return f"Path({str(project.import_root)!r})"


def conftest_text(out: Path, project: Project) -> str:
    """One conftest.py in `out` that makes the project importable under plain pytest, installed or not."""
    return "\n".join(
        [
            f"{MARKER}: it puts the project's import root on sys.path for the generated tests.",
            "import sys",
            "from pathlib import Path",
            "",
            f"IMPORT_ROOT = str({_root_expression(out, project)})",
            "if IMPORT_ROOT not in sys.path:",
            "    sys.path.insert(0, IMPORT_ROOT)",
            "",
        ]
    )


def preamble(out: Path, project: Project) -> str:
    """The same at the head of each file, where a conftest.py cannot do it: under unittest, which
    reads none, or when `out` already has a conftest.py that is not covsweep's."""
    return "\n".join(
        [
            "import sys as _covsweep_sys",
            "from pathlib import Path",
            "",
            f"_COVSWEEP_ROOT = str({_root_expression(out, project)})",
            "if _COVSWEEP_ROOT not in _covsweep_sys.path:",
            "    _covsweep_sys.path.insert(0, _COVSWEEP_ROOT)",
            "",
        ]
    )


def without_preamble(text: str) -> str:
    """A file of an earlier run without its preamble, wherever that run's paths pointed: the statements
    naming `_covsweep_sys` or `_COVSWEEP_ROOT`, and `from pathlib import Path` when nothing else uses it."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    preamble_names = {"_covsweep_sys", "_COVSWEEP_ROOT"}
    doomed = [
        node
        for node in tree.body
        if preamble_names & {getattr(n, "id", None) or getattr(n, "asname", None) for n in ast.walk(node)}
    ]
    if not doomed:
        return text
    rest = [n for n in tree.body if n not in doomed]
    uses_path = any(isinstance(n, ast.Name) and n.id == "Path" for node in rest for n in ast.walk(node))
    for node in rest:
        binds_path = isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["Path"]
        if binds_path and node.module == "pathlib" and not uses_path and node.lineno < doomed[-1].lineno:
            doomed.append(node)
    skipped = {line for node in doomed for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    return "".join(line for number, line in enumerate(lines, 1) if number not in skipped).lstrip("\n")


def written_body(text: str) -> str:
    """A written file's tests and imports: without its marker line and its preamble."""
    return without_preamble(text.split("\n", 1)[1])


def render(
    module: Module, source: str, earlier: str | None = None, head: str = "", first_party: set[str] | None = None
) -> str:
    """The file to write, `head` after the marker; tests of an earlier covsweep file are kept (they are
    in the baseline), its preamble dropped, and no import twice."""
    if earlier:
        builder = TestFileBuilder()
        body = written_body(earlier)
        builder.add(body, set(test_names(body)))
        builder.add(source, set(test_names(source)))
        source = tidy_imports(builder.render(), first_party or set())
    marker = f"{MARKER} for {module.path} (sha256 {module.sha256[:16]}); covsweep may add to it."
    return f"{marker}\n{head}\n{source}" if head else f"{marker}\n{source}"


def _own_path(module: Module, out: Path, taken: set[str]) -> Path:
    name = test_file_name(module, taken)
    path, n = out / name, 1
    # pkg/a_b.py and pkg/a/b.py flatten alike: the other module's file is not ours to replace.
    while path.exists() and is_covsweep_file(path) and written_for(path) != module.path:
        n += 1
        path = out / f"{name.removesuffix('.py')}_{n}.py"
    return path


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".py.covsweep-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def import_root_setup(project: Project, out: Path, framework: Framework = "pytest") -> str:
    """Put the import root on sys.path for the tests in `out`, once: nothing where the project's pytest
    configuration does it, else covsweep's conftest.py in `out`. Returns the head each test file needs:
    the preamble where a conftest.py cannot serve (unittest; a conftest.py that is not covsweep's)."""
    conftest = out / "conftest.py"
    if framework == "unittest" or (conftest.exists() and not is_covsweep_file(conftest)):
        return preamble(out, project)
    if import_root_configured(project, out):
        conftest.unlink(missing_ok=True)  # covsweep's, from before the project configured it
        return ""
    text = conftest_text(out, project)
    if not conftest.exists() or conftest.read_text() != text:
        _replace(conftest, text)
    return ""


PACKAGE_MARKER = f"{MARKER}: this folder is a package, so that unittest's discovery runs the tests in it.\n"


def make_package(out: Path) -> None:
    """unittest's discovery goes down into packages only: a marked __init__.py in --out, unless it has one."""
    init = out / "__init__.py"
    if not init.exists():
        init.write_text(PACKAGE_MARKER)


def write_files(
    project: Project, out: Path, requests: list[WriteRequest], framework: Framework = "pytest"
) -> list[Written]:
    """Write each module's accepted tests atomically; never overwrite a file without the marker."""
    written = []
    if framework == "unittest" and requests:
        out.mkdir(parents=True, exist_ok=True)
        make_package(out)
    taken = {p.name for p in project.target.rglob("test_*.py") if not is_covsweep_file(p)}
    first_party = top_level_names(project.import_root)
    head: str | None = None
    for request in requests:
        path = _own_path(request.module, out, taken)
        if path.exists() and not is_covsweep_file(path):
            written.append(
                Written(module=request.module.path, refused=f"{path} exists and was not written by covsweep")
            )
            continue
        out.mkdir(parents=True, exist_ok=True)
        head = import_root_setup(project, out, framework) if head is None else head
        earlier = path.read_text() if path.exists() else None
        text = render(request.module, request.source, earlier, head, first_party)
        if text != earlier:
            _replace(path, text)
        written.append(Written(module=request.module.path, path=path, changed=text != earlier))
    return written
