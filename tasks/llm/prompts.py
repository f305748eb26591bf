"""The messages the LLM generator sends: the first prompt of a module, the refinement after a
round (failures and lines still missed), and the correction after an unusable answer."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.core.markers import is_covsweep_file
from tasks.core.models import FileCoverage, Framework, Module, Mutant, ProjectRef
from tasks.core.testfiles import is_test_file
from tasks.coverage.diff import missed_changed_lines
from tasks.project.imports import module_file

MAX_SOURCE_LINES = 400  # longer modules are shown as an outline plus the missed segments
MAX_SEGMENT_LINES = 250  # all missed segments together
MAX_SIGNATURE_CHARS = 4000  # the project names the module imports
MAX_STYLE_LINES = 40  # the sample of the project's own tests
MAX_FAILURE_CHARS = 3000
CONTEXT_LINES = 2  # around a missed line outside any function
SMALL_CLASS_LINES = 60  # a method of a class this short is shown with its whole class
RUNNERS = {"pytest": "plain `pytest`", "unittest": "`python -m unittest`"}
MAX_SURVIVORS = 25  # mutants listed in one refinement prompt

SYSTEM = """\
You write pytest tests for Python projects. Your tests must raise the line and branch coverage \
of one module and pass reliably: every test you propose is run several times, in a sandbox without \
network access, and is kept only if it passes every time and executes code the existing tests do not.

Rules for the test file:
- plain pytest: module-level `test_*` functions (or `Test*` classes without __init__), plain `assert`;
- import the module under test by the dotted name given below, exactly as written;
- use only the standard library, pytest and the project itself; nothing else is installed;
- no network, no subprocesses, no sleeping, no dependence on the current time, randomness or test order;
- write files only below pytest's `tmp_path`; change environment variables, the working directory \
and module globals only through `monkeypatch`;
- every test asserts something about the behaviour it exercises; test what the code does, \
and when that looks like a bug, assert the current behaviour anyway;
- no top-level code besides imports, constants and helpers; no `pytest.main`, no `if __name__`.

