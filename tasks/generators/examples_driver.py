"""The examples generator's driver: runs in the sandbox as `python examples_driver.py JOB.json`.

It imports the module, replays the examples of its docstrings and of the project's README, then
calls each public function and method with inputs Hypothesis draws from their type hints and from
the module's own constants (its strings, and strings that match its regular expressions), keeping
the calls that reach new lines or branches of the module. What each kept call returned or raised is
recorded and written as a plain pytest file (examples_emit): no Hypothesis in it.

A watchdog process runs the search in a child: a call stuck in C (a regular expression that
backtracks exponentially) cannot be interrupted from inside, so the child is killed, the target it
was in is skipped, and the search goes on in a new child from where it was.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import doctest
import enum
import importlib
import inspect
import io
import json
import multiprocessing
import os
import re
import signal
import sys
import time
import types
import typing
from pathlib import Path

if __package__:
    from . import examples_emit as emit
else:  # run as a script in the sandbox, examples_emit.py next to it
    import examples_emit as emit

REGEX_CALLS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}
REGEX_SIGNS = re.compile(r"\\[dswbDSWB]|[\^$]|\(\?|\[[^\]]+\]|[+*]\??\)?$")
PLATEAU_CALLS = 2000
NOT_THE_EXAMPLES = (NameError, SyntaxError)
EPOCH_CALLS = 100
MAX_NOTES = 2
MAX_CASES = 120
MAX_ATTRIBUTES = 6
PASSES = 3


class CallTimeout(BaseException):
    """A call ran past its time: raised from the alarm, past the target's own `except Exception`."""


# ---------------------------------------------------------------- what the module offers


class Pool:
    """The module's constants: where string-handling code finds the inputs that take its branches."""

    def __init__(self, source: str):
        self.strings: list[str] = []
        self.patterns: list[str] = []
        self.ints: list[int] = []
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and _is_regex_call(node) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    self.patterns.append(first.value)
            elif isinstance(node, ast.Constant):
                if isinstance(node.value, str) and len(node.value) <= 60 and "\n" not in node.value:
                    self.strings.append(node.value)
                elif type(node.value) is int and abs(node.value) < 10**9:
                    self.ints.append(node.value)
        # Rules kept in tables (pattern, replacement) are patterns too: strings that look like one.
        looks_like = {s for s in self.strings if REGEX_SIGNS.search(s) and _compiles(s)}
        self.patterns = sorted(set(self.patterns) | looks_like)
        self.strings = sorted(set(self.strings) - set(self.patterns))
        self.ints = sorted(set(self.ints) | {0, 1, -1})
        self.words = sorted({w for s in self.strings for w in re.findall(r"[A-Za-z]{2,}", s)})[:200]


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
        return True
    except (re.error, RecursionError, OverflowError):
        return False


def _is_regex_call(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in REGEX_CALLS
        and isinstance(func.value, ast.Name)
        and func.value.id in ("re", "regex")
    )


