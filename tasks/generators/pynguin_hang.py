"""Where a Pynguin run hangs, and the module's functions to leave out when it does.

Pynguin runs each generated test in a thread and gives up on it after at most 5 s, but a call
that never leaves C code (a regular expression that backtracks exponentially) keeps the GIL,
and Pynguin never gets it back. To see where, every Python process of the run dumps all its
threads' stacks (faulthandler) every half second of CPU time it burns: a timer signal, handled in
C, that needs no GIL and no Python thread, and is set again in a forked child (Pynguin's worker).
A process whose dumps stop changing, with the module under test on a stack, is stuck there.
"""

from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel

from tasks.core.log import get_logger
from tasks.core.models import Module
from tasks.sandbox.nofollow import read_file, write_new
from tasks.sandbox.runner import readable_file

DUMP_EVERY_CPU_S = 0.5
# A process is stuck when its dumps stop changing, with the module under test on a stack, for
# 6 s of CPU (beyond Pynguin's own 5 s limit) or, on a loaded host that gives it less CPU than
# that, for 15 s of wall time over at least 3 dumps. A run its budget ended without tests was
# stuck where its last 3 dumps agree.
STUCK_DUMPS = 12
STUCK_WALL_S = 15.0
FINAL_DUMPS = 3
WATCH_POLL_S = 1.0
# Loaded by every Python process of the run through PYTHONPATH (sitecustomize), before Pynguin.
STACK_WATCH = """
import faulthandler, os, signal

_files = []


def _watch():
    # A file per process; kept open: faulthandler writes to its descriptor from a signal handler.
    _files.append(open(os.path.join(os.environ["COVSWEEP_STACKS"], f"stack-{os.getpid()}.txt"), "w"))
    faulthandler.register(signal.SIGVTALRM, file=_files[-1], all_threads=True)
    every = float(os.environ["COVSWEEP_STACKS_EVERY"])
    signal.setitimer(signal.ITIMER_VIRTUAL, every, every)


if os.environ.get("COVSWEEP_STACKS"):
    _watch()
    os.register_at_fork(after_in_child=_watch)  # interval timers do not survive fork()
"""
THREAD = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-f]+) \(most recent call first\):$")
FRAME = re.compile(r'^  File "(?P<file>.*)", line (?P<line>\d+) in (?P<name>.+)$')

Frame = tuple[str, int, str]
Dump = tuple[tuple[str, tuple[Frame, ...]], ...]


class Hang(BaseModel):
    pid: int
    functions: list[str]
    where: str


