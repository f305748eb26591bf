"""detect_style: how a project's own tests import it, and the line length its formatter keeps."""

from __future__ import annotations

import pytest

from tasks.core.markers import MARKER
from tasks.project.discover import discover
from tasks.project.style import detect_style
from tests.helpers import write_project

SOURCES = {"src/shop/__init__.py": "", "src/shop/cart.py": "class Cart:\n    pass\n", "src/shop/money.py": "X = 1\n"}


@pytest.mark.parametrize(
    "imports, style",
    [
        ("from shop.cart import Cart\nfrom shop.money import X\n", "names"),
        ("from shop import cart\nfrom shop import money\n", "package_module"),
        ("import shop.cart as cart\nimport shop.money as money\n", "module_alias"),
        ("import shop.cart\nimport shop.money\n", "dotted"),
        # the most common way wins; os and pytest are not the project
        ("import os\nimport pytest\nfrom shop import cart\nimport shop.money\nimport shop.cart\n", "dotted"),
    ],
)
def test_the_import_style_is_the_one_the_projects_tests_use_most(tmp_path, imports, style):
    target = write_project(tmp_path / "p", SOURCES | {"tests/test_shop.py": imports + "\n\ndef test_x():\n    pass\n"})

    detected = detect_style(discover(target))

    assert detected.imports == style
    assert detected.packages == ["shop"]


def test_no_tests_or_only_covsweeps_mean_from_imports(tmp_path):
    generated = f"{MARKER} for shop/cart.py (sha256 0)\nimport shop.cart as module_0\n\n\ndef test_0():\n    pass\n"
    target = write_project(tmp_path / "p", SOURCES | {"tests/generated/test_shop_cart.py": generated})

    assert detect_style(discover(target)).imports == "names"


@pytest.mark.parametrize(
    "files, length",
    [
        ({}, 88),
        ({"pyproject.toml": "[tool.black]\nline-length = 100\n"}, 100),
        ({"pyproject.toml": "[tool.ruff]\nline-length = 110\n\n[tool.black]\nline-length = 100\n"}, 110),
        ({"ruff.toml": "line-length = 79\n", "pyproject.toml": "[tool.ruff]\nline-length = 110\n"}, 79),
        ({"pyproject.toml": "[tool.ruff\nbroken"}, 88),
    ],
)
def test_the_line_length_is_ruffs_else_blacks_else_88(tmp_path, files, length):
    target = write_project(tmp_path / "p", SOURCES | files)

    assert detect_style(discover(target)).line_length == length