class Kinds:
    """The Hypothesis strategies a parameter may be drawn from, by name; built lazily because
    Hypothesis is imported in the search's child only."""

    def __init__(self, pool: Pool, module: types.ModuleType | None = None):
        from hypothesis import strategies as st

        self.st = st
        self.pool = pool
        # Printable ASCII where a pattern allows it: a reviewer reads these strings.
        printable = st.characters(min_codepoint=32, max_codepoint=126)
        matching = [m for p in pool.patterns if (m := _matching(st, p, printable)) is not None]
        fragments = st.sampled_from([""] + pool.words + pool.strings) if pool.words or pool.strings else st.just("")
        ascii_text = st.text(alphabet=printable, max_size=24)
        self.strings = {"ascii": ascii_text, "text": st.text(max_size=16)}
        if pool.strings:
            self.strings["constant"] = st.sampled_from(pool.strings)
            self.strings["joined"] = st.lists(fragments, min_size=1, max_size=4).map("".join)
        if matching:
            self.strings["regex"] = st.one_of(matching)
            self.strings["regex+"] = st.tuples(fragments, st.one_of(matching), fragments).map("".join)
        ints = st.one_of(st.sampled_from(pool.ints), st.integers(-20, 200))
        self.others = {
            "int": ints,
            "bool": st.booleans(),
            "none": st.none(),
            "float": st.floats(-1e6, 1e6, allow_nan=False),
            "list": st.lists(ascii_text, max_size=4),
            "dict": st.dictionaries(ascii_text, ascii_text | ints, max_size=3),
        } | (typed_kinds(st, module) if module else {})

    def for_parameter(self, hint: typing.Any, default: typing.Any) -> dict:
        """Name -> strategy for one parameter, from its hint, else its default's type, else all."""
        st = self.st
        wanted = hint if hint is not inspect.Parameter.empty else _type_of(default)
        if wanted is str:
            return dict(self.strings)
        if wanted is bool:
            return {"bool": st.booleans()}
        if wanted is int:
            return {"int": self.others["int"]}
        if wanted is float:
            return {"float": self.others["float"], "int": self.others["int"]}
        if wanted not in (None, typing.Any, object):
            try:
                strategy = st.from_type(wanted)
                strategy.validate()
                return {"hint": strategy} | ({"none": st.none()} if _optional(wanted) else {})
            except Exception:  # noqa: BLE001 - a hint Hypothesis cannot build falls back to guessing
                pass
        return dict(self.strings) | self.others


def typed_kinds(st, module: types.ModuleType) -> dict:
    """Values of the standard library's types the module itself imports: a module that imports
    datetime takes dates somewhere, one that imports Decimal takes decimals."""
    import datetime
    import decimal
    import fractions

    present = {id(v) for v in vars(module).values()}

    def uses(*objects) -> bool:
        return any(id(o) in present for o in objects)

    kinds = {}
    if uses(datetime, datetime.date, datetime.datetime, datetime.time, datetime.timedelta):
        kinds |= {"date": st.dates(), "datetime": st.datetimes(), "time": st.times(), "timedelta": st.timedeltas()}
    if uses(decimal, decimal.Decimal):
        kinds["decimal"] = st.decimals(allow_nan=False, allow_infinity=False, places=3)
    if uses(fractions, fractions.Fraction):
        kinds["fraction"] = st.fractions(max_denominator=100)
    return kinds


def _matching(st, pattern: str, alphabet):
    """Strings matching `pattern`, from `alphabet` where they can be; None when Hypothesis cannot."""
    for chars in (alphabet, None):
        try:
            strategy = st.from_regex(pattern, fullmatch=True, alphabet=chars)
            strategy.validate()
            return strategy
        except Exception:  # noqa: BLE001 - Hypothesis does not take every pattern
            continue
    return None


def _type_of(default: typing.Any) -> type | None:
    if default is inspect.Parameter.empty or default is None:
        return None
    return type(default) if type(default) in (str, bool, int, float) else None


def _optional(hint: typing.Any) -> bool:
    return type(None) in typing.get_args(hint)


# ---------------------------------------------------------------- the calls to search


class Target:
    """One callable to search: a function, a class's constructor, or a method on an instance."""

    def __init__(self, name: str, func, params: list, owner: Target | None = None, bound: bool = False):
        self.name, self.func, self.params, self.owner, self.bound = name, func, params, owner, bound


def parameters(func) -> list[tuple[inspect.Parameter, typing.Any]] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable hints: search untyped
        hints = {}
    usable = []
    for param in signature.parameters.values():
        if param.name in ("self", "cls") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        usable.append((param, hints.get(param.name, param.annotation)))
    return usable


def targets_of(module, only: list[str] | None) -> list[Target]:
    found: list[Target] = []
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value) and (params := parameters(value)) is not None:
            found.append(Target(name, value, params))
        elif inspect.isclass(value) and not issubclass(value, (BaseException, enum.Enum)):
            found += _class_targets(name, value)
    return [t for t in found if not only or t.name in only or t.name.split(".")[0] in only]


