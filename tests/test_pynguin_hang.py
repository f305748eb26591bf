"""Finding where Pynguin hangs from faulthandler's stack dumps, and what to leave out then."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tasks.core.models import Module
from tasks.generators.pynguin_hang import (
    FINAL_DUMPS,
    STUCK_DUMPS,
    STUCK_WALL_S,
    HangWatch,
    dumps,
    find_hang,
    stuck,
    with_callers,
    with_stack_watch,
)
from tests.helpers import write_project

SOURCE = """
import re

PADDING = "a" * 40


def is_padded(code):
    return re.match(r"^(a+)+$", PADDING + code) is not None


def check_code(code):
    def inner():
        return is_padded(code)

    if not inner():
        raise ValueError(code)
    return code


def register(code):
    return check_code(code).upper()


def clamp(value, low, high):
    return max(low, min(value, high))


class Ledger:
    def add(self, code):
        while True:
            pass


try:
    import ujson
except ImportError:

    def loads(text):
        return text
"""


@pytest.fixture
def module(tmp_path) -> Module:
    write_project(tmp_path, {"codes.py": SOURCE})
    path = tmp_path / "codes.py"
    return Module(path="codes.py", dotted="codes", file=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _dump(module_file, *frames_of_threads, current=0):
    """A dump as faulthandler writes it, threads in the order given."""
    text = []
    for number, frames in enumerate(frames_of_threads):
        header = "Current thread" if number == current else "Thread"
        text.append(f"{header} 0x00007f00000{number}6c0 (most recent call first):")
        text += [f'  File "{file}", line {line} in {name}' for file, line, name in frames]
        text.append("")
    return "\n".join(text) + "\n"


def _stuck_in_regex(module_file):
    return [
        ("/usr/lib/python3.11/re/__init__.py", 166, "match"),
        (str(module_file), 7, "is_padded"),
        (str(module_file), 12, "inner"),
        (str(module_file), 14, "check_code"),
        ("<ast>", 1, "<module>"),
        ("/opt/pynguin/lib/python3.11/site-packages/pynguin/testcase/execution.py", 661, "execute_source"),
    ]


WAITING = [
    ("/usr/lib/python3.11/threading.py", 1132, "_wait_for_tstate_lock"),
    ("/opt/pynguin/lib/python3.11/site-packages/pynguin/testcase/execution.py", 533, "execute"),
]


def _searching(line):
    return [("/opt/pynguin/lib/python3.11/site-packages/pynguin/ga/algorithms/archive.py", line, "update")]


def test_dumps_are_split_where_a_thread_comes_again(module):
    text = _dump(module.file, _searching(100)) + _dump(module.file, _searching(124), WAITING)
    text += _dump(module.file, _searching(124), WAITING, current=1)
    found = dumps(text)
    assert len(found) == 3
    assert [len(dump) for dump in found] == [1, 2, 2]
    assert found[1] == found[2]  # "Current thread" is whichever thread took the signal: not a change


def test_the_same_dumps_with_the_module_on_a_stack_are_stuck_there(module):
    regex = _stuck_in_regex(module.file)
    text = _dump(module.file, _searching(100)) + _dump(module.file, WAITING, regex) * 4
    found = stuck(text, str(module.file))
    assert found is not None
    assert (found.frames, found.dumps, found.since) == (regex, 4, 1)


def test_a_last_dump_cut_short_by_the_kill_is_not_a_change(module):
    regex = _stuck_in_regex(module.file)
    whole = _dump(module.file, WAITING, regex)
    cut = whole[: whole.index("inner")]
    assert stuck(whole * 3 + cut, str(module.file)).dumps == 3


@pytest.mark.parametrize(
    "threads",
    [
        [[_searching(100)], [_searching(101)], [_searching(102)]],  # moving: no hang
        [[_searching(100), WAITING]] * 3,  # stuck, but not in the module
    ],
)
def test_no_hang_when_moving_or_not_in_the_module(module, threads):
    text = "".join(_dump(module.file, *dump) for dump in threads)
    assert stuck(text, str(module.file)) is None


def test_hang_names_the_modules_functions_on_the_stack_outermost_for_nested_ones(module, tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "stack-8.txt").write_text(_dump(module.file, _searching(100)))
    (stacks / "stack-21.txt").write_text(_dump(module.file, WAITING, _stuck_in_regex(module.file)) * STUCK_DUMPS)
    hang = find_hang(stacks, module)
    assert hang.pid == 21
    assert hang.functions == ["codes.is_padded", "codes.check_code"]
    assert hang.where == "line 7 of codes.py, in re/__init__.py:166 in match"
    assert find_hang(stacks, module, STUCK_DUMPS + 1) is None


@pytest.mark.parametrize(
    "line, name, functions",
    [(30, "add", ["codes.Ledger.add"]), (38, "loads", ["codes.loads"]), (3, "<module>", [])],
)
def test_methods_and_functions_under_compound_statements_are_named(module, tmp_path, line, name, functions):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    loop = [(str(module.file), line, name), ("<ast>", 1, "<module>")]
    (stacks / "stack-9.txt").write_text(_dump(module.file, loop) * FINAL_DUMPS)
    hang = find_hang(stacks, module, FINAL_DUMPS)
    assert (hang.functions, hang.where) == (functions, f"line {line} of codes.py")


def test_callers_in_the_module_are_left_out_too(module):
    assert with_callers(module, ["codes.is_padded"]) == ["codes.is_padded", "codes.check_code", "codes.register"]
    assert with_callers(module, ["codes.clamp"]) == ["codes.clamp"]


def test_watch_stops_a_run_stuck_long_in_cpu_or_in_wall_time(module, tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    watch = HangWatch(stacks, module, tmp_path / "stop", within=tmp_path)
    dump = _dump(module.file, WAITING, _stuck_in_regex(module.file))
    (stacks / "stack-21.txt").write_text(_dump(module.file, _searching(1)) + dump * FINAL_DUMPS)
    assert watch.look(now=100.0) is None
    assert watch.look(now=100.0 + STUCK_WALL_S - 1) is None
    assert watch.look(now=100.0 + STUCK_WALL_S).functions == ["codes.is_padded", "codes.check_code"]
    # Moving again, then stuck again somewhere new: the wall time counts from there.
    (stacks / "stack-21.txt").write_text(
        _dump(module.file, _searching(1)) + dump * 3 + _dump(module.file, _searching(2))
    )
    assert watch.look(now=200.0) is None
    with (stacks / "stack-21.txt").open("a") as more:
        more.write(dump * FINAL_DUMPS)
    assert watch.look(now=201.0) is None
    with (stacks / "stack-21.txt").open("a") as more:
        more.write(dump * (STUCK_DUMPS - FINAL_DUMPS))
    assert watch.look(now=202.0).pid == 21


def _watched_until_hang(watch: HangWatch) -> None:
    with watch:
        deadline = time.monotonic() + 10
        while watch.hang is None and time.monotonic() < deadline:
            time.sleep(0.1)


def test_a_watch_that_finds_a_hang_writes_the_stuck_pid_to_stop_whole(module, tmp_path):
    stacks = tmp_path / "watch" / "stacks"
    stacks.mkdir(parents=True)
    (stacks / "stack-21.txt").write_text(_dump(module.file, WAITING, _stuck_in_regex(module.file)) * STUCK_DUMPS)
    _watched_until_hang(HangWatch(stacks, module, tmp_path / "watch" / "stop", within=tmp_path))
    assert (tmp_path / "watch" / "stop").read_text() == "21\n"
    assert sorted(p.name for p in (tmp_path / "watch").iterdir()) == ["stacks", "stop"]


def test_a_watch_whose_folder_the_sandbox_swapped_for_a_link_writes_nothing_through_it(module, tmp_path):
    stacks, elsewhere = tmp_path / "watch" / "stacks", tmp_path / "elsewhere"
    stacks.mkdir(parents=True)
    elsewhere.mkdir()
    dump = _dump(module.file, WAITING, _stuck_in_regex(module.file))
    (stacks / "stack-21.txt").write_text(dump * STUCK_DUMPS)
    (tmp_path / "watch").rename(tmp_path / "moved")
    (tmp_path / "watch").symlink_to(elsewhere)
    watch = HangWatch(tmp_path / "moved" / "stacks", module, tmp_path / "watch" / "stop", within=tmp_path)
    _watched_until_hang(watch)
    assert watch.hang is not None and watch.hang.pid == 21
    assert list(elsewhere.iterdir()) == []


def test_stack_watch_dumps_a_forked_child_that_holds_the_gil_in_c_code(tmp_path):
    spin = tmp_path / "spin.py"
    spin.write_text('import os, re\nif os.fork() == 0:\n    re.match(r"^(a+)+$", "a" * 40 + "!")\nos.wait()\n')
    env = with_stack_watch(tmp_path / "watch", {"PATH": os.environ["PATH"]})
    process = subprocess.Popen([sys.executable, str(spin)], env=env, start_new_session=True)
    try:
        deadline, found = time.monotonic() + 60, None
        while found is None and time.monotonic() < deadline:
            time.sleep(0.5)
            texts = [path.read_text() for path in (tmp_path / "watch" / "stacks").glob("stack-*.txt")]
            found = next((f for f in (stuck(text, str(spin)) for text in texts) if f), None)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert found is not None
    (re_file, _, re_function), spin_frame = found.frames
    assert re_file.endswith("/re/__init__.py") and re_function == "match"
    assert spin_frame == (str(spin), 3, "<module>")
    assert len(list((tmp_path / "watch" / "stacks").glob("stack-*.txt"))) == 2  # the parent's and the child's
