"""The mutation driver's parts that need no engine: sampling, verdicts, the copy mutmut works in."""

from __future__ import annotations

import tomllib

import pytest

from tasks.mutation.driver import (
    conclude,
    confirm_limit,
    even_sample,
    lay_out,
    pytest_config,
    set_limit,
    toml_list,
    verdict,
)
from tests.helpers import snapshot, write_project


def test_up_to_the_limit_every_mutant_is_kept():
    assert even_sample([3, 3, 5], 3) == [0, 1, 2]
    assert even_sample([], 30) == []


def test_with_more_lines_than_room_lines_are_taken_at_even_steps():
    lines = [line for line in range(1, 41) for _ in range(3)]  # 40 lines, 3 mutants each
    chosen = even_sample(lines, 8)
    assert [lines[i] for i in chosen] == [1, 6, 11, 16, 21, 26, 31, 36]
    assert all(lines.index(lines[i]) == i for i in chosen)  # each line's first mutant


def test_with_fewer_lines_than_room_every_line_gets_its_turn():
    lines = [1] * 10 + [2] * 2 + [9] * 5
    chosen = even_sample(lines, 8)
    picked = [lines[i] for i in chosen]
    assert len(chosen) == 8 and chosen == sorted(chosen)
    assert picked.count(2) == 2  # all a short line has
    assert picked.count(1) == 3 and picked.count(9) == 3  # the rest shared, as even as it goes
    assert even_sample(lines, 8) == chosen


@pytest.mark.parametrize(
    "status, expected",
    [
        ("killed", "killed"),
        ("segfault", "killed"),
        ("suspicious", "killed"),
        ("timeout", "timeout"),
        ("survived", "survived"),
        ("no tests", "survived"),
        ("not checked", None),
        (None, None),
    ],
)
def test_mutmut_statuses_become_covsweep_verdicts(status, expected):
    assert verdict(status) == expected


def test_pytest_configuration_is_found_where_pytest_looks(tmp_path):
    assert pytest_config(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")
    assert pytest_config(tmp_path) is None
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\nmarkers = slow\n")
    assert pytest_config(tmp_path) == tmp_path / "setup.cfg"
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["src"]\n')
    assert pytest_config(tmp_path) == tmp_path / "pyproject.toml"
    (tmp_path / "pytest.ini").write_text("")
    assert pytest_config(tmp_path) == tmp_path / "pytest.ini"


def test_toml_list_reads_back_what_it_wrote():
    values = ['tests/a "quoted".py', "back\\slash", "ünïcode"]
    assert tomllib.loads(f"x = {toml_list(values)}")["x"] == values


def test_the_copy_holds_the_package_the_tests_and_mutmuts_configuration(tmp_path):
    target = write_project(
        tmp_path / "shop",
        {
            "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["src"]\n',
            "conftest.py": "",
            "src/shop/__init__.py": "",
            "src/shop/money.py": "def cents(x):\n    return x * 100\n",
            "tests/helpers.py": "",
            "tests/test_money.py": "def test_x():\n    assert True\n",
        },
    )
    candidate = write_project(tmp_path / "elsewhere", {"test_candidate.py": "def test_y():\n    assert True\n"})
    before = snapshot(target)
    job = {
        "target": str(target),
        "import_root": str(target / "src"),
        "module_path": "shop/money.py",
        "tests": [str(target / "tests/test_money.py"), str(candidate / "test_candidate.py")],
    }
    work = lay_out(job, tmp_path)
    assert (work / "src/shop/money.py").read_text() == (target / "src/shop/money.py").read_text()
    assert (work / "tests/helpers.py").exists() and (work / "conftest.py").exists()
    assert (work / "covsweep_candidates/test_candidate.py").exists()
    config = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert config["source_paths"] == ["src/shop"]
    assert config["only_mutate"] == ["src/shop/money.py"]
    assert config["pytest_add_cli_args_test_selection"] == [
        "tests/test_money.py",
        "covsweep_candidates/test_candidate.py",
    ]
    assert set(config["also_copy"]) == {"tests", "conftest.py", "covsweep_candidates", "covsweep-pytest.toml"}
    assert config["pytest_add_cli_args"][-2:] == ["-c", str(work / "mutants/covsweep-pytest.toml")]
    # Tests that took 0.5 s on the module: a mutant gets 3 x 0.5 + 1 s, then more to confirm a timeout.
    assert config["timeout_multiplier"] * (0.5 + config["timeout_constant"]) == pytest.approx(3 * 0.5 + 1)
    set_limit(work, confirm_limit([0.3]))
    config = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert config["timeout_multiplier"] * (0.5 + config["timeout_constant"]) == pytest.approx(10 * 0.5 + 5)
    assert config["only_mutate"] == ["src/shop/money.py"]
    assert snapshot(target) == before


def _confirm_wall_s(tests_s: float, finished_s: list[float]) -> float:
    """mutmut's wall limit per mutant, (tests' time + constant) x multiplier, at confirm_limit."""
    multiplier, constant = confirm_limit(finished_s)
    return multiplier * (tests_s + constant)


def test_a_timeout_is_confirmed_at_a_limit_that_grows_with_how_slow_mutant_runs_are_now():
    # An idle host: pytest starts in a fraction of a second, the floor of 5 s holds.
    assert _confirm_wall_s(0.5, [0.2, 0.4]) == pytest.approx(10 * 0.5 + 5)
    # A loaded one: each mutant's run took 2 s although the tests alone take 0.5 ms.
    assert _confirm_wall_s(0.0005, [0.3, 2.0]) == pytest.approx(10 * 0.0005 + 10 * 2.0)
    # Every run outlasted the first limit: the host is at least that slow.
    assert _confirm_wall_s(0.0005, []) == pytest.approx(10 * 0.0005 + 10 * 1.0)


def test_one_test_of_a_candidate_is_selected_by_its_pytest_id(tmp_path):
    target = write_project(tmp_path / "p", {"calc.py": "def add(a, b):\n    return a + b\n"})
    candidate = write_project(
        tmp_path / "elsewhere", {"test_calc.py": "class TestAdd:\n    def test_y(self):\n        pass\n"}
    )
    job = {
        "target": str(target),
        "import_root": str(target),
        "module_path": "calc.py",
        "tests": [str(candidate / "test_calc.py")],
        "only": ["TestAdd.test_y"],
    }
    work = lay_out(job, tmp_path)
    config = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert config["source_paths"] == ["src/calc.py"] and (work / "src/calc.py").is_file()
    assert config["pytest_add_cli_args_test_selection"] == ["covsweep_candidates/test_calc.py::TestAdd::test_y"]


def test_a_run_stopped_at_its_deadline_leaves_mutants_untried_not_failed():
    chosen = [{"name": "m.x_f__mutmut_1"}, {"name": "m.x_f__mutmut_2"}]

    stopped = conclude("Aborted!", [dict(m) for m in chosen], {}, out_of_time=True)
    failed = conclude("Aborted!", [dict(m) for m in chosen], {})

    assert stopped is None
    assert failed == "mutmut gave no verdict: Aborted!"
