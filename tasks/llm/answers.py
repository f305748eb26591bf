"""From an LLM's answer to a test file: take the code, refuse what must not run."""

from __future__ import annotations

import ast
import re
import sys

from tasks.core.testfiles import literal_paths_written, test_names
from tasks.llm.client import LLMError

PYTHON_TAGS = {"python", "python3", "py", "pytest"}
FORBIDDEN = {"covsweep": "covsweep is not installed where the tests run"}
NETWORK = {
    "socket",
    "ssl",
    "requests",
    "httpx",
    "urllib",
    "urllib3",
    "aiohttp",
    "http.client",
    "http.server",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc.client",
    "websocket",
    "websockets",
}
# What the sandbox's test runner has besides the standard library and the project.
RUNNER_MODULES = {"pytest", "_pytest", "pluggy", "coverage", "pytest_timeout"}

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
_OPEN_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n(.*)\Z", re.M | re.S)


def invalid(reason: str) -> LLMError:
    return LLMError("invalid_response", reason)


def _parses_with_tests(code: str) -> bool:
    try:
        return bool(test_names(code))
    except (SyntaxError, ValueError):
        return False


def extract_code(text: str) -> str:
    """The test code of an answer: its ```python block(s), else its only fence, else the whole
    answer when that is Python with tests in it (a model that forgot the fence)."""
    fences = [(m.group(2).lower(), m.group(3)) for m in _FENCE.finditer(text)]
    if fences:
        tagged = [body for tag, body in fences if tag in PYTHON_TAGS]
        if not tagged:
            if len(fences) == 1:
                tagged = [fences[0][1]]
            else:
                tagged = [body for tag, body in fences if not tag and _parses_with_tests(body)]
        if not tagged:
            raise invalid("the answer has no ```python block")
        if len(tagged) == 1:
            return tagged[0]
        with_tests = [body for body in tagged if _parses_with_tests(body)]
        if len(with_tests) > 1:
            joined = "\n\n".join(with_tests)
            return joined if _parses_with_tests(joined) else with_tests[-1]
        return with_tests[0] if with_tests else tagged[-1]
    if opened := _OPEN_FENCE.search(text):  # a fence that was never closed: the answer was cut off
        return opened.group(3)
    if _parses_with_tests(text):
        return text
    raise invalid("the answer has no code, only prose")


def _imported(tree: ast.AST) -> list[tuple[str, int]]:
    """(dotted name, relative level) of every import, dynamic ones with a literal name included."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
            if not node.level and node.module:
                found += [(f"{node.module}.{a.name}", 0) for a in node.names if a.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("__import__", "import_module"):
                found.append((node.args[0].value, 0))
    return found


def _matches(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def check_code(code: str, *, allowed: set[str] = frozenset(), known: set[str] | None = None) -> str:
    """The code, if it may run; else LLMError("invalid_response", why).

    allowed: top-level modules the module under test imports itself (a test of an HTTP client may
    import `requests` to monkeypatch it). known: top-level modules importable where the tests
    run (stdlib, the runner's, the project's); None: do not check."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise invalid(f"the code does not parse: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise invalid(f"the code does not parse: {exc}") from None
    if not test_names(code):
        raise invalid("the code has no test functions (`def test_...`)")
    for name, level in _imported(tree):
        if level:
            raise invalid(f"relative import `from {'.' * level}{name} import ...`: import the project by its full name")
        top = name.split(".")[0]
        if top in FORBIDDEN:
            raise invalid(f"it imports {name}: {FORBIDDEN[top]}")
        if (hit := _matches(name, NETWORK)) and top not in allowed:
            raise invalid(f"it imports {hit}: tests must not touch the network")
        if known is not None and top and top not in known and top not in allowed:
            raise invalid(
                f"it imports {top}, which is not installed where the tests run: "
                "use only the standard library, pytest and the project"
            )
    if writes := literal_paths_written(tree):
        raise invalid(f"it writes outside its tmp dir: {', '.join(writes[:3])}; write files only below tmp_path")
    return code


def known_modules(project_packages: set[str], extra: set[str] = frozenset()) -> set[str]:
    """Top-level modules a generated test may import: stdlib, the test runner's, the project's."""
    return set(sys.stdlib_module_names) | RUNNER_MODULES | {"__future__"} | set(project_packages) | set(extra)


def extract_test_source(text: str, *, allowed: set[str] = frozenset(), known: set[str] | None = None) -> str:
    """The test file in an LLM answer, ready to write; raises LLMError("invalid_response", reason)."""
    code = extract_code(text).strip("\n")
    if not code.strip():
        raise invalid("the answer's code block is empty")
    return check_code(code, allowed=allowed, known=known) + "\n"
