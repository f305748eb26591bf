"""Reading a setup.py's requirements without running it: the shapes published packages use."""

from __future__ import annotations

import textwrap

import pytest

from tasks.sandbox.setup_py import NotStatic, SetupDeclarations, metadata_declarations, read_setup_py


def _read(tmp_path, source: str) -> SetupDeclarations:
    path = tmp_path / "setup.py"
    path.write_text(textwrap.dedent(source))
    return read_setup_py(path)


def test_literal_keywords_as_in_most_setup_files(tmp_path):
    declared = _read(
        tmp_path,
        """
        from setuptools import find_packages, setup

        setup(
            name="shop",
            version="1.0",
            packages=find_packages(exclude=["tests"]),
            install_requires=["six>=1.16", "attrs"],
            tests_require=("pytest-mock",),
            extras_require={"docs": ["sphinx"], "socks": ["PySocks>=1.5.6, !=1.5.7"]},
        )
        """,
    )
    assert declared == SetupDeclarations(
        name="shop",
        install_requires=["six>=1.16", "attrs"],
        extras={"docs": ["sphinx"], "socks": ["PySocks>=1.5.6, !=1.5.7"], "test": ["pytest-mock"]},
    )


def test_names_bound_to_literals_and_added_together(tmp_path):
    declared = _read(
        tmp_path,
        """
        import setuptools

        NAME = "shop"
        REQUIRES = ["six"]
        TESTS: list[str] = ["pytest-mock", "freezegun"]
        EXTRAS = {"test": TESTS, "dev": TESTS + ["ruff"], "all": [*TESTS, "sphinx"]}

        if __name__ == "__main__":
            setuptools.setup(name=NAME, install_requires=REQUIRES + ["attrs"], extras_require=EXTRAS)
        """,
    )
    assert declared.name == "shop"
    assert declared.install_requires == ["six", "attrs"]
    assert declared.extras == {
        "test": ["pytest-mock", "freezegun"],
        "dev": ["pytest-mock", "freezegun", "ruff"],
        "all": ["pytest-mock", "freezegun", "sphinx"],
    }


def test_the_setup_py_poetry_generates(tmp_path):
    declared = _read(
        tmp_path,
        """
        # -*- coding: utf-8 -*-
        from setuptools import setup

        packages = ['shop']
        package_data = {'': ['*']}
        install_requires = ['requests>=2.28,<3.0']
        extras_require = {'test': ['pytest-mock>=3.10,<4.0']}

        setup_kwargs = {
            'name': 'shop',
            'version': '0.1.0',
            'packages': packages,
            'package_data': package_data,
            'install_requires': install_requires,
            'extras_require': extras_require,
            'python_requires': '>=3.8,<4.0',
        }

        setup(**setup_kwargs)
        """,
    )
    assert declared == SetupDeclarations(
        name="shop", install_requires=["requests>=2.28,<3.0"], extras={"test": ["pytest-mock>=3.10,<4.0"]}
    )


def test_conditional_extras_keys_carry_their_marker(tmp_path):
    declared = _read(
        tmp_path,
        """
        from setuptools import setup
        setup(
            install_requires='''
                six  # runtime
                attrs>=22
            ''',
            extras_require=dict(
                test=["pytest-mock"],
                **{
                    ":python_version < '3.8'": ["importlib_metadata"],
                    "test:sys_platform == 'win32'": ["colorama; python_version >= '3.7'"],
                },
            ),
        )
        """,
    )
    assert declared.install_requires == ["six", "attrs>=22", "importlib_metadata; python_version < '3.8'"]
    assert declared.extras == {
        "test": ["pytest-mock", "colorama; (python_version >= '3.7') and (sys_platform == 'win32')"],
    }


def test_no_requirements_at_all_is_empty_not_an_error(tmp_path):
    assert _read(tmp_path, "from setuptools import setup\nsetup()\n") == SetupDeclarations()


@pytest.mark.parametrize(
    "source, says",
    [
        (
            "from setuptools import setup\n"
            "def read(name):\n    return open(name).read().splitlines()\n"
            "setup(install_requires=read('requirements.txt'))\n",
            "install_requires is `read('requirements.txt')`",
        ),
        (
            "import sys\nfrom setuptools import setup\nREQUIRES = ['six']\n"
            "if sys.version_info < (3, 8):\n    REQUIRES.append('importlib_metadata')\n"
            "setup(install_requires=REQUIRES)\n",
            "REQUIRES is bound more than once or changed after it is bound",
        ),
        (
            "from setuptools import setup\nEXTRAS = {'test': ['pytest']}\nEXTRAS['all'] = sum(EXTRAS.values(), [])\n"
            "setup(extras_require=EXTRAS)\n",
            "EXTRAS is bound more than once or changed after it is bound",
        ),
        ("from setuptools import setup\nsetup(**get_kwargs())\n", "setup(**...) is `get_kwargs()`"),
        ("from shop.build import main\nmain()\n", "no setup() call"),
        ("from setuptools import setup\nsetup(install_requires=[f'six{V}'])\n", "holds `f'six{V}'`, not a string"),
        ("setup(\n", "does not parse"),
    ],
)
def test_what_is_not_literal_is_named(tmp_path, source, says):
    path = tmp_path / "setup.py"
    path.write_text(source)
    with pytest.raises(NotStatic) as caught:
        read_setup_py(path)
    assert says in str(caught.value)


def test_metadata_requires_dist_split_back_into_runtime_and_extras():
    declared = metadata_declarations(
        "shop",
        [
            "six>=1.0",
            'colorama; sys_platform == "win32"',
            'pytest-mock; python_version >= "3.8" and extra == "test"',
            'sphinx; extra == "docs"',
            'shop[docs]; extra == "dev"',
        ],
        ["freezegun"],
    )
    assert declared == SetupDeclarations(
        name="shop",
        install_requires=["six>=1.0", 'colorama; sys_platform == "win32"'],
        extras={
            "test": ["freezegun", 'pytest-mock; python_version >= "3.8"'],
            "docs": ["sphinx"],
            "dev": ["shop[docs]"],
        },
    )
