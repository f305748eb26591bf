"""The mutation run inside the sandbox: mutmut 3 over a writable copy of one module, its given tests only.

`python driver.py JOB` reads the job (JSON) and writes RESULT next to it: every chosen mutant with its
line, original and mutated code and mutmut's verdict. The sandbox has no covsweep and the host has no
mutmut: this file imports the standard library at the top and the engine where it is used, so the host
can test its pure parts (the sampling).

mutmut is driven through its own configuration (`[tool.mutmut]` in the copy's pyproject.toml) and
command line (`mutmut run NAMES`); covsweep adds two operators mutmut lacks (return value to None, a
call statement removed), listed after mutmut's own in each function so that mutmut's mutant names
stay what a plain `mutmut run` gives.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from collections import defaultdict
from configparser import ConfigParser
from pathlib import Path

RESULT = "result.json"
DETECTED = ("killed", "timeout")  # covsweep's verdicts that count as a kill
WORK = "work"  # the writable copy, below the workspace
SOURCE_ROOT = "src"  # mutmut puts mutants/src first on sys.path
CANDIDATES = "covsweep_candidates"  # test files from outside the target
ENGINE_LOG = "engine.log"
# Per mutant: 3 x the covering tests' own time on the unmutated module + 1 s. mutmut's wall limit is
# (tests' time + constant) x multiplier: (multiplier, constant).
FIRST_LIMIT = (3.0, 1.0 / 3.0)
# A timeout counts as a kill, and on a loaded host a run that would pass can outlast the first limit:
# the tests' own time, measured once, leaves out pytest's start in each mutant's process and how busy
# the host is now. So a timeout is tried once more before it counts, at 10 x the tests' time plus the
# larger of a floor and 10 x the slowest mutant run that just finished (a measure of both).
CONFIRM_MULTIPLIER = 10.0
CONFIRM_FLOOR_S = 5.0
CONFIRM_SLOWDOWN = 10.0
RESULT_MARGIN_S = 5.0  # of the budget, kept for stopping the engine and writing the result
STOP_GRACE_S = 3.0
# mutmut's statuses (mutmut.stats.status_by_exit_code) that are not a kill: the tests passed, or
# no test reached the mutated function.
SURVIVED = {"survived", "no tests", "skipped"}
# What mutmut prints when the tests never reach the module's functions, or cannot be made to fail
# by any of them: then every mutant survives.
UNREACHED = ("could not find any test case", "Unable to force test failures")
# pytest's configuration files in the order it looks for them, and the section each must have.
PYTEST_CONFIGS = (
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", "tool.pytest.ini_options"),
    ("tox.ini", "pytest"),
    ("setup.cfg", "tool:pytest"),
)
IGNORED_FILES = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", "mutants")


# ---- pure helpers (tested on the host) ----------------------------------------------------------


def even_sample(lines: list[int], limit: int) -> list[int]:
    """Indexes of at most `limit` items, spread evenly over their lines: one per line in turn (the
    first mutant of every line, then the second ...); in the round that has more lines than room
    left, lines at even steps. Deterministic; the indexes come back in their original order."""
    if len(lines) <= limit:
        return list(range(len(lines)))
    by_line: dict[int, list[int]] = defaultdict(list)
    for index, line in enumerate(lines):
        by_line[line].append(index)
    ordered = [by_line[line] for line in sorted(by_line)]
    chosen: list[int] = []
    for turn in range(max(len(group) for group in ordered)):
        candidates = [group[turn] for group in ordered if len(group) > turn]
        room = limit - len(chosen)
        if len(candidates) > room:
            chosen += [candidates[step * len(candidates) // room] for step in range(room)]
            break
        chosen += candidates
    return sorted(chosen)


def verdict(status: str | None) -> str | None:
    """covsweep's verdict for a mutmut status: killed, survived, timeout, or None (never run)."""
    if status is None or status == "not checked":
        return None
    if status == "timeout":
        return "timeout"
    return "survived" if status in SURVIVED else "killed"


