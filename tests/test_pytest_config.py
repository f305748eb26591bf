"""import_root_configured: whether plain pytest from a project's root already imports its modules."""

from __future__ import annotations

import pytest

from tasks.project.discover import discover
from tasks.project.pytest_config import import_root_configured, locate
from tests.helpers import write_project

SRC = {"src/pkg/__init__.py": "", "src/pkg/mod.py": "X = 1\n"}
FLAT = {"pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"}


@pytest.mark.parametrize(
    "layout, files, configured",
    [
        (SRC, {}, False),
        (SRC, {"pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src']\n"}, True),
        (SRC, {"pyproject.toml": "[tool.pytest.ini_options]\npythonpath = 'src'\n"}, True),
        (SRC, {"pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['lib']\n"}, False),
        (SRC, {"pytest.ini": "[pytest]\npythonpath = . src\n"}, True),
        (SRC, {"setup.cfg": "[tool:pytest]\npythonpath = src\n"}, True),
        (SRC, {"setup.cfg": "[metadata]\nname = x\n"}, False),
        (SRC, {"tox.ini": "[pytest]\npythonpath = src\n"}, True),
        # pytest.ini comes first, even empty: the pyproject's pythonpath is not read
        (
            SRC,
            {"pytest.ini": "[pytest]\n", "pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src']\n"},
            False,
        ),
        # a pyproject without a pytest section is no pytest configuration: setup.cfg's counts
        (SRC, {"pyproject.toml": "[project]\nname = 'x'\n", "setup.cfg": "[tool:pytest]\npythonpath = src\n"}, True),
        (FLAT, {"conftest.py": "", "pytest.ini": "[pytest]\n"}, True),
        (FLAT, {"conftest.py": ""}, False),  # no configuration file: the rootdir may be elsewhere
        (FLAT, {"conftest.py": "", "pytest.ini": "[pytest]\naddopts = --import-mode=importlib\n"}, False),
        (SRC, {"conftest.py": "", "pytest.ini": "[pytest]\n"}, False),  # the root is not src/
    ],
)
def test_configured_when_pytest_puts_the_import_root_on_sys_path(tmp_path, layout, files, configured):
    target = write_project(tmp_path / "p", layout | files)
    project = discover(target)

    assert import_root_configured(project, target / "tests" / "generated") is configured


def test_an_out_outside_the_target_is_never_configured(tmp_path):
    target = write_project(tmp_path / "p", SRC | {"pytest.ini": "[pytest]\npythonpath = src\n"})

    assert import_root_configured(discover(target), target / "tests" / "generated")
    assert not import_root_configured(discover(target), tmp_path / "elsewhere")


def test_the_configuration_is_found_upwards_as_pytest_finds_it(tmp_path):
    write_project(tmp_path, {"pytest.ini": "[pytest]\npythonpath = p/src\n"})
    target = write_project(tmp_path / "p", SRC | {"pyproject.toml": "[project]\nname = 'x'\n"})

    assert locate(target).path == tmp_path / "pytest.ini"
    assert import_root_configured(discover(target), target / "tests")