def _class_targets(name: str, cls: type) -> list[Target]:
    if inspect.isabstract(cls) or (params := parameters(cls)) is None:
        return []
    constructor = Target(name, cls, params)
    found = [constructor]
    for attr, raw in vars(cls).items():
        if attr.startswith("_") and attr not in emit.SPECIAL_METHODS:
            continue
        func = getattr(cls, attr, None)
        if isinstance(raw, (staticmethod, classmethod)) and (params := parameters(func)) is not None:
            found.append(Target(f"{name}.{attr}", func, params))
        elif inspect.isfunction(raw) and (params := parameters(raw)) is not None:
            found.append(Target(f"{name}.{attr}", raw, params, owner=constructor, bound=True))
    return found


# ---------------------------------------------------------------- running one call, traced


class ArcTracer:
    """The (line, line) arcs run in one file, as coverage.py names them (negative: entry and exit)."""

    def __init__(self, filename: str):
        self.filename = filename
        self.current: set[tuple[int, int]] = set()

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename != self.filename:
            return None
        last = [-frame.f_code.co_firstlineno]
        arcs = self.current

        def local(frame, event, arg):
            if event == "line":
                arcs.add((last[0], frame.f_lineno))
                last[0] = frame.f_lineno
            elif event == "return":
                arcs.add((last[0], -frame.f_code.co_firstlineno))
            return local

        return local

    @contextlib.contextmanager
    def tracing(self):
        self.current = set()
        sys.settrace(self._global)
        try:
            yield self.current
        finally:
            sys.settrace(None)


def _alarm(signum, frame):
    raise CallTimeout()


class Outcome(typing.NamedTuple):
    value: typing.Any = None
    error: BaseException | None = None


class Runner:
    """Evaluates call sources in the module's namespace: what runs is exactly what the test will write."""

    def __init__(self, module, alias: str, call_timeout: float, started):
        self.module, self.alias = module, alias
        self.call_timeout, self.started = call_timeout, started
        self.names = {alias: module}

    def namespace(self, imports: list[str]) -> dict:
        """The module under its alias, with the imports the arguments' sources need."""
        names = dict(self.names)
        for line in imports:
            exec(line, names)  # noqa: S102 - import lines emit.writable made
        return names

    def run(self, source: str, namespace: dict | None = None, mode: str = "eval") -> Outcome | None:
        """None: the call did not finish (a timeout, an exit): nothing to record."""
        scope = namespace if namespace is not None else dict(self.names)
        self.started.value = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.call_timeout)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = compile(source, "<example>", mode)
                return Outcome(value=eval(code, scope) if mode == "eval" else exec(code, scope))  # noqa: S307
        except CallTimeout:
            return None
        except Exception as exc:  # noqa: BLE001 - what the call raised is its outcome
            return Outcome(error=exc)
        except BaseException:  # noqa: BLE001 - sys.exit and the like: not a test to write
            return None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.started.value = 0.0


# ---------------------------------------------------------------- the search


class Recorder:
    def __init__(self, job: dict, module, started, sink, alias: str | None = None):
        self.job, self.module, self.sink = job, module, sink
        self.alias = alias or job["alias"]
        self.tracer = ArcTracer(os.path.realpath(module.__file__))
        self.runner = Runner(module, self.alias, job.get("call_timeout_s", 2.0), started)
        self.arcs: set[tuple[int, int]] = set()
        self.cases = 0

    def write(self, record: dict) -> None:
        self.sink.write(json.dumps(record) + "\n")
        self.sink.flush()

    def keep(self, case: dict, arcs: set) -> None:
        self.arcs |= arcs
        self.cases += 1
        self.write({"case": case, "arcs": sorted(arcs)})

    def traced(self, source: str, namespace: dict | None = None, mode: str = "eval"):
        with self.tracer.tracing() as arcs:
            outcome = self.runner.run(source, namespace, mode)
        return outcome, set(arcs) - self.arcs


def instance_name(class_name: str, alias: str) -> str:
    """A variable named after its class, never the module's own name."""
    name = emit.snake(class_name)
    return name if name != alias else f"{name}_instance"


def _kwargs_or_args(params, drawn: dict) -> dict:
    args, kwargs = [], {}
    for param, _ in params:
        if param.name not in drawn:
            continue
        if param.default is inspect.Parameter.empty and param.kind != param.KEYWORD_ONLY and not kwargs:
            args.append(drawn[param.name])
        else:
            kwargs[param.name] = drawn[param.name]
    return {"args": args, "kwargs": kwargs}


