"""Mutation score of a module's tests and the mutants one test kills: mutmut in the real sandbox."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tasks.core.errors import ModuleError
from tasks.core.models import Module, Mutant, Project
from tasks.mutation.run import kills, kills_by_group, mutate_module
from tasks.project.discover import discover
from tasks.sandbox import runner as sandbox
from tests.helpers import snapshot, write_project

CLASS_SEPARATOR = "ǁ"  # mutmut's, between the class and the method in a mutant's name


def mutated_function(mutant: Mutant) -> str:
    """The function (`name`) or method (`Class.name`) a mutant changes, from mutmut's name for it
    (`pkg.mod.x_name__mutmut_3`, `pkg.mod.xǁClassǁname__mutmut_1`): which functions the survivors are in."""
    mangled = mutant.name.partition("__mutmut_")[0].rsplit(".", 1)[-1]
    if mangled.startswith("x" + CLASS_SEPARATOR):
        _, owner, name = mangled.split(CLASS_SEPARATOR)
        return f"{owner}.{name}"
    return mangled.removeprefix("x_")


RULES = '''
    """Prices with a bulk discount and a loyalty rule."""

    BULK = 10


    def unit_price(base, quantity):
        if quantity >= BULK:
            return base * 9 // 10
        return base


    def total(base, quantity):
        return unit_price(base, quantity) * quantity


    def is_free(price, member):
        return price == 0 or member and price < 100


    def record(log, price):
        log.append(price)
        return len(log)
'''

# Tests that call every function and check nothing.
CALLS_ONLY = """
    from pricing.rules import is_free, record, total, unit_price


    def test_unit_price():
        unit_price(100, 3)
        unit_price(100, 12)


    def test_total():
        total(100, 12)


    def test_is_free():
        is_free(0, False)
        is_free(50, True)


    def test_record():
        record([], 5)
"""

BEHAVIOUR = """
    from pricing.rules import is_free, record, total, unit_price


    def test_unit_price_is_discounted_from_the_bulk_quantity_on():
        assert unit_price(100, 9) == 100
        assert unit_price(100, 10) == 90


    def test_total_multiplies_the_unit_price():
        assert total(100, 3) == 300
        assert total(100, 20) == 1800


    def test_is_free():
        assert is_free(0, False)
        assert not is_free(50, False)
        assert is_free(50, True)
        assert not is_free(100, True)


    def test_record_appends_and_counts():
        log = [1]
        assert record(log, 5) == 2
        assert log == [1, 5]
"""

PYPROJECT = """
    [project]
    name = "pricing"
    version = "0.1.0"

    [tool.pytest.ini_options]
    pythonpath = ["src"]
