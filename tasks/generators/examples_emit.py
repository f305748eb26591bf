"""Recorded examples -> a plain pytest file. Standalone (standard library only): it runs in the
sandbox next to examples_driver.py, and the file it writes needs neither Hypothesis nor covsweep.

A case is what one call (or one docstring's examples) did, as JSON: the steps to replay, each
with the literal source of its arguments, and what came out: a value written as a literal or as
its repr, or the exception it raised.
"""

from __future__ import annotations

import ast
import builtins
import enum
import keyword
import math
import re
from typing import Any

MAX_LITERAL_CHARS = 400
MAX_CONTAINER_ITEMS = 20
ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")


def literal(value: Any, depth: int = 0) -> str | None:
    """Python source that evaluates to a value equal to `value`, or None when there is none:
    builtin scalars and containers of them, and enum members (written by the caller)."""
    text = _literal(value, depth)
    if text is None or len(text) > MAX_LITERAL_CHARS:
        return None
    return text


def _literal(value: Any, depth: int) -> str | None:
    kind = type(value)
    if value is None or kind in (bool, int, str, bytes):
        return repr(value)
    if kind is float:
        if math.isnan(value):
            return None
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if depth > 3 or kind not in (list, tuple, set, frozenset, dict) or len(value) > MAX_CONTAINER_ITEMS:
        return None
    if kind is dict:
        pairs = [(_literal(k, depth + 1), _literal(v, depth + 1)) for k, v in value.items()]
        return (
            None
            if any(k is None or v is None for k, v in pairs)
            else "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        )
    items = [_literal(item, depth + 1) for item in value]
    if any(item is None for item in items):
        return None
    if kind in (set, frozenset):
        inner = "{" + ", ".join(sorted(items)) + "}" if items else ""
        return (inner or "set()") if kind is set else f"frozenset({inner})"
    if kind is tuple:
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return "[" + ", ".join(items) + "]"


def stable_repr(value: Any) -> str | None:
    """A repr worth asserting on: not object's default (an address), not a huge one."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ is the target's, not ours
        return None
    if ADDRESS.search(text) or len(text) > MAX_LITERAL_CHARS or text.startswith("<function "):
        return None
    return text


def writable(value: Any, module_name: str, alias: str) -> tuple[str, list[str]] | None:
    """Source that rebuilds `value`, with the imports it needs: a literal, an enum member of the
    module, or a repr that evaluates back to an equal value (datetime.date(2020, 1, 2), Decimal('1.5'))."""
    kind = type(value)
    if isinstance(value, enum.Enum) and kind.__module__ == module_name:
        return f"{alias}.{kind.__qualname__}.{value.name}", []
    text = literal(value)
    if text is not None:
        return text, []
    text = stable_repr(value)
    if text is None or "<" in kind.__qualname__:
        return None
    top = kind.__module__.split(".")[0]
    if text.startswith(f"{top}."):
        imports = [f"import {top}"]
    elif text.startswith(f"{kind.__qualname__}("):
        imports = [f"from {kind.__module__} import {kind.__qualname__}"]
    else:
        return None
    return (text, imports) if _rebuilds(text, imports, value) else None


def _rebuilds(text: str, imports: list[str], value: Any) -> bool:
    namespace: dict = {}
    try:
        for line in imports:
            exec(line, namespace)  # noqa: S102 - an import line this module wrote
        return bool(eval(text, namespace) == value)  # noqa: S307 - a repr checked before it is written
    except Exception:  # noqa: BLE001 - a repr that does not rebuild is simply not written
        return False


def describe(value: Any, module_name: str, alias: str) -> dict:
    """What a value is, for an assertion: source that rebuilds it, else its repr, else nothing."""
    found = writable(value, module_name, alias)
    if found is not None:
        return {"kind": "value", "source": found[0], "imports": found[1]}
    text = stable_repr(value)
    return {"kind": "repr", "source": repr(text)} if text is not None else {"kind": "opaque"}


def exception_source(exc: BaseException, module_name: str, alias: str) -> str | None:
    """How a test names an exception's class: a builtin by name, the module's through its alias."""
    kind = type(exc)
    if kind.__module__ == "builtins" and getattr(builtins, kind.__name__, None) is kind:
        return kind.__name__
    if kind.__module__ == module_name and "<" not in kind.__qualname__:
        return f"{alias}.{kind.__qualname__}"
    return None


def snake(name: str) -> str:
    """CamelCase -> camel_case, a name a variable or a test can carry."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip("_")).lower()
    text = re.sub(r"[\W_]+", "_", text).strip("_") or "value"
    return f"{text}_" if keyword.iskeyword(text) else text


# Special methods are written the way people use them: `a + b`, not `a.__add__(b)`.
BINARY = {
    "__add__": "+",
    "__sub__": "-",
    "__mul__": "*",
    "__truediv__": "/",
    "__floordiv__": "//",
    "__mod__": "%",
    "__eq__": "==",
    "__ne__": "!=",
    "__lt__": "<",
    "__le__": "<=",
    "__gt__": ">",
    "__ge__": ">=",
}
UNARY = {"__neg__": "-{}", "__abs__": "abs({})", "__str__": "str({})", "__len__": "len({})", "__bool__": "bool({})"}
OTHERS = {"__contains__": "{1} in {0}", "__getitem__": "{0}[{1}]"}
SPECIAL_METHODS = set(BINARY) | set(UNARY) | set(OTHERS)


def call_source(call: dict, receiver: str | None = None) -> str:
    """`func(args)`, or for a method `receiver.method(args)` (the instance's variable unless given)."""
    args = list(call["args"]) + [f"{k}={v}" for k, v in call["kwargs"].items()]
    method = call.get("method")
    if method is None:
        return f"{call['func']}({', '.join(args)})"
    obj = receiver or call["receiver"]
    if method in BINARY and len(args) == 1 and not call["kwargs"]:
        return f"({obj} {BINARY[method]} {args[0]})"
    if method in UNARY and not args:
        return UNARY[method].format(obj)
    if method in OTHERS and len(args) == 1 and not call["kwargs"]:
        return "(" + OTHERS[method].format(obj, args[0]) + ")"
    return f"{obj}.{method}({', '.join(args)})"


ATOMS = (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set)


def _assertion(expression: str, outcome: dict) -> list[str]:
    node = ast.parse(expression, mode="eval").body
    if isinstance(node, ast.Compare) and outcome.get("source") in ("True", "False"):
        # `a in b` that held: assert it as it reads, not as `(a in b) is True`.
        return [f"assert {expression}" if outcome["source"] == "True" else f"assert not ({expression})"]
    if not isinstance(node, ATOMS):
        expression = f"({expression})"  # `a is None is True` would chain the comparisons
    if outcome["kind"] == "value":
        source = outcome["source"]
        if source in ("None", "True", "False"):
            return [f"assert {expression} is {source}"]
        return [f"assert {expression} == {source}"]
    if outcome["kind"] == "repr":
        return [f"assert repr({expression}) == {outcome['source']}"]
    return []


def _search_body(case: dict) -> list[str] | None:
    """The statements of a searched case: build the instance if any, then the call, asserted."""
    lines: list[str] = []
    if case.get("instance"):
        lines.append(f"{case['instance']['name']} = {call_source(case['instance'])}")
    outcome, call = case["outcome"], call_source(case["call"])
    if outcome["kind"] == "raises":
        return lines + [f"with pytest.raises({outcome['exception']}):", f"    {call}"]
    if outcome["kind"] == "opaque":
        return None
    if case.get("attributes") and outcome["kind"] != "value":
        # An object of the module's: what its public attributes hold says more than its repr.
        lines.append(f"result = {call}")
        return lines + [f"assert result.{name} == {source}" for name, source in case["attributes"].items()]
    return lines + _assertion(call, outcome)


def _doctest_body(case: dict) -> list[str] | None:
    lines: list[str] = []
    asserted = False
    for step in case["steps"]:
        if step["kind"] == "statement":
            lines += step["source"].rstrip("\n").splitlines()
        elif step["kind"] == "raises":
            lines += [f"with pytest.raises({step['exception']}):"]
            lines += ["    " + line for line in step["source"].rstrip("\n").splitlines()]
            asserted = True
        else:
            asserted = asserted or step["outcome"]["kind"] != "opaque"
            lines += _assertion(step["source"], step["outcome"]) or [step["source"]]
    return lines if asserted else None


def case_test_name(case: dict) -> str:
    base = f"test_{snake(case['target'].replace('.', '_'))}"
    if case["origin"] == "doctest":
        return f"{base}_docstring_example"
    if case["origin"] == "readme":
        return "test_readme_example"
    outcome = case["outcome"]
    if outcome["kind"] == "raises":
        return f"{base}_raises_{snake(outcome['exception'].rsplit('.', 1)[-1])}"
    return base


def render(module_name: str, alias: str, cases: list[dict]) -> str:
    """The test file: one test per case, in the order given; cases that assert nothing are left out."""
    tests: list[str] = []
    used: dict[str, int] = {}
    for case in cases:
        body = _doctest_body(case) if case["origin"] in ("doctest", "readme") else _search_body(case)
        if not body:
            continue
        name = case_test_name(case)
        test = f"def {name}_{used.get(name, 0) + 1}():\n" + "\n".join(f"    {line}" for line in body) + "\n"
        if not compiles(test):
            continue  # one example the driver could not write must not cost the file
        used[name] = used.get(name, 0) + 1
        tests.append(test if used[name] > 1 else test.replace(f"def {name}_1(", f"def {name}(", 1))
    source = "\n\n".join(tests)
    header = _module_import(module_name, alias)
    if "pytest." in source:
        header = ["import pytest", "", *header]
    imports = sorted({line for case in cases for line in case.get("imports", [])})
    return "\n".join(header + imports) + "\n\n\n" + source


def compiles(source: str) -> bool:
    """Whether the test compiles: `from m import *` parses inside a function but does not compile."""
    try:
        compile(source, "<test>", "exec")
        return True
    except (SyntaxError, ValueError):
        return False


def _module_import(module_name: str, alias: str) -> list[str]:
    if "." not in module_name:
        return [f"import {module_name}" if alias == module_name else f"import {module_name} as {alias}"]
    package, _, last = module_name.rpartition(".")
    return [f"from {package} import {last}" if alias == last else f"from {package} import {last} as {alias}"]