def pytest_config(target: Path) -> Path | None:
    """The file pytest would take its configuration from when run in `target`."""
    for name, section in PYTEST_CONFIGS:
        path = target / name
        if not path.is_file():
            continue
        if section is None:
            return path
        if path.suffix == ".toml":
            table = tomllib.loads(path.read_text())
            for key in section.split("."):
                table = table.get(key, {}) if isinstance(table, dict) else {}
            if table:
                return path
            continue
        parser = ConfigParser(interpolation=None)
        parser.read(path)
        if parser.has_section(section):
            return path
    return None


def toml_list(values: list[str]) -> str:
    """A TOML array of strings: JSON's string escapes are TOML's too."""
    return json.dumps([str(v) for v in values])


# ---- the writable copy --------------------------------------------------------------------------


def _copy(source: Path, destination: Path) -> None:
    if destination.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, ignore=IGNORED_FILES)
    else:
        shutil.copy2(source, destination)


def _copy_tests(job: dict, work: Path) -> tuple[list[str], list[str]]:
    """Each test file where pytest finds it relative to the copy's root: a folder of the target is
    copied whole (conftest.py, helpers, data), a file from elsewhere goes to CANDIDATES.
    Returns the top-level entries copied and the test files' paths relative to the copy."""
    target = Path(job["target"])
    entries: set[str] = set()
    tests: list[str] = []
    for name in job["tests"]:
        path = Path(name)
        if path.is_relative_to(target):
            relative = path.relative_to(target)
            _copy(target / relative.parts[0], work / relative.parts[0])
            _copy(path, work / relative)  # its folder may be src/, already there for the package
            entries.add(relative.parts[0])
        else:
            relative = Path(CANDIDATES) / path.name
            _copy(path, work / relative)
            entries.add(CANDIDATES)
        tests.append(str(relative))
    if (target / "conftest.py").is_file():
        _copy(target / "conftest.py", work / "conftest.py")
        entries.add("conftest.py")
    return sorted(entries), tests


def _pytest_args(job: dict, work: Path, also_copy: list[str]) -> list[str]:
    """pytest options as covsweep's other runs give them, with the target's own configuration file."""
    args = ["-p", "no:cacheprovider", "-o", "addopts="]
    config = pytest_config(Path(job["target"]))
    if config is not None:
        name = f"covsweep-pytest{config.suffix}"
        shutil.copy2(config, work / name)
        also_copy.append(name)
        # Copied into mutants/, where the tests run: its relative paths (pythonpath) resolve there.
        args += ["-c", str(work / "mutants" / name)]
    return args


def lay_out(job: dict, workspace: Path) -> Path:
    """The copy mutmut works in: the module's top-level package under src/, the tests, and a
    pyproject.toml with mutmut's configuration. The target itself is never written."""
    work = workspace / WORK
    work.mkdir()
    module_path = Path(job["module_path"])
    top = module_path.parts[0]
    _copy(Path(job["import_root"]) / top, work / SOURCE_ROOT / top)
    also_copy, tests = _copy_tests(job, work)
    pytest_args = _pytest_args(job, work, also_copy)
    # Test ids as the runs in the module's rounds name them (Class.test); pytest's are Class::test.
    selection = [f"{tests[0]}::{name.replace('.', '::')}" for name in job.get("only", [])] or tests
    (work / "pyproject.toml").write_text(
        "\n".join(
            [
                "[tool.mutmut]",
                f"source_paths = {toml_list([f'{SOURCE_ROOT}/{top}'])}",
                f"only_mutate = {toml_list([f'{SOURCE_ROOT}/{module_path.as_posix()}'])}",
                f"also_copy = {toml_list(also_copy)}",
                f"pytest_add_cli_args = {toml_list(pytest_args)}",
                f"pytest_add_cli_args_test_selection = {toml_list(selection)}",
                "use_setproctitle = false",
                "track_dependencies = false",
                "use_git_change_detection = false",
                *timeout_settings(FIRST_LIMIT),
                "",
            ]
        )
    )
    return work


def timeout_settings(limit: tuple[float, float]) -> list[str]:
    multiplier, constant = limit
    return [f"timeout_multiplier = {multiplier!r}", f"timeout_constant = {constant!r}"]