"""


def pricing(root: Path) -> tuple[Project, Module]:
    target = write_project(
        root,
        {
            "pyproject.toml": PYPROJECT,
            "src/pricing/__init__.py": "",
            "src/pricing/rules.py": RULES,
            "tests/test_calls.py": CALLS_ONLY,
            "tests/test_behaviour.py": BEHAVIOUR,
        },
    )
    project = discover(target)
    return project, next(m for m in project.modules if m.path == "pricing/rules.py")


@pytest.mark.docker
def test_assertion_free_tests_score_low_and_their_survivors_are_listed(docker_config, tmp_path):
    project, module = pricing(tmp_path / "pricing")
    before = snapshot(project.target)
    run = mutate_module(
        docker_config, project, module, [project.target / "tests/test_calls.py"], tmp_path / "ws", timeout=180
    )
    score = run.score
    assert score.mutants == len(run.mutants) == run.listed > 0 and run.unfinished == 0
    assert score.killed + score.survived + score.timeout == score.mutants
    assert score.score == round(100 * (score.killed + score.timeout) / score.mutants, 2)
    assert score.score < 50 and len(run.survivors) == score.survived
    lines = module.file.read_text().splitlines()
    for mutant in run.survivors:
        assert mutant.file == "pricing/rules.py"
        assert lines[mutant.line - 1].strip() == mutant.original != mutant.mutated
    # The operators the refinement relies on, among what these tests let through.
    shown = {(m.original, m.mutated) for m in run.survivors}
    assert ("if quantity >= BULK:", "if quantity > BULK:") in shown  # boundary
    assert ("return base * 9 // 10", "return base * 9 // 11") in shown  # constant
    assert ("return price == 0 or member and price < 100", "return price == 0 and member and price < 100") in shown
    assert ("return len(log)", "return None") in shown  # return value
    assert ("log.append(price)", "None") in shown  # removed call
    assert snapshot(project.target) == before  # mutated in the workspace's copy only
    assert {mutated_function(m) for m in run.survivors} <= {"unit_price", "total", "is_free", "record"}


@pytest.mark.docker
def test_tests_that_check_the_behaviour_kill_the_survivors_and_raise_the_score(docker_config, tmp_path):
    project, module = pricing(tmp_path / "pricing")
    tests = project.target / "tests"
    weak = mutate_module(docker_config, project, module, [tests / "test_calls.py"], tmp_path / "ws-weak", timeout=180)
    boundary = "test_unit_price_is_discounted_from_the_bulk_quantity_on"
    killed = kills(
        docker_config, project, module, tests / "test_behaviour.py", boundary, weak.survivors, tmp_path / "ws-k", 180
    )
    assert {(m.original, m.mutated) for m in killed} >= {("if quantity >= BULK:", "if quantity > BULK:")}
    assert all(m.status in ("killed", "timeout") for m in killed)
    # That test calls unit_price only: it cannot kill a mutant of record().
    assert [m for m in killed if m.line >= 20] == []
    assert [m for m in weak.survivors if m.line >= 20]
    # Several groups in one sandbox run, each apart from the others: the same verdicts as one by one.
    groups = [[boundary], ["test_record_appends_and_counts"], [boundary, "test_record_appends_and_counts"]]
    alone, record, both = kills_by_group(
        docker_config, project, module, tests / "test_behaviour.py", groups, weak.survivors, tmp_path / "ws-k", 180
    )
    assert alone == killed
    assert record and all(m.line >= 20 for m in record)
    assert {m.name for m in both} == {m.name for m in alone} | {m.name for m in record}
    # Groups tried together first, then alone against what they kill together: the same answers.
    together = kills_by_group(
        docker_config,
        project,
        module,
        tests / "test_behaviour.py",
        groups,
        weak.survivors,
        tmp_path / "ws-k",
        180,
        together_from=1,
    )
    assert together == [alone, record, both]
    strong = mutate_module(
        docker_config,
        project,
        module,
        [tests / "test_calls.py", tests / "test_behaviour.py"],
        tmp_path / "ws",
        timeout=180,
    )
    assert strong.score.mutants == weak.score.mutants
    assert strong.score.score > weak.score.score
    assert {m.name for m in strong.survivors} < {m.name for m in weak.survivors}


@pytest.mark.docker
def test_a_hanging_mutant_is_a_timeout_not_a_stuck_run(docker_config, tmp_path):
    target = write_project(
        tmp_path / "counting",
        {
            "counting.py": """
                def count_up(limit):
                    i = 0
                    while i < limit:
                        i += 1
                    return i
            """,
            "tests/test_counting.py": """
                from counting import count_up


                def test_counts_up_to_the_limit():
                    assert count_up(3) == 3
            """,
        },
    )
    project = discover(target)
    run = mutate_module(
        docker_config, project, project.modules[0], [target / "tests/test_counting.py"], tmp_path / "ws", timeout=180
    )
    by_change = {(m.original, m.mutated): m.status for m in run.mutants}
    assert by_change[("i += 1", "i -= 1")] == "timeout"  # i never reaches the limit
    assert by_change[("i += 1", "i = 1")] == "timeout"
    assert by_change[("while i < limit:", "while i <= limit:")] == "killed"
    assert run.score.timeout == 2 and run.unfinished == 0


@pytest.mark.docker
def test_a_run_that_was_only_slow_once_is_not_a_timeout(docker_config, tmp_path):
    target = write_project(
        tmp_path / "doubling",
        {
            "doubling.py": "def double(x):\n    return x * 2\n",
            "tests/test_doubling.py": """
                import os
                import time
                from pathlib import Path

                from doubling import double

                SLOW_ONCE = Path("/tmp/covsweep-slow-once")


                def test_double():
                    # The first mutant's first run is slow, as any run can be on a loaded host.
                    if os.environ.get("MUTANT_UNDER_TEST", "").endswith("__mutmut_1") and not SLOW_ONCE.exists():
                        SLOW_ONCE.touch()
                        time.sleep(4)
                    assert double(2) == 4
            """,
        },
    )
    project = discover(target)
    run = mutate_module(
        docker_config, project, project.modules[0], [target / "tests/test_doubling.py"], tmp_path / "ws", timeout=180
    )
    first = next(m for m in run.mutants if m.name.endswith("__mutmut_1"))
    assert (first.original, first.mutated, first.status) == ("return x * 2", "return x / 2", "killed")
    assert run.score.timeout == 0


@pytest.mark.docker
def test_mutant_runs_slowed_down_every_time_by_a_busy_host_are_not_timeouts(docker_config, tmp_path):
    target = write_project(
        tmp_path / "doubling",
        {
            "doubling.py": "def double(x):\n    return x * 2\n",
            "tests/test_doubling.py": """
                import os
                import time

                from doubling import double


                def test_double():
                    # Every mutant's run takes seconds, as on a host busy with other work; the tests'
                    # own time, which mutmut measures once on the unmutated module, stays a millisecond.
                    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
                        time.sleep(6)
                    assert double(2) == 4
            """,
        },
    )
    project = discover(target)
    run = mutate_module(
        docker_config, project, project.modules[0], [target / "tests/test_doubling.py"], tmp_path / "ws", timeout=180
    )
    assert run.mutants and run.unfinished == 0
    assert {m.status for m in run.mutants} == {"killed"}, [(m.mutated, m.status) for m in run.mutants]


def _mutmut_by_hand(config, project: Project, workspace: Path, tests: str) -> dict[str, str]:
    """`mutmut run` and `mutmut results --all true` on a copy, configured as mutmut's README says."""
    hand = workspace / "hand"
    shutil.copytree(project.target, hand)
    hand.chmod(0o777)  # mutmut writes mutants/ here as the sandbox's user
    with open(hand / "pyproject.toml", "a") as config_file:
        config_file.write(
            f'\n[tool.mutmut]\nsource_paths = ["src"]\npytest_add_cli_args_test_selection = ["{tests}"]\n'
            "use_git_change_detection = false\n"
        )
    script = (
        f'cd {hand} && MUTMUT="$(dirname "$PY")/mutmut" && "$MUTMUT" run > run.log 2>&1; "$MUTMUT" results --all true'
    )
    result = sandbox.run(config, script, workspace=workspace, read_only=[project.target], timeout=300)
    assert result.ok, result.output[-2000:]
    return dict(re.findall(r"^\s*(\S+): (.+?)\s*$", result.output, re.MULTILINE))