class Search:
    """Hypothesis draws each parameter from the kinds that still make the call run; a kind whose
    calls keep failing with a TypeError or an AttributeError (the wrong type) is dropped."""

    def __init__(self, recorder: Recorder, kinds: Kinds, seed: int):
        self.recorder, self.kinds, self.seed = recorder, kinds, seed
        self.stats: dict[tuple[str, str, str], list[int]] = {}

    def _alive(self, target: str, param: str, options: dict) -> list[str]:
        alive = [name for name in options if (s := self.stats.get((target, param, name), [0, 0]))[0] > 0 or s[1] < 6]
        return alive or list(options)

    def _draw(self, data, target: Target, strategies: dict) -> tuple[dict, list, list] | None:
        """Sources of the drawn arguments by parameter name, the kinds used and the imports the
        sources need; None when a value has no source that rebuilds it."""
        drawn, used, imports = {}, [], []
        for param, _ in target.params:
            options = strategies[param.name]
            if param.default is not inspect.Parameter.empty and data.draw(self.kinds.st.integers(0, 3)) == 0:
                continue
            kind = data.draw(self.kinds.st.sampled_from(sorted(options)))
            try:
                value = data.draw(options[kind])
            except Exception as exc:
                if type(exc).__module__.startswith("hypothesis"):
                    raise  # Hypothesis's own control flow
                # Building the value ran the target's code (from_type on one of its classes) and failed.
                self._learn(used + [(target.name, param.name, kind)], None)
                return None
            found = emit.writable(value, self.recorder.module.__name__, self.recorder.alias)
            if found is None:
                return None
            drawn[param.name], used = found[0], used + [(target.name, param.name, kind)]
            imports += found[1]
        return drawn, used, imports

    def _learn(self, used: list, outcome) -> None:
        wrong = outcome is None or isinstance(outcome.error, (TypeError, AttributeError))
        for key in used:
            self.stats.setdefault(key, [0, 0])[1 if wrong else 0] += 1

    def _narrowed(self, target: Target, strategies: dict) -> dict:
        return {
            param: {kind: options[kind] for kind in self._alive(target.name, param, options)}
            for param, options in strategies.items()
        }

    def explore(self, target: Target, until: float) -> bool:
        """Search one target until `until` or a plateau; True when its time, not a plateau, ended it.

        In epochs: Hypothesis wants the same draws from the same data within one run, so the kinds
        are narrowed between runs, never during one."""
        strategies = {p.name: self.kinds.for_parameter(hint, p.default) for p, hint in target.params}
        owner = {p.name: self.kinds.for_parameter(h, p.default) for p, h in target.owner.params} if target.owner else {}
        state = {"stale": 0, "calls": 0, "until": until}
        notes = 0
        for epoch in range(10**6):
            before = state["calls"]
            mine, theirs = self._narrowed(target, strategies), self._narrowed(target.owner or target, owner)
            try:
                self._epoch(target, mine, theirs, state, self.seed * 10_000 + epoch)
            except Exception as exc:  # noqa: BLE001 - an epoch's end, told apart in the notes
                # Hypothesis calls a run that stops drawing at the plateau flaky: that is the plateau.
                if not type(exc).__name__.startswith("Flaky") and notes < MAX_NOTES:
                    notes += 1
                    self.recorder.write({"note": f"{target.name}: {type(exc).__name__}: {exc}"[:300]})
            if self._over(state) or state["calls"] == before:
                break
        return time.monotonic() > until

    def _over(self, state: dict) -> bool:
        return time.monotonic() > state["until"] or state["stale"] > PLATEAU_CALLS or self.recorder.cases >= MAX_CASES

    def _epoch(self, target: Target, mine: dict, theirs: dict, state: dict, epoch_seed: int) -> None:
        from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

        @settings(
            max_examples=EPOCH_CALLS,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @seed(epoch_seed)
        @given(self.kinds.st.data())
        def search(data):
            if self._over(state):
                return  # draws nothing: Hypothesis soon runs out of new examples
            state["stale"] += 1
            state["calls"] += 1
            if self.try_call(data, target, mine, theirs):
                state["stale"] = 0

        search()

    def try_call(self, data, target: Target, strategies: dict, owner_strategies: dict) -> bool:
        recorder, alias = self.recorder, self.recorder.alias
        instance, used_owner, imports = None, [], []
        if target.owner:
            if (owner := self._draw(data, target.owner, owner_strategies)) is None:
                return False
            drawn, used_owner, imports = owner
            instance = {"name": instance_name(target.owner.name, alias), "func": f"{alias}.{target.owner.name}"}
            instance |= _kwargs_or_args(target.owner.params, drawn)
        if (own := self._draw(data, target, strategies)) is None:
            return False
        drawn, used, more = own
        imports = sorted(set(imports + more))
        if instance:
            call = {"receiver": instance["name"], "method": target.name.split(".")[-1]}
        else:
            call = {"func": f"{alias}.{target.name}"}
        call |= _kwargs_or_args(target.params, drawn)
        source = emit.call_source(call, f"({emit.call_source(instance)})" if instance else None)
        namespace = recorder.runner.namespace(imports)
        outcome, new = recorder.traced(source, namespace)
        self._learn(used + used_owner, outcome)
        if outcome is None or not new:
            return False
        case = self._case(target, call, instance, outcome, source, namespace)
        if case is None:
            return False
        case["imports"] = sorted(set(imports + case["outcome"].pop("imports", [])))
        recorder.keep(case, new)
        return True

    def _case(self, target: Target, call: dict, instance, outcome: Outcome, source: str, namespace: dict):
        """The case to write, when a second run gives the same outcome (no test of a clock or a counter)."""
        again = self.recorder.runner.run(source, dict(namespace))
        if again is None:
            return None
        first, second = self._describe(outcome), self._describe(again)
        if first is None or first != second:
            return None
        case = {"origin": "search", "target": target.name, "call": call, "instance": instance} | first
        if instance is None or outcome.error is None:
            return case
        return None if isinstance(outcome.error, (TypeError, AttributeError)) else case

    def _describe(self, outcome: Outcome) -> dict | None:
        module, alias = self.recorder.module, self.recorder.alias
        if outcome.error is not None:
            name = emit.exception_source(outcome.error, module.__name__, alias)
            return {"outcome": {"kind": "raises", "exception": name}} if name else None
        described = {"outcome": emit.describe(outcome.value, module.__name__, alias)}
        if type(outcome.value).__module__ == module.__name__ and hasattr(outcome.value, "__dict__"):
            attributes = {
                k: text
                for k, v in vars(outcome.value).items()
                if not k.startswith("_") and (text := emit.literal(v)) is not None
            }
            if attributes:
                described["attributes"] = dict(list(attributes.items())[:MAX_ATTRIBUTES])
        if described["outcome"]["kind"] == "opaque" and "attributes" not in described:
            return None
        return described


# ---------------------------------------------------------------- docstrings and README


def _bound_names(source: str) -> set[str]:
    bound = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return bound


def _imports_for(sources: list[str], module) -> list[str]:
    """What a docstring's examples use from the module's namespace, imported the way a test would."""
    bound = set().union(*(_bound_names(s) for s in sources)) if sources else set()
    loaded = {n.id for s in sources for n in ast.walk(ast.parse(s)) if isinstance(n, ast.Name)}
    imports = []
    for name in sorted(loaded - bound):
        if name not in vars(module) or hasattr(builtins, name):
            continue
        value = vars(module)[name]
        if isinstance(value, types.ModuleType):
            imports.append(f"import {value.__name__}" + ("" if value.__name__ == name else f" as {name}"))
        else:
            imports.append(f"from {module.__name__} import {name}")
    return imports


def explicit_imports(source: str, used: set[str]) -> str:
    """`from m import *` -> `from m import a, b`: the names the examples use; a star import does
    not compile inside a test function."""
    tree = ast.parse(source)
    stars = [n for n in tree.body if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)]
    if not stars:
        return source
    for node in stars:
        exported = vars(importlib.import_module(node.module or ""))
        public = exported.get("__all__") or [n for n in exported if not n.startswith("_")]
        names = sorted(used & set(public))
        if not names:
            return source  # nothing used from it: the step fails to compile and is left out
        node.names = [ast.alias(name) for name in names]
    return ast.unparse(tree)


