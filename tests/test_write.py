"""write_tests: accepted tests go into the target as covsweep's own files, which pass under plain
pytest from the target's root; no other file of the project is ever touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.markers import MARKER
from tasks.delivery.write import WriteRequest, write_files
from tasks.project.discover import discover
from tests.helpers import snapshot, write_project

MONEY_TEST = "from tinyshop.money import cents\n\n\ndef test_cents():\n    assert cents(2) == 200\n"
CART_TEST = (
    "from tinyshop.cart import total\n\n\ndef test_total():\n    assert total([1, 2]) == 300\n\n\n"
    "class TestEmpty:\n    def test_empty(self):\n        assert total([]) == 0\n"
)
SHAPES_TEST = "import shapes\n\n\ndef test_area():\n    assert shapes.area(2, 3) == 6\n"

# `python -m pytest` puts the working directory on sys.path; the `pytest` script does not.
RUNNERS = {
    "python -m pytest": [sys.executable, "-m", "pytest"],
    "pytest": [str(Path(sys.executable).with_name("pytest"))],
}


@pytest.fixture
def src_target(tmp_path):
    """A src layout with no pytest configuration at all: nothing puts src/ on sys.path."""
    return write_project(
        tmp_path / "shop",
        {
            "pyproject.toml": "[project]\nname = 'tinyshop'\nversion = '0.1'\n",
            "src/tinyshop/__init__.py": "",
            "src/tinyshop/money.py": "def cents(x):\n    return int(x * 100)\n",
            "src/tinyshop/cart.py": (
                "from tinyshop.money import cents\n\n\ndef total(xs):\n    return sum(cents(x) for x in xs)\n"
            ),
        },
    )


@pytest.fixture
def flat_target(tmp_path):
    return write_project(
        tmp_path / "geo",
        {
            "shapes.py": "def area(w, h):\n    return w * h\n",
            "tests/test_area.py": "import shapes\n\n\ndef test_unit():\n    assert shapes.area(1, 1) == 1\n",
        },
    )


def request(project, path: str, source: str) -> WriteRequest:
    return WriteRequest(module=next(m for m in project.modules if m.path == path), source=source)


def run_pytest(runner: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [*RUNNERS[runner], "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_passes(runner: str, cwd: Path, *args: str, passed: int | None = None) -> None:
    """pytest, started as `runner` from `cwd`, passes (and with `passed` tests passed, when given)."""
    result = run_pytest(runner, cwd, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    if passed is not None:
        assert f"{passed} passed" in result.stdout


def test_one_file_per_module_named_after_its_path_starting_with_the_marker(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    written = write_files(
        project,
        out,
        [request(project, "tinyshop/money.py", MONEY_TEST), request(project, "tinyshop/cart.py", CART_TEST)],
    )

    assert [(w.module, w.path, w.refused) for w in written] == [
        ("tinyshop/money.py", out / "test_tinyshop_money.py", None),
        ("tinyshop/cart.py", out / "test_tinyshop_cart.py", None),
    ]
    assert sorted(p.name for p in out.iterdir()) == ["conftest.py", "test_tinyshop_cart.py", "test_tinyshop_money.py"]
    money = next(m for m in project.modules if m.path == "tinyshop/money.py")
    text = (out / "test_tinyshop_money.py").read_text()
    first, rest = text.split("\n", 1)
    assert first.startswith(MARKER) and "covsweep" in first
    assert "tinyshop/money.py" in first and money.sha256[:16] in first
    # no preamble: the marker line, then the tests as they were accepted
    assert rest == MONEY_TEST


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_src_layout_without_pythonpath_config_passes_under_plain_pytest(src_target, runner):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    write_files(
        project,
        out,
        [request(project, "tinyshop/money.py", MONEY_TEST), request(project, "tinyshop/cart.py", CART_TEST)],
    )

    assert_passes(runner, src_target, passed=3)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_flat_layout_passes_under_plain_pytest(flat_target, runner):
    project = discover(flat_target)
    out = project.target / "tests" / "generated"
    (written,) = write_files(project, out, [request(project, "shapes.py", SHAPES_TEST)])
    assert written.path == out / "test_shapes.py"

    assert_passes(runner, flat_target, passed=2)  # the project's own test and the generated one


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("layout", ["src", "flat"])
def test_out_outside_the_target_passes_from_the_targets_root(src_target, flat_target, tmp_path, layout, runner):
    target = src_target if layout == "src" else flat_target
    project = discover(target)
    before = snapshot(target)
    out = tmp_path / "elsewhere" / "generated"
    requests = (
        [request(project, "tinyshop/money.py", MONEY_TEST)]
        if layout == "src"
        else [request(project, "shapes.py", SHAPES_TEST)]
    )

    (written,) = write_files(project, out, requests)

    assert written.path.parent == out and written.refused is None
    assert snapshot(target) == before
    assert_passes(runner, target, str(out), passed=1)


def test_its_own_earlier_file_is_rewritten_in_place(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    (first,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    # the next run: the module changed, and its generator again named its test test_cents
    money = src_target / "src" / "tinyshop" / "money.py"
    money.write_text(money.read_text() + "\n\ndef euros(c):\n    return c / 100\n")
    project = discover(src_target)
    newer = "from tinyshop.money import euros\n\n\ndef test_cents():\n    assert euros(250) == 2.5\n"

    (second,) = write_files(project, out, [request(project, "tinyshop/money.py", newer)])

    assert second.refused is None and second.path == first.path
    assert sorted(p.name for p in out.iterdir()) == ["conftest.py", first.path.name]
    text = second.path.read_text()
    module = next(m for m in project.modules if m.path == "tinyshop/money.py")
    assert text.splitlines()[0].startswith(MARKER) and module.sha256[:16] in text.splitlines()[0]
    assert text.count(MARKER) == 1
    assert "euros(250)" in text
    # the earlier run's tests were part of this run's baseline: they stay, and no name shadows another
    assert "cents(2) == 200" in text
    assert_passes("python -m pytest", src_target, passed=2)


def test_a_file_without_the_marker_is_refused_and_left_unchanged(src_target, tmp_path):
    project = discover(src_target)
    out = tmp_path / "out"
    mine = out / "test_tinyshop_money.py"
    mine.parent.mkdir()
    mine.write_bytes(b"# my own tests\r\ndef test_mine():\r\n    assert True\r\n")
    before = mine.read_bytes()

    written = write_files(
        project,
        out,
        [request(project, "tinyshop/money.py", MONEY_TEST), request(project, "tinyshop/cart.py", CART_TEST)],
    )

    money, cart = written
    assert money.refused and str(mine) in money.refused and money.path is None
    assert mine.read_bytes() == before
    # the refusal is per module: the other module's tests are still written
    assert cart.refused is None and cart.path == out / "test_tinyshop_cart.py" and cart.path.exists()
    assert sorted(p.name for p in out.iterdir()) == ["conftest.py", "test_tinyshop_cart.py", "test_tinyshop_money.py"]


def test_a_file_without_the_marker_inside_the_target_is_refused(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    theirs = {
        "tests/test_tinyshop_money.py": "def test_theirs():\n    assert True\n",
        "tests/generated/test_tinyshop_money_covsweep.py": "def test_also_theirs():\n    assert True\n",
    }
    write_project(src_target, theirs)
    before = snapshot(src_target)

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert written.refused and written.path is None
    assert snapshot(src_target) == before


def test_a_covsweep_name_when_the_project_has_a_test_module_of_that_basename(flat_target):
    own = write_project(
        flat_target, {"tests/test_shapes.py": "import shapes\n\n\ndef test_own():\n    assert shapes.area(0, 5) == 0\n"}
    )
    before = snapshot(own)
    project = discover(flat_target)
    out = project.target / "tests" / "generated"

    (written,) = write_files(project, out, [request(project, "shapes.py", SHAPES_TEST)])

    assert written.path == out / "test_shapes_covsweep.py"
    assert written.path.read_text().startswith(MARKER)
    assert {k: v for k, v in snapshot(flat_target).items() if not k.startswith("tests/generated/")} == before
    # pytest's default import mode would reject two test modules named test_shapes
    assert_passes("python -m pytest", flat_target, passed=3)


def test_modules_whose_names_flatten_alike_keep_their_own_files(tmp_path):
    """`pkg/a_b.py` and `pkg/a/b.py` both flatten to test_pkg_a_b.py: one module's accepted tests
    must not silently replace the other's."""
    target = write_project(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/a_b.py": "def one():\n    return 1\n",
            "pkg/a/__init__.py": "",
            "pkg/a/b.py": "def two():\n    return 2\n",
        },
    )
    project = discover(target)
    out = target / "tests" / "generated"
    first = "from pkg.a_b import one\n\n\ndef test_one():\n    assert one() == 1\n"
    second = "from pkg.a.b import two\n\n\ndef test_two():\n    assert two() == 2\n"

    written = write_files(project, out, [request(project, "pkg/a_b.py", first), request(project, "pkg/a/b.py", second)])

    assert all(w.refused is None for w in written)
    assert written[0].path != written[1].path
    assert "test_one" in written[0].path.read_text() and "test_two" in written[1].path.read_text()
    assert_passes("python -m pytest", target, passed=2)


