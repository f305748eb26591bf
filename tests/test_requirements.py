"""Reading what a target declares it needs: pyproject.toml, setup.cfg, requirements files."""

from __future__ import annotations

import pytest

from tasks.core.errors import InputError
from tasks.sandbox.requirements import read_declared
from tasks.sandbox.setup_py import metadata_declarations
from tests.helpers import write_project


def test_nothing_declared_is_empty(tmp_path):
    write_project(tmp_path, {"pkg/__init__.py": "", "pyproject.toml": '[project]\nname = "pkg"\n'})
    assert read_declared(tmp_path).requirements == []


def test_pyproject_runtime_and_test_sets_but_not_other_extras(tmp_path):
    write_project(
        tmp_path,
        {
            "pyproject.toml": """
        [project]
        name = "My_Pkg"
        dependencies = ["six>=1.16", "attrs ; python_version >= '3.8'"]
        [project.optional-dependencies]
        Test = ["pytest-mock"]
        docs = ["sphinx"]
        all = ["my-pkg[test,docs]"]
        [dependency-groups]
        lint = ["ruff"]
        dev = [{include-group = "lint"}, "my_pkg[all]"]
    """
        },
    )
    assert read_declared(tmp_path).requirements == [
        'attrs; python_version >= "3.8"',
        "pytest-mock",
        "ruff",
        "six>=1.16",
        "sphinx",
    ]


def test_requirements_files_with_includes_options_and_what_is_skipped(tmp_path):
    write_project(
        tmp_path,
        {
            "requirements.txt": """
            # runtime
            --index-url https://example.invalid/simple
            -r base.txt
            requests==2.32.3 --hash=sha256:0123  # pinned
            tomli ; python_version < "3.11"
            -e .
            ./vendored/thing
            git+https://github.com/example/thing.git
            pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl
            long-name\\
            >=2
        """,
            "base.txt": "six\n-r requirements.txt\n",
            "requirements-dev.txt": "pytest-mock>=3\n",
            "docs-requirements.txt": "sphinx\n",
        },
    )
    assert read_declared(tmp_path).requirements == [
        "long-name>=2",
        "pytest-mock>=3",
        "requests==2.32.3",
        "six",
        'tomli; python_version < "3.11"',
    ]


def test_setup_cfg(tmp_path):
    write_project(
        tmp_path,
        {
            "setup.cfg": """
        [metadata]
        name = pkg
        [options]
        install_requires =
            six  # comment
            attrs>=22
        tests_require = pytest-mock
        [options.extras_require]
        testing = pkg[extra]
        extra = tzdata
        docs = sphinx
    """
        },
    )
    assert read_declared(tmp_path).requirements == ["attrs>=22", "pytest-mock", "six", "tzdata"]


def test_setup_py_only(tmp_path):
    write_project(
        tmp_path,
        {
            "setup.py": """
        from setuptools import setup

        TESTS = ["pytest-mock"]
        setup(
            name="Shop",
            install_requires=["Six>=1.16"],
            tests_require=TESTS,
            extras_require={"testing": ["shop[fast]"], "fast": ["ujson"], "docs": ["sphinx"]},
        )
    """
        },
    )
    assert read_declared(tmp_path).requirements == ["pytest-mock", "six>=1.16", "ujson"]
    assert read_declared(tmp_path).setup_py_unread == ""


def test_setup_py_with_setup_cfg_and_pyproject_adds_up(tmp_path):
    write_project(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\nsetup(install_requires=['six'], extras_require={'test': ['mock']})\n",
            "setup.cfg": "[metadata]\nname = shop\n[options.extras_require]\ntest = pytest-mock\n",
            "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n',
        },
    )
    assert read_declared(tmp_path).requirements == ["mock", "pytest-mock", "six"]


def test_setup_py_that_is_not_literal_says_why_and_takes_what_the_hook_read(tmp_path):
    write_project(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\nsetup(install_requires=open('deps.in').read().split())\n",
            "requirements-dev.txt": "ruff\n",
        },
    )
    unread = read_declared(tmp_path)
    assert unread.requirements == ["ruff"]
    assert unread.setup_py_unread == "install_requires is `open('deps.in').read().split()`"
    hooked = read_declared(tmp_path, metadata_declarations("shop", ["six", 'mock; extra == "test"'], []))
    assert hooked.requirements == ["mock", "ruff", "six"]
    assert hooked.setup_py_unread == ""


def test_duplicates_across_sources_appear_once(tmp_path):
    write_project(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "p"\ndependencies = ["Six >= 1.16"]\n',
            "requirements.txt": "six>=1.16\n",
        },
    )
    assert read_declared(tmp_path).requirements == ["six>=1.16"]


@pytest.mark.parametrize(
    "files, named",
    [
        ({"pyproject.toml": '[project]\ndependencies = ["six >>> 1"]\n'}, "six >>> 1"),
        ({"pyproject.toml": "[project\n"}, "not valid TOML"),
        ({"setup.cfg": "[options]\ninstall_requires =\n    ==1.0\n"}, "==1.0"),
        ({"pyproject.toml": '[dependency-groups]\na = [{include-group = "a"}]\n'}, "includes itself"),
        ({"setup.py": "from setuptools import setup\nsetup(install_requires=['six >>> 1'])\n"}, "six >>> 1"),
    ],
)
def test_unreadable_declarations_are_input_errors(tmp_path, files, named):
    write_project(tmp_path, files)
    with pytest.raises(InputError, match=named.replace("[", r"\[")) as caught:
        read_declared(tmp_path)
    assert "\n" not in str(caught.value)
