"""discover: which modules of a target covsweep works on, and where the project's own tests are."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tasks.core.errors import InputError
from tasks.project.discover import discover
from tests.helpers import write_project


def paths(project) -> list[str]:
    return [m.path for m in project.modules]


@pytest.fixture
def src_project(tmp_path):
    """A src/ layout with top-level files that are not part of the importable code."""
    return write_project(
        tmp_path / "proj",
        {
            "pyproject.toml": "[project]\nname = 'shop'\n",
            "setup.py": "from setuptools import setup\nsetup()\n",
            "noxfile.py": "import nox\n",
            "src/shop/__init__.py": '"""The shop."""\n',
            "src/shop/money.py": "def cents(x):\n    return int(x * 100)\n",
            "src/shop/cart.py": "from shop.money import cents\n\n\ndef total(xs):\n    return sum(cents(x) for x in xs)\n",
            "src/shop/sub/__init__.py": "",
            "src/shop/sub/deep.py": "X = 1\n",
            "tests/test_money.py": "from shop.money import cents\n\n\ndef test_cents():\n    assert cents(1) == 100\n",
        },
    )


def test_src_layout_modules_are_relative_to_src_with_their_import_names(src_project):
    project = discover(src_project)

    assert project.target == src_project.resolve()
    assert project.import_root == src_project.resolve() / "src"
    assert paths(project) == ["shop/__init__.py", "shop/cart.py", "shop/money.py", "shop/sub/deep.py"]
    by_path = {m.path: m for m in project.modules}
    assert {p: m.dotted for p, m in by_path.items()} == {
        "shop/__init__.py": "shop",
        "shop/cart.py": "shop.cart",
        "shop/money.py": "shop.money",
        "shop/sub/deep.py": "shop.sub.deep",
    }
    money = by_path["shop/money.py"]
    assert money.file == src_project.resolve() / "src" / "shop" / "money.py"
    assert money.sha256 == hashlib.sha256(money.file.read_bytes()).hexdigest()
    assert money.syntax_error is None


def test_src_layout_import_names_really_import(src_project):
    """What discover calls `dotted` is what a test imports, with the import root on sys.path."""
    project = discover(src_project)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *[m.dotted for m in project.modules]],
        cwd=src_project,
        env={**os.environ, "PYTHONPATH": str(project.import_root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_flat_layout_uses_the_target_as_import_root(tmp_path):
    target = write_project(
        tmp_path / "flat",
        {
            "geometry.py": "def area(w, h):\n    return w * h\n",
            "shapes/__init__.py": "from shapes.circle import Circle\n",
            "shapes/circle.py": "class Circle:\n    pass\n",
            "tests/test_geometry.py": "def test_x():\n    pass\n",
        },
    )
    project = discover(target)

    assert project.import_root == target.resolve()
    assert paths(project) == ["geometry.py", "shapes/__init__.py", "shapes/circle.py"]
    assert [m.dotted for m in project.modules] == ["geometry", "shapes", "shapes.circle"]


def test_a_src_folder_without_python_files_is_not_a_src_layout(tmp_path):
    target = write_project(
        tmp_path / "flat",
        {
            "src/README.md": "not code\n",
            "app.py": "X = 1\n",
        },
    )
    project = discover(target)
    assert project.import_root == target.resolve()
    assert paths(project) == ["app.py"]


def test_what_is_not_the_projects_importable_code_is_skipped(tmp_path):
    # Each skipped folder carries an __init__.py, so that it is its name alone that excludes it.
    target = write_project(
        tmp_path / "proj",
        {
            "setup.py": "from setuptools import setup\nsetup()\n",
            "conftest.py": "import pytest\n",
            "app.py": "X = 1\n",
            "test_app.py": "def test_x():\n    pass\n",
            "app_test.py": "def test_y():\n    pass\n",
            "pkg/__init__.py": "",
            "pkg/core.py": "Y = 2\n",
            "pkg/conftest.py": "import pytest\n",
            "pkg/tests/__init__.py": "",
            "pkg/tests/helpers.py": "Z = 3\n",
            "tests/__init__.py": "",
            "tests/factories.py": "Z = 3\n",
            "test/__init__.py": "",
            "test/factories.py": "Z = 3\n",
            ".hidden/__init__.py": "",
            ".hidden/secret.py": "S = 1\n",
            ".venv/__init__.py": "",
            ".venv/dep/__init__.py": "D = 1\n",
            ".venv/dep/core.py": "D = 1\n",
            "venv/__init__.py": "",
            "venv/activate_this.py": "A = 1\n",
            "venv/lib/python3.11/site-packages/dep/core.py": "D = 1\n",
            "build/__init__.py": "",
            "build/pkg/__init__.py": "",
            "build/pkg/core.py": "Y = 2\n",
            "pkg.egg-info/__init__.py": "",
            "pkg.egg-info/hook.py": "H = 1\n",
            "scripts/tool.py": "print('a script')\n",
            "plugins/extra/__init__.py": "",
            "plugins/extra/more.py": "M = 1\n",
        },
    )
    project = discover(target)
    assert paths(project) == ["app.py", "pkg/core.py"]


def test_an_empty_init_is_not_a_module_but_one_with_code_is(tmp_path):
    target = write_project(
        tmp_path / "proj",
        {
            "empty/__init__.py": "\n\n",
            "empty/a.py": "A = 1\n",
            "full/__init__.py": "B = 2\n",
        },
    )
    project = discover(target)
    assert paths(project) == ["empty/a.py", "full/__init__.py"]
    assert [m.dotted for m in project.modules] == ["empty.a", "full"]


def test_single_file_target(tmp_path):
    target = write_project(
        tmp_path / "scripts",
        {
            "tool.py": "def main():\n    return 0\n",
            "other.py": "X = 1\n",
            "tests/test_tool.py": "def test_main():\n    pass\n",
        },
    )
    project = discover(target / "tool.py")

    assert project.target == target.resolve()
    assert project.import_root == target.resolve()
    assert paths(project) == ["tool.py"]
    assert project.modules[0].dotted == "tool"
    assert project.modules[0].file == (target / "tool.py").resolve()
    assert project.test_paths == [target.resolve() / "tests"]


def test_single_file_inside_a_package_keeps_its_package_name(tmp_path):
    """`covsweep run proj/src/shop/cart.py`: cart imports `shop.money`, so it must be run as
    `shop.cart` with src/ on the path; as a top-level `cart` next to it, it cannot be imported."""
    target = write_project(
        tmp_path / "proj",
        {
            "src/shop/__init__.py": "",
            "src/shop/money.py": "def cents(x):\n    return int(x * 100)\n",
            "src/shop/cart.py": "from .money import cents\n\n\ndef total(xs):\n    return sum(cents(x) for x in xs)\n",
        },
    )
    project = discover(target / "src" / "shop" / "cart.py")

    (module,) = project.modules
    assert module.dotted == "shop.cart"
    assert project.import_root / module.path == module.file
    result = subprocess.run(
        [sys.executable, "-c", f"import {module.dotted}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(project.import_root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "patterns, expected",
    [
        (["shop/m*.py"], ["shop/money.py"]),  # relative to the import root
        (["src/shop/cart.py"], ["shop/cart.py"]),  # relative to the target
        (["src/shop/sub/*"], ["shop/sub/deep.py"]),
        (["shop/money.py", "src/shop/cart.py"], ["shop/cart.py", "shop/money.py"]),
        (["*.py"], ["shop/__init__.py", "shop/cart.py", "shop/money.py", "shop/sub/deep.py"]),
    ],
)
def test_module_globs_restrict_the_modules(src_project, patterns, expected):
    project = discover(src_project, patterns)
    assert paths(project) == expected
    assert project.import_root == src_project.resolve() / "src"


def test_globs_matching_nothing_are_bad_input(src_project):
    with pytest.raises(InputError, match=r"nothing/\*\.py"):
        discover(src_project, ["nothing/*.py"])


def test_a_module_with_a_syntax_error_is_discovered_not_raised(tmp_path):
    target = write_project(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/good.py": "X = 1\n",
            "pkg/broken.py": "def f(:\n    pass\n",
        },
    )
    project = discover(target)

    by_path = {m.path: m for m in project.modules}
    assert sorted(by_path) == ["pkg/broken.py", "pkg/good.py"]
    assert by_path["pkg/good.py"].syntax_error is None
    assert by_path["pkg/broken.py"].syntax_error
    assert "pkg/broken.py" in by_path["pkg/broken.py"].syntax_error
    assert "SyntaxError" in by_path["pkg/broken.py"].syntax_error
    unparsed = discover(target, parse=False)
    assert unparsed.modules == [m.model_copy(update={"syntax_error": None}) for m in project.modules]


def test_a_single_file_target_with_a_syntax_error_is_bad_input(tmp_path):
    target = write_project(tmp_path, {"broken.py": "def f(:\n    pass\n"})
    with pytest.raises(InputError, match="not valid Python"):
        discover(target / "broken.py")


def test_a_missing_target_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover(tmp_path / "nowhere")


def test_a_file_that_is_not_python_is_bad_input(tmp_path):
    target = write_project(tmp_path, {"notes.txt": "hello\n"})
    with pytest.raises(InputError, match="neither a directory nor a .py file"):
        discover(target / "notes.txt")


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "# nothing\n"},
        {"tests/test_x.py": "def test_x():\n    pass\n", "setup.py": "", "scripts/run.py": "print(1)\n"},
    ],
)
def test_a_directory_without_modules_is_bad_input(tmp_path, files):
    target = tmp_path / "proj"
    target.mkdir()
    write_project(target, files)
    with pytest.raises(InputError, match="no Python modules found"):
        discover(target)


def test_test_paths_are_the_tests_folders(src_project):
    (src_project / "test").mkdir()
    project = discover(src_project)
    assert project.test_paths == [src_project.resolve() / "tests", src_project.resolve() / "test"]


def test_test_paths_are_top_level_test_files_without_a_tests_folder(tmp_path):
    target = write_project(
        tmp_path / "proj",
        {
            "app.py": "X = 1\n",
            "test_app.py": "def test_x():\n    pass\n",
            "app_test.py": "def test_y():\n    pass\n",
            "helper.py": "Y = 1\n",
        },
    )
    project = discover(target)
    assert project.test_paths == [target.resolve() / "app_test.py", target.resolve() / "test_app.py"]
    assert paths(project) == ["app.py", "helper.py"]


def test_no_tests_at_all_is_an_empty_list(tmp_path):
    target = write_project(tmp_path / "proj", {"app.py": "X = 1\n"})
    assert discover(target).test_paths == []