def _example_step(recorder: Recorder, example, namespace: dict, used: set[str]) -> tuple[dict | None, set]:
    source = explicit_imports(example.source.strip(), used)
    tree = ast.parse(source)
    module = recorder.module
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        # Unparsed: a trailing comment in the example must not swallow the assertion around it.
        expression = ast.unparse(tree.body[0].value)
        call = tree.body[0].value
        printed = isinstance(call, ast.Call) and getattr(call.func, "id", "") == "print" and len(call.args) == 1
        if printed and not call.keywords:
            expression = f"str({ast.unparse(call.args[0])})"
        outcome, new = recorder.traced(expression, namespace)
        if outcome is None:
            return None, new
        if isinstance(outcome.error, NOT_THE_EXAMPLES):
            return None, new  # `_` of an interactive session, a name defined elsewhere: not what it shows
        if outcome.error is not None:
            name = emit.exception_source(outcome.error, module.__name__, recorder.alias)
            return ({"kind": "raises", "exception": name, "source": source} if name else None), new
        return {
            "kind": "value",
            "source": expression,
            "outcome": emit.describe(outcome.value, module.__name__, recorder.alias),
        }, new
    outcome, new = recorder.traced(source, namespace, mode="exec")
    if outcome is None or outcome.error is not None:
        return None, new
    return {"kind": "statement", "source": source}, new