def _pytest_on_applied_mutants(config, project: Project, workspace: Path, mutants, tests: str) -> dict[str, bool]:
    """For mutants mutmut does not make itself: each applied to its own copy by hand, pytest run on it."""
    source = (project.import_root / "pricing/rules.py").read_text().splitlines(keepends=True)
    steps = []
    for number, mutant in enumerate(mutants):
        copy = workspace / f"applied-{number}"
        shutil.copytree(project.target, copy)
        lines = list(source)
        assert mutant.original in lines[mutant.line - 1]
        lines[mutant.line - 1] = lines[mutant.line - 1].replace(mutant.original, mutant.mutated, 1)
        (copy / "src/pricing/rules.py").write_text("".join(lines))
        steps.append(f'cd {copy} && "$PY" -m pytest -q -p no:cacheprovider {tests} >/dev/null 2>&1; echo "{number} $?"')
    result = sandbox.run(config, "\n".join(steps), workspace=workspace, read_only=[project.target], timeout=300)
    exits = dict(re.findall(r"^(\d+) (\d+)$", result.output, re.MULTILINE))
    return {m.name: exits[str(n)] != "0" for n, m in enumerate(mutants)}


@pytest.mark.docker
def test_the_score_is_what_mutmut_gives_when_run_by_hand(docker_config, tmp_path):
    project, module = pricing(tmp_path / "pricing")
    tests = "tests/test_behaviour.py"
    run = mutate_module(docker_config, project, module, [project.target / tests], tmp_path / "ws", timeout=180)
    workspace = sandbox.prepare_workspace(tmp_path / "by-hand")
    by_hand = _mutmut_by_hand(docker_config, project, workspace, tests)
    ours = {m.name: m for m in run.mutants}
    assert set(by_hand) <= set(ours)
    hand_verdict = {"killed": "killed", "survived": "survived", "no tests": "survived", "timeout": "timeout"}
    assert {name: ours[name].status for name in by_hand} == {n: hand_verdict[s] for n, s in by_hand.items()}
    # covsweep's own operators (return value, removed call): applied by hand, pytest decides.
    extra = [m for m in run.mutants if m.name not in by_hand]
    assert {(m.original, m.mutated) for m in extra} >= {
        ("return len(log)", "return None"),
        ("log.append(price)", "None"),
    }
    applied = _pytest_on_applied_mutants(
        docker_config, project, sandbox.prepare_workspace(tmp_path / "applied"), extra, tests
    )
    assert {m.name: m.status == "killed" for m in extra} == applied
    killed = sum(s == "killed" for s in by_hand.values()) + sum(applied.values())
    timeout = sum(s == "timeout" for s in by_hand.values())
    assert (run.score.mutants, run.score.killed, run.score.timeout) == (len(by_hand) + len(extra), killed, timeout)
    assert run.score.score == round(100 * (killed + timeout) / run.score.mutants, 2)


