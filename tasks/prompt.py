"""The messages the LLM generator sends: the first prompt of a module, the refinement after a
round (failures and lines still missed), and the correction after an unusable answer."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.discover import _is_test_file
from tasks.models import FileCoverage, Module, Project
from tasks.write import is_covsweep_file

MAX_SOURCE_LINES = 400       # longer modules are shown as an outline plus the missed segments
MAX_SEGMENT_LINES = 250      # all missed segments together
MAX_SIGNATURE_CHARS = 4000   # the project names the module imports
MAX_STYLE_LINES = 40         # the sample of the project's own tests
MAX_FAILURE_CHARS = 3000
CONTEXT_LINES = 2            # around a missed line outside any function
SMALL_CLASS_LINES = 60       # a method of a class this short is shown with its whole class

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
            if isinstance(node, ast.ClassDef) and last - first < small_class and (
                    best_class is None or first < best_class[0]):
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
    spans: list[tuple[int, int, str]] = []
    for line in sorted(set(lines) | set(jumps)):
        if any(first <= line <= last for first, last, _ in spans):
            continue
        found = _enclosing(tree, line)
        if found and found[1] - found[0] > limit:  # a huge function or class: a window around the line
            found = None
        spans.append(found or (max(1, line - CONTEXT_LINES), min(len(text), line + CONTEXT_LINES), ""))
    spans.sort()
    merged: list[list] = []
    for first, last, name in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] = ", ".join(n for n in (merged[-1][2], name) if n)
        else:
            merged.append([first, last, name])
    width = len(str(len(text)))
    out, shown = [], 0
    for first, last, name in merged:
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


# -- context: source, imported names, test style -----------------------------------------------

def numbered(source: str) -> str:
    text = source.splitlines()
    width = len(str(len(text)))
    return "\n".join(f"{no:>{width}}  {line}" for no, line in enumerate(text, 1))


def _docline(node: ast.AST) -> str:
    doc = ast.get_docstring(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                        ast.Module)) else None
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
                not item.name.startswith("_") or item.name in ("__init__", "__call__", "__post_init__")
                or (item.name.startswith("__") and item.name.endswith("__"))):
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
    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None


def imported_signatures(project: Project, module: Module, tree: ast.Module, *,
                        limit: int = MAX_SIGNATURE_CHARS) -> str:
    """Signatures of the project's names that `module` imports, read from their modules by ast."""
    by_dotted = {m.dotted: m for m in project.modules}
    trees: dict[str, ast.Module | None] = {}

    def tree_of(dotted: str) -> ast.Module | None:
        if dotted not in trees:
            trees[dotted] = _parse(by_dotted[dotted].file) if dotted in by_dotted else None
        return trees[dotted]

    blocks: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                key = (source, alias.name)
                if key in seen or source == module.dotted:
                    continue
                seen.add(key)
                if f"{source}.{alias.name}" in by_dotted:  # `from pkg import submodule`
                    sub = tree_of(f"{source}.{alias.name}")
                    if sub is not None and (text := outline(sub)):
                        blocks.append((f"# module {source}.{alias.name}", text))
                    continue
                target = tree_of(source)
                if target is None:
                    continue
                if alias.name == "*":
                    text = outline(target)
                else:
                    text = _definition(target, alias.name)
                if text:
                    blocks.append((f"# from {source}", text))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in by_dotted and alias.name != module.dotted and ("", alias.name) not in seen:
                    seen.add(("", alias.name))
                    target = tree_of(alias.name)
                    if target is not None and (text := outline(target)):
                        blocks.append((f"# module {alias.name}", text))
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


def _test_files(project: Project) -> list[Path]:
    found: list[Path] = []
    for root in project.test_paths:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.rglob("*.py") if _is_test_file(p.name))
    return found


def test_style_sample(project: Project, *, max_lines: int = MAX_STYLE_LINES) -> tuple[str, str] | None:
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


# -- messages -----------------------------------------------------------------------------------

def _fence(text: str) -> str:
    return f"```python\n{text}\n```"


def initial_messages(project: Project, module: Module, coverage: FileCoverage, *,
                     source: str | None = None, max_source_lines: int = MAX_SOURCE_LINES) -> list[dict[str, str]]:
    """system + user: the module, what it imports from the project, the project's test style,
    and what the tests do not execute yet."""
    source = source if source is not None else module.file.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    lines, branches = missing(coverage)
    parts = [
        f"The module under test is `{module.dotted}` (file `{module.path}`). The tests run with plain "
        f"`pytest` from the project's root, where it is importable as `{module.dotted}`: write "
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
    if lines or branches:
        parts.append(f"The existing tests do not execute {describe_missing(lines, branches)}. "
                     f"Missed lines are marked `>>`:\n{_fence(missed_segments(source, coverage))}")
        parts.append("Write new tests that execute these lines and branches.")
    else:
        parts.append("The existing tests execute every line and branch; write tests that check its behaviour.")
    parts.append("Answer with the complete test file in one ```python block and nothing else.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def refinement_message(module: Module, coverage: FileCoverage, failures: str, *, kept: list[str] | None = None,
                       source: str | None = None, max_failure_chars: int = MAX_FAILURE_CHARS) -> dict[str, str]:
    """The user message after a round: what failed (pytest's output) and what is still missed."""
    source = source if source is not None else module.file.read_text(encoding="utf-8", errors="replace")
    lines, branches = missing(coverage)
    parts = ["Your tests were run."]
    if kept:
        parts.append(f"These passed and added coverage; they are kept, do not repeat them: {', '.join(kept)}.")
    failures = failures.strip()
    if failures:
        if len(failures) > max_failure_chars:
            failures = "...\n" + failures[-max_failure_chars:]
        parts.append(f"Some failed or were not reliable, and were dropped. The test run said:\n```\n{failures}\n```")
    if lines or branches:
        parts.append(f"Still not executed: {describe_missing(lines, branches)}. Missed lines are marked `>>`:\n"
                     f"{_fence(missed_segments(source, coverage))}")
        parts.append(f"Write a new complete test file for `{module.dotted}` with tests that fix the failures "
                     "and execute these lines and branches.")
    else:
        parts.append("Every line and branch is executed now; fix the failing tests if they check something useful.")
    parts.append("Answer with the complete test file in one ```python block and nothing else.")
    return {"role": "user", "content": "\n\n".join(parts)}


def corrective_message(reason: str) -> dict[str, str]:
    """The user message after an answer that could not be used at all."""
    return {"role": "user", "content": (
        f"That answer could not be used: {reason}. Answer again with the complete pytest test file in a "
        "single ```python fenced block, no explanation, following the rules above.")}