def with_stack_watch(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` for a run whose Python processes dump their stacks into folder/stacks: the
    sitecustomize in folder/hooks, first on PYTHONPATH."""
    hooks, stacks = folder / "hooks", folder / "stacks"
    for made, mode in ((hooks, 0o755), (stacks, 0o777)):
        made.mkdir(parents=True, exist_ok=True)
        made.chmod(mode)
    readable_file(hooks / "sitecustomize.py", STACK_WATCH)
    path = ":".join(p for p in (str(hooks), env.get("PYTHONPATH", "")) if p)
    return env | {"PYTHONPATH": path, "COVSWEEP_STACKS": str(stacks), "COVSWEEP_STACKS_EVERY": str(DUMP_EVERY_CPU_S)}


def dumps(text: str) -> list[Dump]:
    """One process's dumps, oldest first. A dump lists each thread once, always in the same order
    (newest thread first): a thread seen again starts the next dump."""
    found: list[Dump] = []
    current: dict[str, list[Frame]] = {}
    frames: list[Frame] | None = None
    for line in text.splitlines():
        if thread := THREAD.match(line):
            if thread[1] in current:
                found.append(_frozen(current))
                current = {}
            frames = current.setdefault(thread[1], [])
        elif (frame := FRAME.match(line)) and frames is not None:
            frames.append((frame["file"], int(frame["line"]), frame["name"]))
    if current:
        found.append(_frozen(current))
    return found


def _frozen(threads: dict[str, list[Frame]]) -> Dump:
    return tuple((thread, tuple(frames)) for thread, frames in threads.items())


class Stuck(NamedTuple):
    frames: list[Frame]
    dumps: int
    since: int


def stuck(text: str, module_file: str) -> Stuck | None:
    """Where the process stopped moving: the stack, innermost first, of the thread in the module in
    its last dumps, when they are the same; how many agree, and the index of the first of them."""
    seen = dumps(text)
    if len(seen) > 1 and _cut_short(seen[-1], seen[-2]):
        seen.pop()  # the process was killed while it wrote its last dump
    alike = next((n for n in range(1, len(seen)) if seen[-1 - n] != seen[-1]), len(seen))
    if alike < 2:
        return None
    for _, frames in seen[-1]:
        if any(file == module_file for file, _, _ in frames):
            return Stuck(frames=list(frames), dumps=alike, since=len(seen) - alike)
    return None


def _cut_short(last: Dump, before: Dump) -> bool:
    """`last` is the beginning of `before`: the same threads and frames, up to where it stops."""
    if not last or len(last) > len(before) or last == before:
        return False
    *whole, (thread, frames) = last
    other_thread, other_frames = before[len(whole)]
    return (
        list(whole) == list(before[: len(whole)]) and thread == other_thread and other_frames[: len(frames)] == frames
    )


def find_hang(stacks: Path, module: Module, needed: int = STUCK_DUMPS) -> Hang | None:
    """A process of the run whose last `needed` dumps agree, with the module on a stack."""
    for path, found in _stuck_processes(stacks, module):
        if found.dumps >= needed:
            return _hang(path, found.frames, module)
    return None


def _stuck_processes(stacks: Path, module: Module):
    for path in sorted(stacks.glob("stack-*.txt")):
        try:  # read while the sandbox runs: a link it put there is not followed
            text = read_file(path).decode(errors="replace")
        except OSError:
            continue
        if found := stuck(text, str(module.file)):
            yield path, found


def _hang(path: Path, frames: list[Frame], module: Module) -> Hang:
    tree = ast.parse(module.file.read_text(errors="replace"))
    spans = list(definitions(tree.body))
    functions: list[str] = []
    lines = [line for file, line, _ in frames if file == str(module.file)]
    for line in lines:
        name = next((n for n, first, last in spans if first <= line <= last), "")
        if name and f"{module.dotted}.{name}" not in functions:
            functions.append(f"{module.dotted}.{name}")
    file, line, name = frames[0]
    inner = f"{Path(file).parent.name}/{Path(file).name}:{line} in {name}"
    where = f"line {lines[0]} of {module.path}" + ("" if file == str(module.file) else f", in {inner}")
    return Hang(pid=int(path.stem.removeprefix("stack-")), functions=functions, where=where)


def definitions(body: list[ast.stmt], prefix: str = ""):
    """(qualified name, first line, last line) of the functions and methods Pynguin can call: not
    the functions nested in them, whose frames their enclosing function stands for."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node.lineno, node.end_lineno or node.lineno
        elif isinstance(node, ast.ClassDef):
            yield from definitions(node.body, f"{prefix}{node.name}.")
        else:  # if / try / with at module level: definitions inside count too
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from definitions([child], prefix)
                elif isinstance(child, ast.excepthandler):
                    yield from definitions(child.body, prefix)


def with_callers(module: Module, functions: list[str]) -> list[str]:
    """`functions`, and the module's functions that call one of them, directly or through others:
    leaving out only the stuck function, Pynguin would hang again in a caller."""
    tree = ast.parse(module.file.read_text(errors="replace"))
    calls = {
        node.name: {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    prefix = f"{module.dotted}."
    wanted = {f.removeprefix(prefix) for f in functions}
    grown = True
    while grown:
        callers = {name for name, called in calls.items() if called & wanted} - wanted
        wanted |= callers
        grown = bool(callers)
    return [*functions, *sorted(prefix + name for name in wanted if prefix + name not in functions)]


class HangWatch:
    """Reads the stack dumps while the run goes on; a hang found writes the stuck pid to `stop`,
    which the sandbox's script kills (in the sandbox's own pid namespace)."""

    def __init__(self, stacks: Path, module: Module, stop: Path, within: Path):
        self.stacks, self.module, self.stop, self.within = stacks, module, stop, within
        self.hang: Hang | None = None
        self._first_seen: dict[tuple[str, int], float] = {}  # (file, index of a stuck run's first dump) -> when
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="covsweep-hang-watch", daemon=True)

    def __enter__(self) -> HangWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(WATCH_POLL_S):
            self.hang = self.look()
            if self.hang:
                self._write_stop(self.hang.pid)
                return

    def _write_stop(self, pid: int) -> None:
        """Whole or not at all (the script reads it as soon as it is there), and through no link the
        running sandbox put on the way: `within` is a folder it cannot replace."""
        try:
            write_new(self.within, str(self.stop.relative_to(self.within)), f"{pid}\n")
        except OSError as exc:
            get_logger("covsweep").warning(
                "%s: the hang watch could not write %s: %s", self.module.path, self.stop, exc
            )

    def look(self, now: float | None = None) -> Hang | None:
        """One look at the dumps, at monotonic time `now`: a hang, when one process's are stuck long enough."""
        now = time.monotonic() if now is None else now
        for path, found in _stuck_processes(self.stacks, self.module):
            since = self._first_seen.setdefault((path.name, found.since), now)
            if found.dumps >= STUCK_DUMPS or (found.dumps >= FINAL_DUMPS and now - since >= STUCK_WALL_S):
                return _hang(path, found.frames, self.module)
        return None