def replay_examples(recorder: Recorder, name: str, examples: list, namespace: dict, origin: str) -> None:
    """One docstring's (or README's) examples, in order, as one case, less the ones that fail."""
    steps, arcs = [], set()
    used = {
        n.id
        for e in examples
        if emit.compiles(e.source)
        for n in ast.walk(ast.parse(e.source))
        if isinstance(n, ast.Name)
    }
    for example in examples:
        try:
            step, new = _example_step(recorder, example, namespace, used)
        except SyntaxError:
            continue
        arcs |= new
        if step is None:
            continue  # what fails is left out; what needs it fails too and is left out with it
        steps.append(step)
    if steps and arcs:
        imports = _imports_for([s["source"] for s in steps], recorder.module) if origin == "doctest" else []
        imports = sorted(set(imports).union(*(s.get("outcome", {}).get("imports", []) for s in steps)))
        recorder.keep({"origin": origin, "target": name, "steps": steps, "imports": imports}, arcs)


def example_groups(module, readmes: list[str]) -> list[tuple[str, list, dict, str]]:
    """(name, examples, namespace, origin) of each docstring with examples, then of each README."""
    groups = []
    for test in sorted(doctest.DocTestFinder(exclude_empty=True).find(module), key=lambda t: t.lineno or 0):
        short = test.name.removeprefix(module.__name__).lstrip(".") or "module"
        groups.append((short, test.examples, dict(vars(module)), "doctest"))
    for readme in readmes:
        with contextlib.suppress(OSError, ValueError):
            examples = doctest.DocTestParser().get_examples(Path(readme).read_text(errors="replace"))
            if examples:
                groups.append((f"readme:{Path(readme).name}", examples, {"__name__": "__readme__"}, "readme"))
    return groups


def module_alias(default: str, module, groups: list) -> str:
    """The name tests call the module by: its own, unless its docstrings' examples use a name of the
    module's that is the same (parse.parse), which the test file imports by that name."""
    taken: set[str] = set()
    for _, examples, _, origin in groups:
        for example in examples if origin == "doctest" else []:
            with contextlib.suppress(SyntaxError):
                taken |= {n.id for n in ast.walk(ast.parse(example.source)) if isinstance(n, ast.Name)}
    return default if default not in taken or default not in vars(module) else f"{default}_module"


def replay_docstrings(recorder: Recorder, groups: list, finished: set[str]) -> None:
    """Each group once: one whose call hung (the watchdog marked it done) is not replayed again."""
    for name, examples, namespace, origin in groups:
        key = f"example:{name}"
        if key in finished:
            continue
        recorder.write({"start": key})
        replay_examples(recorder, name, examples, namespace, origin)
        recorder.write({"done": key})