Answer with one complete test file in a single ```python fenced block and nothing else."""

# --framework unittest: the project's CI runs `python -m unittest`, which never runs a plain function.
SYSTEM_UNITTEST = """\
You write unittest tests for Python projects. Your tests must raise the line and branch coverage \
of one module and pass reliably: every test you propose is run several times, in a sandbox without \
network access, and is kept only if it passes every time and executes code the existing tests do not.

Rules for the test file:
- unittest: `unittest.TestCase` subclasses named `Test*` with `test_*` methods and the `self.assert*` \
methods; the project's CI runs them with `python -m unittest`;
- import the module under test by the dotted name given below, exactly as written;
- use only the standard library and the project itself; pytest is not installed where they run;
- no network, no subprocesses, no sleeping, no dependence on the current time, randomness or test order;
- write files only in a `tempfile.TemporaryDirectory()`; change environment variables, the working \
directory and module globals only through `unittest.mock.patch` and `patch.dict`, undone after each test;
- every test asserts something about the behaviour it exercises; test what the code does, \
and when that looks like a bug, assert the current behaviour anyway;
- no top-level code besides imports, constants, helpers and the test classes; no `unittest.main()`, \
no `if __name__`.

Answer with one complete test file in a single ```python fenced block and nothing else."""


# -- coverage -----------------------------------------------------------------------------------


def missing(coverage: FileCoverage) -> tuple[list[int], list[tuple[int, int]]]:
    """Statements the tests do not execute yet, and the branches (arcs) not taken from lines that
    do execute: a line never reached misses all its branches, which says nothing more."""
    executed = set(coverage.executed_lines)
    lines = sorted(set(coverage.statements) - executed)
    taken = {tuple(b) for b in coverage.executed_branches}
    branches = sorted(b for b in {tuple(b) for b in coverage.branches} - taken if b[0] in executed)
    return lines, branches


def _ranges(numbers: list[int]) -> list[str]:
    out: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return out


def _arc(arc: tuple[int, int]) -> str:
    return f"{arc[0]}->{arc[1] if arc[1] > 0 else 'exit'}"


def describe_missing(lines: list[int], branches: list[tuple[int, int]]) -> str:
    """`lines 12-14, 20 and branches 15->17, 22->exit` (coverage.py's notation)."""
    parts = []
    if lines:
        parts.append(("line " if len(lines) == 1 else "lines ") + ", ".join(_ranges(lines)))
    if branches:
        parts.append(("branch " if len(branches) == 1 else "branches ") + ", ".join(_arc(b) for b in branches))
    return " and ".join(parts) if parts else "nothing"


def _enclosing(tree: ast.AST, line: int, small_class: int = SMALL_CLASS_LINES) -> tuple[int, int, str] | None:
    """What to show around `line`: its innermost function, or the whole class when the function
    is a method of a small class; first line (decorators included), last line, name."""
    best, best_class = None, None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            last = node.end_lineno or node.lineno
            if not first <= line <= last:
                continue
            if best is None or last - first < best[1] - best[0]:
                best = (first, last, node.name)
            if (
                isinstance(node, ast.ClassDef)
                and last - first < small_class
                and (best_class is None or first < best_class[0])
            ):
                best_class = (first, last, node.name)
    return best_class or best


def missed_segments(source: str, coverage: FileCoverage, *, limit: int = MAX_SEGMENT_LINES) -> str:
    """The source around every missed line and branch, numbered; missed lines marked `>>`, branch
    sources annotated with the jump that never happened."""
    lines, branches = missing(coverage)
    if not lines and not branches:
        return ""
    text = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    jumps: dict[int, list[str]] = {}
    for a, b in branches:
        jumps.setdefault(a, []).append("exit" if b < 0 else f"line {b}")
    spans = _missed_spans(tree, sorted(set(lines) | set(jumps)), len(text), limit)
    width = len(str(len(text)))
    out, shown = [], 0
    for first, last, name in _merged(spans):
        if shown >= limit:
            out.append(f"... (more missed code not shown: {describe_missing(lines, branches)})")
            break
        last = min(last, first + limit - shown - 1, len(text))
        out.append(f"# lines {first}-{last}" + (f" ({name})" if name else ""))
        for no in range(first, last + 1):
            mark = ">>" if no in lines else "  "
            note = f"  # branch never taken: to {', '.join(jumps[no])}" if no in jumps else ""
            out.append(f"{mark} {no:>{width}}  {text[no - 1]}{note}")
            shown += 1
    return "\n".join(out)


def _missed_spans(tree: ast.Module, missed: list[int], line_count: int, limit: int) -> list[tuple[int, int, str]]:
    """For each missed line, the function or class around it, or a window when there is none or it is huge."""
    spans: list[tuple[int, int, str]] = []
    for line in missed:
        if any(first <= line <= last for first, last, _ in spans):
            continue
        found = _enclosing(tree, line)
        if found and found[1] - found[0] > limit:  # a huge function or class: a window around the line
            found = None
        spans.append(found or (max(1, line - CONTEXT_LINES), min(line_count, line + CONTEXT_LINES), ""))
    return sorted(spans)


def _merged(spans: list[tuple[int, int, str]]) -> list[list]:
    """Sorted spans that overlap or touch joined into one, their names listed together."""
    merged: list[list] = []
    for first, last, name in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] = ", ".join(n for n in (merged[-1][2], name) if n)
        else:
            merged.append([first, last, name])
    return merged


def split_changed(coverage: FileCoverage, changed_lines: list[int] | None) -> tuple[FileCoverage | None, FileCoverage]:
    """(the changed lines no test executes yet, as a coverage that misses only them; the rest), for
    --changed-since: the change comes first in a prompt. (None, coverage) when none of it is missed."""
    missed = set(missed_changed_lines(coverage, changed_lines or []))
    if not missed:
        return None, coverage
    changed = coverage.model_copy(
        update={
            "executed_lines": sorted(set(coverage.statements) - missed),
            "branches": [],
            "executed_branches": [],
        }
    )
    rest = coverage.model_copy(
        update={
            "executed_lines": sorted(set(coverage.executed_lines) | missed),
            "branches": [b for b in coverage.branches if b[0] not in missed],
        }
    )
    return changed, rest


