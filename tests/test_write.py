"""write_tests: accepted tests go into the target as covsweep's own files, which pass under plain
pytest from the target's root; no other file of the project is ever touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.discover import discover
from tasks.write import MARKER, WriteRequest, write_tests
from tests.helpers import snapshot, write_project

MONEY_TEST = "from tinyshop.money import cents\n\n\ndef test_cents():\n    assert cents(2) == 200\n"
CART_TEST = ("from tinyshop.cart import total\n\n\ndef test_total():\n    assert total([1, 2]) == 300\n\n\n"
             "class TestEmpty:\n    def test_empty(self):\n        assert total([]) == 0\n")
SHAPES_TEST = "import shapes\n\n\ndef test_area():\n    assert shapes.area(2, 3) == 6\n"

# `python -m pytest` puts the working directory on sys.path; the `pytest` script does not.
RUNNERS = {
    "python -m pytest": [sys.executable, "-m", "pytest"],
    "pytest": [str(Path(sys.executable).with_name("pytest"))],
}


@pytest.fixture
def src_target(tmp_path):
    """A src layout with no pytest configuration at all: nothing puts src/ on sys.path."""
    return write_project(tmp_path / "shop", {
        "pyproject.toml": "[project]\nname = 'tinyshop'\nversion = '0.1'\n",
        "src/tinyshop/__init__.py": "",
        "src/tinyshop/money.py": "def cents(x):\n    return int(x * 100)\n",
        "src/tinyshop/cart.py": ("from tinyshop.money import cents\n\n\n"
                                 "def total(xs):\n    return sum(cents(x) for x in xs)\n"),
    })


@pytest.fixture
def flat_target(tmp_path):
    return write_project(tmp_path / "geo", {
        "shapes.py": "def area(w, h):\n    return w * h\n",
        "tests/test_area.py": "import shapes\n\n\ndef test_unit():\n    assert shapes.area(1, 1) == 1\n",
    })


def request(project, path: str, source: str) -> WriteRequest:
    return WriteRequest(module=next(m for m in project.modules if m.path == path), source=source)


def run_pytest(runner: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run([*RUNNERS[runner], "-p", "no:cacheprovider", "-q", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_one_file_per_module_named_after_its_path_starting_with_the_marker(src_target):
    project = discover.fn(src_target)
    out = project.target / "tests" / "generated"
    written = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST),
                                            request(project, "tinyshop/cart.py", CART_TEST)])

    assert [(w.module, w.path, w.refused) for w in written] == [
        ("tinyshop/money.py", out / "test_tinyshop_money.py", None),
        ("tinyshop/cart.py", out / "test_tinyshop_cart.py", None),
    ]
    assert sorted(p.name for p in out.iterdir()) == ["test_tinyshop_cart.py", "test_tinyshop_money.py"]
    money = next(m for m in project.modules if m.path == "tinyshop/money.py")
    text = (out / "test_tinyshop_money.py").read_text()
    first = text.splitlines()[0]
    assert first.startswith(MARKER) and "covsweep" in first
    assert "tinyshop/money.py" in first and money.sha256[:16] in first
    assert text.endswith(MONEY_TEST)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_src_layout_without_pythonpath_config_passes_under_plain_pytest(src_target, runner):
    project = discover.fn(src_target)
    out = project.target / "tests" / "generated"
    write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST),
                                  request(project, "tinyshop/cart.py", CART_TEST)])

    result = run_pytest(runner, src_target)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_flat_layout_passes_under_plain_pytest(flat_target, runner):
    project = discover.fn(flat_target)
    out = project.target / "tests" / "generated"
    (written,) = write_tests.fn(project, out, [request(project, "shapes.py", SHAPES_TEST)])
    assert written.path == out / "test_shapes.py"

    result = run_pytest(runner, flat_target)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout  # the project's own test and the generated one


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("layout", ["src", "flat"])
def test_out_outside_the_target_passes_from_the_targets_root(src_target, flat_target, tmp_path, layout, runner):
    target = src_target if layout == "src" else flat_target
    project = discover.fn(target)
    before = snapshot(target)
    out = tmp_path / "elsewhere" / "generated"
    requests = ([request(project, "tinyshop/money.py", MONEY_TEST)] if layout == "src"
                else [request(project, "shapes.py", SHAPES_TEST)])

    (written,) = write_tests.fn(project, out, requests)

    assert written.path.parent == out and written.refused is None
    assert snapshot(target) == before
    result = run_pytest(runner, target, str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_its_own_earlier_file_is_rewritten_in_place(src_target):
    project = discover.fn(src_target)
    out = project.target / "tests" / "generated"
    (first,) = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    # the next run: the module changed, and its generator again named its test test_cents
    money = src_target / "src" / "tinyshop" / "money.py"
    money.write_text(money.read_text() + "\n\ndef euros(c):\n    return c / 100\n")
    project = discover.fn(src_target)
    newer = "from tinyshop.money import euros\n\n\ndef test_cents():\n    assert euros(250) == 2.5\n"

    (second,) = write_tests.fn(project, out, [request(project, "tinyshop/money.py", newer)])

    assert second.refused is None and second.path == first.path
    assert [p.name for p in out.iterdir()] == [first.path.name]
    text = second.path.read_text()
    module = next(m for m in project.modules if m.path == "tinyshop/money.py")
    assert text.splitlines()[0].startswith(MARKER) and module.sha256[:16] in text.splitlines()[0]
    assert text.count(MARKER) == 1
    assert "euros(250)" in text
    # the earlier run's tests were part of this run's baseline: they stay, and no name shadows another
    assert "cents(2) == 200" in text
    result = run_pytest("python -m pytest", src_target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_file_without_the_marker_is_refused_and_left_unchanged(src_target, tmp_path):
    project = discover.fn(src_target)
    out = tmp_path / "out"
    mine = out / "test_tinyshop_money.py"
    mine.parent.mkdir()
    mine.write_bytes(b"# my own tests\r\ndef test_mine():\r\n    assert True\r\n")
    before = mine.read_bytes()

    written = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST),
                                            request(project, "tinyshop/cart.py", CART_TEST)])

    money, cart = written
    assert money.refused and str(mine) in money.refused and money.path is None
    assert mine.read_bytes() == before
    # the refusal is per module: the other module's tests are still written
    assert cart.refused is None and cart.path == out / "test_tinyshop_cart.py" and cart.path.exists()
    assert sorted(p.name for p in out.iterdir()) == ["test_tinyshop_cart.py", "test_tinyshop_money.py"]


def test_a_file_without_the_marker_inside_the_target_is_refused(src_target):
    project = discover.fn(src_target)
    out = project.target / "tests" / "generated"
    theirs = {
        "tests/test_tinyshop_money.py": "def test_theirs():\n    assert True\n",
        "tests/generated/test_tinyshop_money_covsweep.py": "def test_also_theirs():\n    assert True\n",
    }
    write_project(src_target, theirs)
    before = snapshot(src_target)

    (written,) = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert written.refused and written.path is None
    assert snapshot(src_target) == before


def test_a_covsweep_name_when_the_project_has_a_test_module_of_that_basename(flat_target):
    own = write_project(flat_target, {"tests/test_shapes.py": "import shapes\n\n\ndef test_own():\n    assert shapes.area(0, 5) == 0\n"})
    before = snapshot(own)
    project = discover.fn(flat_target)
    out = project.target / "tests" / "generated"

    (written,) = write_tests.fn(project, out, [request(project, "shapes.py", SHAPES_TEST)])

    assert written.path == out / "test_shapes_covsweep.py"
    assert written.path.read_text().startswith(MARKER)
    assert {k: v for k, v in snapshot(flat_target).items() if not k.startswith("tests/generated/")} == before
    # pytest's default import mode would reject two test modules named test_shapes
    result = run_pytest("python -m pytest", flat_target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_modules_whose_names_flatten_alike_keep_their_own_files(tmp_path):
    """`pkg/a_b.py` and `pkg/a/b.py` both flatten to test_pkg_a_b.py: one module's accepted tests
    must not silently replace the other's."""
    target = write_project(tmp_path / "proj", {
        "pkg/__init__.py": "",
        "pkg/a_b.py": "def one():\n    return 1\n",
        "pkg/a/__init__.py": "",
        "pkg/a/b.py": "def two():\n    return 2\n",
    })
    project = discover.fn(target)
    out = target / "tests" / "generated"
    first = "from pkg.a_b import one\n\n\ndef test_one():\n    assert one() == 1\n"
    second = "from pkg.a.b import two\n\n\ndef test_two():\n    assert two() == 2\n"

    written = write_tests.fn(project, out, [request(project, "pkg/a_b.py", first),
                                            request(project, "pkg/a/b.py", second)])

    assert all(w.refused is None for w in written)
    assert written[0].path != written[1].path
    assert "test_one" in written[0].path.read_text() and "test_two" in written[1].path.read_text()
    result = run_pytest("python -m pytest", target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_writing_the_same_tests_again_changes_nothing(src_target):
    project = discover.fn(src_target)
    out = project.target / "tests" / "generated"
    (first,) = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])
    before = first.path.read_bytes()

    (again,) = write_tests.fn(project, out, [request(project, "tinyshop/money.py", MONEY_TEST)])

    assert first.changed and not again.changed
    assert again.path.read_bytes() == before