def confirm_limit(finished_s: list[float]) -> tuple[float, float]:
    """The limit a timeout is tried again at, from how long the mutant runs that finished (killed or
    survived) took in the first pass; none finished: the host is at least as slow as the first limit."""
    measured = max(finished_s, default=FIRST_LIMIT[0] * FIRST_LIMIT[1])
    return CONFIRM_MULTIPLIER, max(CONFIRM_FLOOR_S, CONFIRM_SLOWDOWN * measured) / CONFIRM_MULTIPLIER


def set_limit(work: Path, limit: tuple[float, float]) -> None:
    """The per-mutant limit of the next `mutmut run` (the last keys of its only table)."""
    config = work / "pyproject.toml"
    kept = [line for line in config.read_text().splitlines() if not line.startswith("timeout_")]
    config.write_text("\n".join([*kept, *timeout_settings(limit), ""]))


# ---- mutmut, with covsweep's two operators ------------------------------------------------------


def _return_none(node):
    """`return value` -> `return None`: does a test look at what the function returns?"""
    import libcst as cst

    if node.value is not None and not (isinstance(node.value, cst.Name) and node.value.value == "None"):
        yield node.with_changes(value=cst.Name("None"))


def _call_removed(node):
    """A call made for its effect is not made: `items.append(x)` -> `None`."""
    import libcst as cst

    if isinstance(node.value, cst.Call):
        yield node.with_changes(value=cst.Name("None"))


def add_operators() -> None:
    """mutmut's mutants, then covsweep's in each function: mutmut names a function's mutants by their
    order, so its own keep the names a plain `mutmut run` gives them."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper
    from mutmut.mutation import file_mutation

    native = file_mutation.create_mutations
    operators = [(cst.Return, _return_none), (cst.Expr, _call_removed)]

    def create_mutations(filename, code, covered_lines=None, coverage_excluded_lines=None):
        module, mutations, ignored_classes, ignored_functions = native(
            filename, code, covered_lines, coverage_excluded_lines
        )
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        ignored = file_mutation.get_ignored_lines(filename, code, wrapper, coverage_excluded_lines)
        visitor = file_mutation.MutationVisitor(operators, ignored, covered_lines)
        wrapper.visit(visitor)
        return module, [*mutations, *visitor.mutations], ignored_classes, ignored_functions

    file_mutation.create_mutations = create_mutations


def _functions_in_order(module):
    """(function, class name) in the order mutmut names their mutants."""
    import libcst as cst

    for statement in module.body:
        if isinstance(statement, cst.FunctionDef):
            yield statement, None
        elif isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock):
            for method in statement.body.body:
                if isinstance(method, cst.FunctionDef):
                    yield method, statement.name.value


def list_mutants(source_file: str) -> tuple[object, list[dict]]:
    """Every mutant mutmut makes of the module: its name, line and the libcst mutation."""
    from libcst.metadata import MetadataWrapper, PositionProvider
    from mutmut.mutation import file_mutation
    from mutmut.mutation.trampoline_templates import mangle_function_name
    from mutmut.utils.format_utils import get_mutant_name

    code = Path(source_file).read_text()
    module, mutations, ignored_classes, ignored_functions = file_mutation.create_mutations(source_file, code)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    by_function = defaultdict(list)
    for mutation in mutations:
        by_function[mutation.contained_by_top_level_function].append(mutation)
    listed = []
    for function, class_name in _functions_in_order(module):
        prefix = mangle_function_name(name=function.name.value, class_name=class_name) + "__mutmut"
        for number, mutation in enumerate(by_function.get(function, []), start=1):
            name = get_mutant_name(Path(source_file), f"{prefix}_{number}")
            line = positions[mutation.original_node].start.line
            listed.append({"name": name, "line": line, "mutation": mutation})
    expected = file_mutation.combine_mutations_to_source(module, mutations, ignored_classes, ignored_functions)
    if [m["name"].rpartition(".")[2] for m in listed] != list(expected.mutant_names):
        raise RuntimeError("covsweep's list of mutants differs from mutmut's: mutmut is not the pinned version")
    return module, listed


def describe(module, mutant: dict) -> dict:
    """The mutant as a reader sees it: the first changed line, the original and the mutated code."""
    from mutmut.mutation import file_mutation

    mutation = mutant["mutation"]
    original = module.code.splitlines()
    mutated = file_mutation.deep_replace(module, mutation.original_node, mutation.mutated_node).code.splitlines()
    matcher = difflib.SequenceMatcher(a=original, b=mutated, autojunk=False)
    line, before, after = mutant["line"], original[mutant["line"] - 1], original[mutant["line"] - 1]
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            line, before, after = i1 + 1, "\n".join(original[i1:i2]), "\n".join(mutated[j1:j2])
            break
    return {
        "name": mutant["name"],
        "line": line,
        "original": textwrap.dedent(before).strip(),
        "mutated": textwrap.dedent(after).strip(),
    }


def run_engine(work: Path, names: list[str], max_children: int, deadline: float) -> str:
    """`mutmut run NAMES` in its own process group, stopped (its verdicts so far kept) at the deadline.
    Returns its output."""
    log = work / ENGINE_LOG
    with open(log, "wb") as sink:
        engine = subprocess.Popen(
            [sys.executable, __file__, "engine", str(max_children), *names],
            cwd=work,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            engine.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # mutmut stops its workers on an interrupt, after saving each verdict as it came.
            os.killpg(engine.pid, signal.SIGINT)
            try:
                engine.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(engine.pid, signal.SIGKILL)
                engine.wait()
    return log.read_text(errors="replace")


def _meta(source_file: str) -> dict:
    """mutmut's record of the module's mutants: exit code and duration of each one's last run."""
    try:
        return json.loads((Path("mutants") / f"{source_file}.meta").read_text())
    except (OSError, ValueError):
        return {}  # never written, or cut off mid-write by the stop