def test_writing_the_same_tests_again_changes_nothing(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    (first,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    before = first.path.read_bytes()

    (again,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert first.changed and not again.changed
    assert again.path.read_bytes() == before


# A file as covsweep wrote it before conftest.py: the marker, then a sys.path preamble in every file.
EARLIER_WITH_PREAMBLE = """\
# Generated by covsweep for tinyshop/money.py (sha256 0123456789abcdef); covsweep may add to it.
import sys as _covsweep_sys
from pathlib import Path

_COVSWEEP_ROOT = str({root})
if _COVSWEEP_ROOT not in _covsweep_sys.path:
    _covsweep_sys.path.insert(0, _COVSWEEP_ROOT)

from tinyshop.money import cents


def test_cents():
    assert cents(2) == 200
"""
CONFIGS = {
    "pyproject.toml": "[project]\nname = 'tinyshop'\nversion = '0.1'\n\n[tool.pytest.ini_options]\npythonpath = ['src']\n",
    "pytest.ini": "[pytest]\npythonpath = src\n",
    "tox.ini": "[tox]\nenvlist = py311\n\n[pytest]\npythonpath = src\n",
    "setup.cfg": "[metadata]\nname = tinyshop\n\n[tool:pytest]\npythonpath = src\n",
}


def test_one_conftest_in_out_puts_the_import_root_on_sys_path_instead_of_a_preamble_per_file(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"

    write_files(
        project,
        out,
        [request(project, "tinyshop/money.py", MONEY_TEST), request(project, "tinyshop/cart.py", CART_TEST)],
    )

    conftest = (out / "conftest.py").read_text()
    assert conftest.startswith(MARKER)
    assert "sys.path.insert(0, IMPORT_ROOT)" in conftest
    assert "Path(__file__).resolve().parents[2] / 'src'" in conftest  # relative: the target may move
    for test_file in ("test_tinyshop_money.py", "test_tinyshop_cart.py"):
        text = (out / test_file).read_text()
        assert "sys" not in text and "Path" not in text, text
    # the pytest script puts neither the working directory nor src/ on sys.path: only the conftest does
    assert_passes("pytest", src_target, "tests/generated", passed=3)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_a_project_whose_pytest_configuration_sets_pythonpath_gets_no_conftest(src_target, config):
    (src_target / "pyproject.toml").unlink()
    write_project(src_target, {config: CONFIGS[config]})
    project = discover(src_target)
    out = project.target / "tests" / "generated"

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert sorted(p.name for p in out.iterdir()) == [written.path.name]
    assert "sys" not in written.path.read_text()
    assert_passes("pytest", src_target, passed=1)


def test_a_flat_project_with_a_conftest_at_its_root_gets_no_conftest(flat_target):
    write_project(flat_target, {"pytest.ini": "[pytest]\n", "conftest.py": "# the project's own\n"})
    project = discover(flat_target)
    out = project.target / "tests" / "generated"

    (written,) = write_files(project, out, [request(project, "shapes.py", SHAPES_TEST)])

    assert sorted(p.name for p in out.iterdir()) == [written.path.name]
    assert_passes("pytest", flat_target, passed=2)


def test_pythonpath_for_another_folder_or_importlib_mode_still_gets_a_conftest(flat_target):
    write_project(
        flat_target,
        {"pytest.ini": "[pytest]\npythonpath = tools\naddopts = --import-mode=importlib\n", "conftest.py": ""},
    )
    project = discover(flat_target)
    out = project.target / "tests" / "generated"

    write_files(project, out, [request(project, "shapes.py", SHAPES_TEST)])

    assert (out / "conftest.py").read_text().startswith(MARKER)
    assert_passes("pytest", flat_target, passed=2)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_conftest_in_out_that_is_not_covsweeps_is_left_alone_and_each_file_carries_the_preamble(src_target, runner):
    out = src_target / "tests" / "generated"
    theirs = "import pytest\n\n\n@pytest.fixture\ndef shop_name():\n    return 'tiny'\n"
    write_project(out, {"conftest.py": theirs})
    project = discover(src_target)

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert (out / "conftest.py").read_text() == theirs
    assert "_covsweep_sys.path.insert(0, _COVSWEEP_ROOT)" in written.path.read_text()
    assert_passes(runner, src_target, passed=1)


@pytest.mark.parametrize(
    "root", ["Path(__file__).resolve().parents[2] / 'src'", "Path('/where/the/target/was/before/src')"]
)
def test_an_earlier_file_with_the_preamble_is_read_back_merged_and_upgraded(src_target, root):
    out = src_target / "tests" / "generated"
    write_project(out, {"test_tinyshop_money.py": EARLIER_WITH_PREAMBLE.format(root=root)})
    project = discover(src_target)
    newer = "from tinyshop.money import cents\n\n\ndef test_cents_of_a_half():\n    assert cents(0.5) == 50\n"

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", newer)])

    text = written.path.read_text()
    assert written.changed and text.startswith(MARKER) and text.count(MARKER) == 1
    assert "_covsweep_sys" not in text and "_COVSWEEP_ROOT" not in text and "pathlib" not in text
    assert "def test_cents():" in text and "def test_cents_of_a_half():" in text
    assert text.count("from tinyshop.money import cents") == 1
    assert (out / "conftest.py").exists()
    assert_passes("pytest", src_target, passed=2)


def test_imports_of_an_earlier_file_and_the_new_tests_are_merged_not_repeated(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    money = src_target / "src" / "tinyshop" / "money.py"
    money.write_text(money.read_text() + "\n\ndef euros(c):\n    return c / 100\n")
    project = discover(src_target)
    newer = "import pytest\nfrom tinyshop.money import cents, euros\n\n\ndef test_euros():\n    assert euros(cents(2)) == 2\n"

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", newer)])

    lines = written.path.read_text().splitlines()
    assert lines[1:5] == ["import pytest", "", "from tinyshop.money import cents, euros", ""]
    assert_passes("python -m pytest", src_target, passed=2)


def test_covsweeps_conftest_goes_once_the_project_configures_pythonpath(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    assert (out / "conftest.py").exists()
    (src_target / "pyproject.toml").write_text(CONFIGS["pyproject.toml"])

    write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert sorted(p.name for p in out.iterdir()) == ["test_tinyshop_money.py"]
    assert_passes("pytest", src_target)


def test_under_unittest_each_file_carries_the_preamble_and_no_conftest_is_written(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    source = (
        "import unittest\n\nfrom tinyshop.money import cents\n\n\n"
        "class TestCents(unittest.TestCase):\n    def test_cents(self):\n        self.assertEqual(cents(2), 200)\n"
    )

    (written,) = write_files(project, out, [request(project, "tinyshop/money.py", source)], framework="unittest")

    # unittest's discovery goes down into packages only: a marked __init__.py, no conftest.py
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", written.path.name]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests/generated"],
        cwd=src_target,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 1 test" in result.stderr


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_covsweeps_conftest_and_the_projects_own_in_a_parent_folder_both_load(src_target, runner):
    write_project(
        src_target,
        {
            "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef unit():\n    return 100\n",
            "tests/test_own.py": "def test_own(unit):\n    assert unit == 100\n",
        },
    )
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    uses_fixture = MONEY_TEST + "\n\ndef test_fixture_from_the_parent(unit):\n    assert cents(1) == unit\n"

    write_files(project, out, [request(project, "tinyshop/money.py", uses_fixture)])

    assert (out / "conftest.py").read_text().startswith(MARKER)
    assert_passes(runner, src_target, passed=3)


def test_for_unittest_the_out_folder_becomes_a_marked_package_once(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"

    write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)], framework="unittest")

    init = out / "__init__.py"
    assert init.read_text().startswith(MARKER)  # covsweep's own: patches and branches carry it
    init.write_text(f"{MARKER}: kept as it is\n")
    write_files(project, out, [request(project, "tinyshop/cart.py", CART_TEST)], framework="unittest")
    assert init.read_text() == f"{MARKER}: kept as it is\n"


def test_for_pytest_no_package_is_made(src_target):
    project = discover(src_target)
    out = project.target / "tests" / "generated"
    write_files(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    assert not (out / "__init__.py").exists()