def shifts(root: Path, count: int, test: str) -> tuple[Project, Path]:
    """A module of `count` one-line functions `shift_n(x) = x + n`, and a test file."""
    functions = "\n\n".join(f"def shift_{n}(x):\n    return x + {n}\n" for n in range(count))
    target = write_project(root, {"shifts.py": functions, "tests/test_shifts.py": test})
    return discover(target), target / "tests/test_shifts.py"


@pytest.mark.docker
def test_more_mutants_than_the_limit_are_sampled_evenly_over_the_lines(docker_config, tmp_path):
    test = "from shifts import shift_0\n\n\ndef test_shift():\n    assert shift_0(1) == 1\n"
    project, test_file = shifts(tmp_path / "shifts", 40, test)

    def sample(workspace: Path):
        return mutate_module(
            docker_config, project, project.modules[0], [test_file], workspace, max_mutants=8, timeout=180
        )

    run, again = sample(tmp_path / "ws"), sample(tmp_path / "ws")  # a workspace can serve again
    source = project.modules[0].file.read_text().splitlines()
    mutable = [n + 1 for n, line in enumerate(source) if line.startswith("    return")]
    assert run.listed > 8 and len(run.mutants) == run.score.mutants == 8
    assert [m.line for m in run.mutants] == [mutable[step * len(mutable) // 8] for step in range(8)]
    assert [m.name for m in again.mutants] == [m.name for m in run.mutants]


@pytest.mark.docker
def test_the_whole_run_is_bounded_by_its_timeout(docker_config, tmp_path):
    test = (
        "import time\n\nimport shifts\n\n\ndef test_every_shift():\n"
        "    time.sleep(1)\n"
        "    assert [getattr(shifts, f'shift_{n}')(0) for n in range(12)] == list(range(12))\n"
    )
    project, test_file = shifts(tmp_path / "slow", 12, test)
    budget = 25
    run = mutate_module(
        docker_config, project, project.modules[0], [test_file], tmp_path / "ws", max_mutants=36, timeout=budget
    )
    assert len(run.mutants) == 36  # about a second each: more than the budget holds
    assert run.unfinished > 0 and run.score.mutants == 36 - run.unfinished > 0
    assert run.duration_s < budget + 10


def test_without_the_engine_the_error_names_it(local_config, tmp_path):
    project, module = pricing(tmp_path / "pricing")
    with pytest.raises(ModuleError, match="mutmut is not installed") as caught:
        mutate_module(
            local_config, project, module, [project.target / "tests/test_calls.py"], tmp_path / "ws", timeout=60
        )
    assert caught.value.info.type == "sandbox"


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("pricing.rules.x_unit_price__mutmut_3", "unit_price"),
        ("shop.cart.xǁCartǁadd__mutmut_12", "Cart.add"),
        ("pkg.x_f__mutmut_1", "f"),  # a package's __init__.py
    ],
)
def test_the_function_a_mutant_changes_is_read_from_its_name(name, function):
    mutant = Mutant(name=name, file="m.py", line=1, original="a", mutated="b")
    assert mutated_function(mutant) == function