def missed_parts(source: str, coverage: FileCoverage, changed_lines: list[int] | None, opening: str) -> list[str]:
    """What the tests do not execute, as prompt paragraphs: with --changed-since the change's own lines
    first, under their own heading; `opening` starts the paragraph of the other missed code."""
    changed, rest = split_changed(coverage, changed_lines)
    parts = []
    if changed is not None:
        lines, _ = missing(changed)
        parts.append(
            f"## Changed lines not executed yet\nThis change added or modified {describe_missing(lines, [])}, "
            f"which no test executes yet: cover these first. They are marked `>>`:\n"
            f"{_fence(missed_segments(source, changed))}"
        )
    lines, branches = missing(rest)
    if lines or branches:
        heading = "## Other missed lines\n" if changed is not None else ""
        parts.append(
            f"{heading}{opening} {describe_missing(lines, branches)}. Missed lines are marked `>>`:\n"
            f"{_fence(missed_segments(source, rest))}"
        )
    return parts


# -- context: source, imported names, test style -----------------------------------------------


def numbered(source: str) -> str:
    text = source.splitlines()
    width = len(str(len(text)))
    return "\n".join(f"{no:>{width}}  {line}" for no, line in enumerate(text, 1))


def _docline(node: ast.AST) -> str:
    doc = (
        ast.get_docstring(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
        else None
    )
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _function_signature(node: ast.FunctionDef | ast.AsyncFunctionDef, indent: str = "") -> str:
    decorators = "".join(f"{indent}@{ast.unparse(d)}\n" for d in node.decorator_list)
    ret = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    doc = _docline(node)
    body = f'"""{doc}"""' if doc else "..."
    return f"{decorators}{indent}{prefix} {node.name}({ast.unparse(node.args)}){ret}: {body}"


def _class_signature(node: ast.ClassDef) -> str:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    head = "".join(f"@{ast.unparse(d)}\n" for d in node.decorator_list)
    head += f"class {node.name}" + (f"({', '.join(bases)})" if bases else "") + ":"
    body = []
    if doc := _docline(node):
        body.append(f'    """{doc}"""')
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            body.append(f"    {ast.unparse(item)}")
        elif isinstance(item, ast.Assign) and all(isinstance(t, ast.Name) for t in item.targets):
            body.append(f"    {_short(ast.unparse(item))}")
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            not item.name.startswith("_")
            or item.name in ("__init__", "__call__", "__post_init__")
            or (item.name.startswith("__") and item.name.endswith("__"))
        ):
            body.append(_function_signature(item, "    "))
    return head + "\n" + ("\n".join(body) if body else "    ...")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _definition(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return _function_signature(node)
        if isinstance(node, ast.ClassDef) and node.name == name:
            return _class_signature(node)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return _short(ast.unparse(node))
    return None


def outline(tree: ast.Module) -> str:
    """Public top-level definitions of a module, as signatures."""
    parts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            parts.append(_function_signature(node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            parts.append(_class_signature(node))
    return "\n\n".join(parts)


def _package_of(module: Module) -> str:
    is_package = Path(module.path).name == "__init__.py"
    return module.dotted if is_package else module.dotted.rpartition(".")[0]


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module).split(".") if _package_of(module) else []
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None


class _ProjectTrees:
    """The project's modules by dotted name, found under the import root and parsed once, when first asked for."""

    def __init__(self, project: ProjectRef):
        self.root = project.import_root
        self.trees: dict[str, ast.Module | None] = {}

    def __contains__(self, dotted: str) -> bool:
        return module_file(self.root, dotted) is not None

    def tree(self, dotted: str) -> ast.Module | None:
        if dotted not in self.trees:
            self.trees[dotted] = _parse(file) if (file := module_file(self.root, dotted)) else None
        return self.trees[dotted]


def imported_signatures(
    project: ProjectRef, module: Module, tree: ast.Module, *, limit: int = MAX_SIGNATURE_CHARS
) -> str:
    """Signatures of the project's names that `module` imports, read from their modules by ast."""
    trees = _ProjectTrees(project)
    blocks: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            blocks += _from_import_blocks(trees, module, node, seen)
        elif isinstance(node, ast.Import):
            blocks += _import_blocks(trees, module, node, seen)
    return _grouped_within(blocks, limit)


def _from_import_blocks(
    trees: _ProjectTrees, module: Module, node: ast.ImportFrom, seen: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(header, text) for each name of a `from X import ...` not shown yet."""
    source = _resolve(module, node)
    blocks = []
    for alias in node.names:
        key = (source, alias.name)
        if key in seen or source == module.dotted:
            continue
        seen.add(key)
        if block := _imported_name(trees, source, alias.name):
            blocks.append(block)
    return blocks


def _imported_name(trees: _ProjectTrees, source: str, name: str) -> tuple[str, str] | None:
    """`from source import name`: a submodule's outline, else the name's definition (all of them for `*`)."""
    if f"{source}.{name}" in trees:  # `from pkg import submodule`
        sub = trees.tree(f"{source}.{name}")
        if sub is not None and (text := outline(sub)):
            return f"# module {source}.{name}", text
        return None
    target = trees.tree(source)
    if target is None:
        return None
    text = outline(target) if name == "*" else _definition(target, name)
    return (f"# from {source}", text) if text else None


def _import_blocks(
    trees: _ProjectTrees, module: Module, node: ast.Import, seen: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(header, outline) for each project module of an `import X` not shown yet."""
    blocks = []
    for alias in node.names:
        if alias.name in trees and alias.name != module.dotted and ("", alias.name) not in seen:
            seen.add(("", alias.name))
            target = trees.tree(alias.name)
            if target is not None and (text := outline(target)):
                blocks.append((f"# module {alias.name}", text))
    return blocks


def _grouped_within(blocks: list[tuple[str, str]], limit: int) -> str:
    """The texts under their headers, each header once, cut off before `limit` characters."""
    grouped: dict[str, list[str]] = {}
    for header, text in blocks:
        grouped.setdefault(header, []).append(text)
    out, size = [], 0
    for header, texts in grouped.items():
        block = header + "\n" + "\n\n".join(texts)
        if size + len(block) > limit:
            out.append("# ... (more imported names not shown)")
            break
        out.append(block)
        size += len(block)
    return "\n\n".join(out)


def _test_files(project: ProjectRef) -> list[Path]:
    found: list[Path] = []
    for root in project.test_paths:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.rglob("*.py") if is_test_file(p.name))
    return found


def test_style_sample(project: ProjectRef, *, max_lines: int = MAX_STYLE_LINES) -> tuple[str, str] | None:
    """(path relative to the target, its first lines) of the project's first own test file."""
    for path in _test_files(project):
        if is_covsweep_file(path):
            continue
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if not any(line.strip() for line in lines):
            continue
        text = "\n".join(lines[:max_lines]) + ("\n# ..." if len(lines) > max_lines else "")
        try:
            shown = path.relative_to(project.target).as_posix()
        except ValueError:
            shown = path.name
        return shown, text
    return None


# -- mutants ------------------------------------------------------------------------------------


def _code(text: str) -> str:
    """Code on one line, in backticks that its own backticks do not end."""
    one_line = " ".join(line.strip() for line in text.splitlines()) or text
    return f"`` {one_line} ``" if "`" in one_line else f"`{one_line}`"


def surviving_mutants(survivors: list[Mutant], *, limit: int = MAX_SURVIVORS) -> str:
    """The "Surviving mutants" section of a refinement prompt (also OpenHands' task): one line per mutant,
    `- file:line: `original` -> `mutated``, and what to write about them; "" when there are none."""
    if not survivors:
        return ""
    lines = [f"- {m.file}:{m.line}: {_code(m.original)} -> {_code(m.mutated)}" for m in survivors[:limit]]
    if len(survivors) > limit:
        lines.append(f"- ... and {len(survivors) - limit} more")
    return (
        "## Surviving mutants\n"
        "Each line below is a small change to the module (original -> mutated) that every kept test still "
        "passes on, so the tests would not notice that bug. Write tests that pass on the original code and "
        "fail on the mutated code: assert the exact values returned, the state changed and the exceptions "
        "raised.\n" + "\n".join(lines)
    )


# -- messages -----------------------------------------------------------------------------------


def _fence(text: str) -> str:
    return f"```python\n{text}\n```"


def initial_messages(
    project: ProjectRef,
    module: Module,
    coverage: FileCoverage,
    *,
    source: str | None = None,
    max_source_lines: int = MAX_SOURCE_LINES,
    changed_lines: list[int] | None = None,
    framework: Framework = "pytest",
) -> list[dict[str, str]]:
    """system + user: the module, what it imports from the project, the project's test style,
    and what the tests do not execute yet."""
    source = source if source is not None else module.file.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    parts = [
        f"The module under test is `{module.dotted}` (file `{module.path}`). The tests run with "
        f"{RUNNERS[framework]} from the project's root, where it is importable as `{module.dotted}`: write "
        f"`import {module.dotted}` or `from {module.dotted} import ...`.",
    ]
    if len(source.splitlines()) <= max_source_lines:
        parts.append(f"Its source, with line numbers:\n{_fence(numbered(source))}")
    else:
        parts.append(f"Its public definitions (the module is too long to show whole):\n{_fence(outline(tree))}")
    if signatures := imported_signatures(project, module, tree):
        parts.append(f"Names it imports from the project:\n{_fence(signatures)}")
    if sample := test_style_sample(project):
        parts.append(f"The project's own tests look like this ({sample[0]}):\n{_fence(sample[1])}")
    if missed := missed_parts(source, coverage, changed_lines, "The existing tests do not execute"):
        parts += missed
        parts.append("Write new tests that execute these lines and branches.")
    else:
        parts.append("The existing tests execute every line and branch; write tests that check its behaviour.")
    parts.append("Answer with the complete test file in one ```python block and nothing else.")
    system = SYSTEM_UNITTEST if framework == "unittest" else SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def refinement_message(
    module: Module,
    coverage: FileCoverage,
    failures: str,
    *,
    kept: list[str] | None = None,
    source: str | None = None,
    max_failure_chars: int = MAX_FAILURE_CHARS,
    changed_lines: list[int] | None = None,
    survivors: list[Mutant] | None = None,
) -> dict[str, str]:
    """The user message after a round: what failed (pytest's output), what is still missed, and the
    mutants the kept tests let through."""
    source = source if source is not None else module.file.read_text(encoding="utf-8", errors="replace")
    parts = ["Your tests were run."]
    if kept:
        parts.append(f"These passed and are kept, do not repeat them: {', '.join(kept)}.")
    failures = failures.strip()
    if failures:
        if len(failures) > max_failure_chars:
            failures = "...\n" + failures[-max_failure_chars:]
        parts.append(f"Some failed or were not reliable, and were dropped. The test run said:\n```\n{failures}\n```")
    if missed := missed_parts(source, coverage, changed_lines, "Still not executed:"):
        parts += missed
        parts.append(
            f"Write a new complete test file for `{module.dotted}` with tests that fix the failures "
            "and execute these lines and branches."
        )
    else:
        parts.append("Every line and branch is executed now; fix the failing tests if they check something useful.")
    if mutants := surviving_mutants(survivors or []):
        parts.append(mutants)
    parts.append("Answer with the complete test file in one ```python block and nothing else.")
    return {"role": "user", "content": "\n\n".join(parts)}


def corrective_message(reason: str) -> dict[str, str]:
    """The user message after an answer that could not be used at all."""
    return {
        "role": "user",
        "content": (
            f"That answer could not be used: {reason}. Answer again with the complete test file in a "
            "single ```python fenced block, no explanation, following the rules above."
        ),
    }