def read_verdicts(source_file: str) -> dict[str, str | None]:
    from mutmut.stats import status_by_exit_code

    codes = _meta(source_file).get("exit_code_by_key", {})
    return {name: verdict(status_by_exit_code[code]) if code is not None else None for name, code in codes.items()}


def finished_durations(source_file: str, verdicts: dict[str, str | None]) -> list[float]:
    """How long each mutant run that ended by itself (killed or survived) took."""
    durations = _meta(source_file).get("durations_by_key", {})
    return [durations[name] for name, seen in verdicts.items() if seen in ("killed", "survived") and name in durations]


def engine_main(max_children: str, names: list[str]) -> None:
    add_operators()
    from mutmut.__main__ import cli

    cli.main(args=["run", "--max-children", max_children, *names], prog_name="mutmut")


# ---- the job ------------------------------------------------------------------------------------


def choose(job: dict, listed: list[dict]) -> list[dict]:
    if job["mode"] == "kills":
        wanted = set(job["names"])
        chosen = [m for m in listed if m["name"] in wanted]
        missing = wanted - {m["name"] for m in chosen}
        if missing:
            raise LookupError(f"the module no longer has mutant {sorted(missing)[0]}")
        return chosen
    return [listed[i] for i in even_sample([m["line"] for m in listed], job["max_mutants"])]


def conclude(
    output: str, chosen: list[dict], verdicts: dict[str, str | None], *, out_of_time: bool = False
) -> str | None:
    """Fill in each mutant's status; the error when the engine gave no verdict at all. Stopped at the
    deadline, a mutant without a verdict stays untried: a timeout of the run, not an engine failure."""
    for mutant in chosen:
        mutant["status"] = verdicts.get(mutant["name"])
    if not chosen or any(m["status"] for m in chosen):
        return None
    if any(marker in output for marker in UNREACHED):
        for mutant in chosen:
            mutant["status"] = "survived"
        return None
    if out_of_time:
        return None
    tail = [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()][-3:]
    return "mutmut gave no verdict: " + (" | ".join(tail) or "no output")[:500]