# ---------------------------------------------------------------- the child and its watchdog


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def work(job: dict, started, deadline: float) -> None:
    """The child: the search, resumed after what an earlier child recorded."""
    site = job.get("offline_site")
    if site and site not in sys.path:
        sys.path.append(site)
    signal.signal(signal.SIGALRM, _alarm)
    records = _records(Path(job["cases"]))
    finished = {r["done"] for r in records if "done" in r}
    module = importlib.import_module(job["module"])
    groups = example_groups(module, job.get("readmes", []))
    alias = module_alias(job["alias"], module, groups)
    with open(job["cases"], "a") as sink:
        recorder = Recorder(job, module, started, sink, alias)
        recorder.write({"alias": alias})
        recorder.arcs = {tuple(a) for r in records if "arcs" in r for a in r["arcs"]}
        recorder.cases = sum("case" in r for r in records)
        replay_docstrings(recorder, groups, finished)
        try:
            kinds = Kinds(Pool(Path(module.__file__).read_text(errors="replace")), module)
        except ImportError:
            recorder.write({"note": "Hypothesis is not installed: docstring examples only"})
            return
        search_targets(recorder, Search(recorder, kinds, job.get("seed", 0)), module, finished, deadline)


def search_targets(recorder: Recorder, search: Search, module, finished: set, deadline: float) -> None:
    pending = [t for t in targets_of(module, recorder.job.get("targets")) if t.name not in finished]
    for _ in range(PASSES):
        unfinished = []
        for index, target in enumerate(pending):
            share = (deadline - time.monotonic()) / (len(pending) - index)
            if share <= 0.05 or recorder.cases >= MAX_CASES:
                return
            recorder.write({"start": target.name})
            if search.explore(target, time.monotonic() + share):
                unfinished.append(target)
            recorder.write({"done": target.name})
        pending = unfinished
        if not pending:
            return


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user + system), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(child, started, deadline: float, hang_s: float) -> bool:
    """Wait for the child; True when it was killed in a call that would not return: one that burnt
    `hang_s` of CPU past its own alarm (a loop in C keeps the GIL), or 4 x that in wall time. CPU time,
    not wall time, on a loaded host: there a call can wait for a core longer than it runs."""
    call, cpu_at_call = 0.0, 0.0
    while child.is_alive():
        child.join(0.2)
        now = time.monotonic()
        if started.value != call:
            call, cpu_at_call = started.value, cpu_seconds(child.pid)
        burnt = cpu_seconds(child.pid) - cpu_at_call
        if call and now - call > hang_s and (burnt > hang_s or now - call > 4 * hang_s):
            child.kill()
            child.join()
            return True
        if now > deadline + hang_s:
            child.kill()
            child.join()
    return False


def supervise(job: dict) -> dict:
    context = multiprocessing.get_context("fork")
    started = context.Value("d", 0.0, lock=False)
    deadline = time.monotonic() + job["budget_s"]
    cases_file = Path(job["cases"])
    hung: list[str] = []
    while time.monotonic() < deadline:
        child = context.Process(target=work, args=(job, started, deadline))
        child.start()
        if not watch(child, started, deadline, job.get("hang_s", 5.0)):
            break
        last = [r["start"] for r in _records(cases_file) if "start" in r]
        target = last[-1] if last else "import"
        hung.append(target)
        with open(cases_file, "a") as sink:
            sink.write("\n" + json.dumps({"done": target, "hung": True}) + "\n")
        started.value = 0.0
    records = _records(cases_file)
    cases = [r["case"] for r in records if "case" in r]
    alias = next((r["alias"] for r in records if "alias" in r), job["alias"])
    Path(job["out"]).write_text(emit.render(job["module"], alias, cases) if cases else "")
    summary = {"cases": len(cases), "hung": hung, "notes": [r["note"] for r in records if "note" in r]}
    Path(job["summary"]).write_text(json.dumps(summary))
    return summary


if __name__ == "__main__":
    print(json.dumps(supervise(json.loads(Path(sys.argv[1]).read_text()))))
