"""A project's importable names through the file system: what a module job needs instead of the
project's module list."""

from __future__ import annotations

from tasks.project.imports import module_file, top_level_names
from tests.helpers import write_project


def test_a_dotted_name_resolves_to_its_module_or_package_file(tmp_path):
    root = write_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "X = 1\n",
            "pkg/sub/__init__.py": "Y = 2\n",
            "pkg/sub/deep.py": "",
            "single.py": "",
            "notes/readme.txt": "",
        },
    )
    assert module_file(root, "pkg") == root / "pkg" / "__init__.py"
    assert module_file(root, "pkg.mod") == root / "pkg" / "mod.py"
    assert module_file(root, "pkg.sub") == root / "pkg" / "sub" / "__init__.py"
    assert module_file(root, "pkg.sub.deep") == root / "pkg" / "sub" / "deep.py"
    assert module_file(root, "single") == root / "single.py"
    for missing in ("os", "pkg.nothing", "notes", "notes.readme", "", "pkg..mod", "../pkg"):
        assert module_file(root, missing) is None, missing


def test_top_level_names_are_the_modules_and_packages_under_the_import_root(tmp_path):
    root = write_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "single.py": "",
            "data/table.csv": "",
            "not-a-name.py": "",
            ".hidden/__init__.py": "",
        },
    )
    assert top_level_names(root) == {"pkg", "single"}