def evaluate(work: Path, source_file: str, names: list[str], max_children: int, deadline: float):
    """mutmut's verdicts on `names`, each timeout confirmed by a second run at confirm_limit (a
    timeout the deadline leaves unconfirmed stands). Returns the engine's output and the verdicts."""
    output = run_engine(work, names, max_children, deadline)
    verdicts = read_verdicts(source_file)
    hung = [name for name in names if verdicts.get(name) == "timeout"]
    if hung and time.monotonic() < deadline:
        set_limit(work, confirm_limit(finished_durations(source_file, verdicts)))
        output += run_engine(work, hung, max_children, deadline)
        confirmed = read_verdicts(source_file)
        verdicts |= {name: confirmed[name] for name in hung if confirmed.get(name) is not None}
    return output, verdicts


def run_job(job: dict, workspace: Path, started: float) -> dict:
    return run_groups(job, workspace, started) if job["mode"] == "kills" else run_one(job, workspace, started)


def run_groups(job: dict, workspace: Path, started: float) -> dict:
    """kills: each group of tests (`groups`) alone against the same chosen mutants, one group after the
    other in its own copy, in this one sandbox run: which group kills what, for one container's start.
    The groups from `together_from` on are first run as one: each alone then only against the mutants
    they kill together, and not at all when that is none (tests that kill nothing cost one run).
    A group the deadline leaves no time for gets no verdicts."""
    groups = job["groups"]
    split = job.get("together_from", len(groups))
    folders = (workspace / WORK / f"group-{n}" for n in itertools.count())

    def run(only: list[str], names: list[str]) -> dict:
        folder = next(folders)
        folder.mkdir(parents=True)
        return run_one(job | {"only": only, "names": names}, folder, started)

    answers = [run(group, job["names"]) for group in groups[:split]]
    rest, together = groups[split:], None
    if len(rest) > 1:
        together = run([name for group in rest for name in group], job["names"])
        killed = [m["name"] for m in together["mutants"] if m["status"] in DETECTED]
        answers += [run(group, killed) if killed else {"mutants": [], "error": None} for group in rest]
    else:
        answers += [run(group, job["names"]) for group in rest]
    full = together or answers[0]  # a run against every chosen mutant
    runs = answers + [together] * (together is not None)
    errors = [answer["error"] for answer in runs if answer["error"]]
    return {
        "mutants": full["mutants"],
        "groups": [{m["name"]: m["status"] for m in answer["mutants"]} for answer in answers],
        "error": errors[0] if len(errors) == len(runs) else None,
        "listed": full["listed"],
    }


def run_one(job: dict, workspace: Path, started: float) -> dict:
    deadline = started + job["budget_s"] - RESULT_MARGIN_S
    work = lay_out(job, workspace)
    os.chdir(work)  # mutmut reads its configuration and writes mutants/ in the working directory
    add_operators()
    source_file = f"{SOURCE_ROOT}/{job['module_path']}"
    module, listed = list_mutants(source_file)
    chosen = choose(job, listed)
    described = [describe(module, m) for m in chosen]
    listed_at = time.monotonic()
    if not (described and job["tests"]):
        error = conclude(UNREACHED[0], described, {})  # no test: nothing can kill a mutant
    elif time.monotonic() >= deadline:
        error = None  # no time left: every mutant stays untried
        for mutant in described:
            mutant["status"] = None
    else:
        output, verdicts = evaluate(work, source_file, [m["name"] for m in described], job["max_children"], deadline)
        error = conclude(output, described, verdicts, out_of_time=time.monotonic() >= deadline)
    seconds = {"list": listed_at - started, "engine": time.monotonic() - listed_at}
    return {"mutants": described, "error": error, "listed": len(listed), "seconds": seconds}


def main(job_file: str) -> None:
    started = time.monotonic()
    job_path = Path(job_file).resolve()
    try:
        result = run_job(json.loads(job_path.read_text()), job_path.parent, started)
    except ImportError as exc:
        result = {"mutants": [], "error": f"mutmut is not installed for {sys.executable}: {exc}"}
    except (LookupError, OSError, RuntimeError, ValueError) as exc:
        result = {"mutants": [], "error": f"{type(exc).__name__}: {exc}"}
    (job_path.parent / RESULT).write_text(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "engine":
        engine_main(sys.argv[2], sys.argv[3:])
    else:
        main(sys.argv[1])
