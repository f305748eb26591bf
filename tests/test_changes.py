"""Changed files and lines since a ref, on real git repositories made in the test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.project.changes import changed_since
from tasks.project.discover import discover
from tests.helpers import write_project

MOD_V1 = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
OLD = "def one():\n    return 1\n\n\ndef two():\n    return 2\n\n\ndef three():\n    return 3\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            "-C",
            str(repo),
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path) -> Path:
    """Two commits, then uncommitted, staged, untracked and ignored files."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    write_project(
        root,
        {
            "pkg/__init__.py": "",
            "pkg/keep.py": "KEEP = 1\n",
            "pkg/mod.py": MOD_V1,
            "pkg/old.py": OLD,
            "pkg/gone.py": "GONE = 1\n",
            "notes.txt": "notes\n",
            ".gitignore": "pkg/ignored.py\n",
        },
    )
    commit_all(root, "first")
    git(root, "tag", "v1")
    # Second commit: line 2 modified, lines 7-10 added; a rename with line 6 modified; a deletion; an addition.
    (root / "pkg/mod.py").write_text(MOD_V1.replace("return 1", "return 10") + "\n\ndef c():\n    return 3\n")
    git(root, "mv", "pkg/old.py", "pkg/new.py")
    (root / "pkg/new.py").write_text(OLD.replace("return 2", "return 22"))
    (root / "pkg/gone.py").unlink()
    (root / "pkg/added.py").write_text("A = 1\nB = 2\nC = 3\n")
    (root / "notes.txt").write_text("more notes\n")
    commit_all(root, "second")
    # Not committed: line 6 of mod.py; a staged new file; an untracked file; an ignored one.
    (root / "pkg/mod.py").write_text((root / "pkg/mod.py").read_text().replace("return 2", "return 20"))
    (root / "pkg/staged.py").write_text("S = 1\nT = 2\n")
    git(root, "add", "pkg/staged.py")
    (root / "pkg/fresh.py").write_text("F = 1\nG = 2\n\nH = 3")
    (root / "pkg/ignored.py").write_text("I = 1\n")
    (root / "data.txt").write_text("data\n")
    return root


def test_changed_files_and_lines_equal_a_hand_count(repo):
    changes = changed_since(repo, "v1")

    assert {f.path: (f.status, f.lines) for f in changes.files} == {
        "pkg/mod.py": ("modified", [2, 6, 7, 8, 9, 10]),
        "pkg/new.py": ("renamed", [6]),
        "pkg/added.py": ("added", [1, 2, 3]),
        "pkg/staged.py": ("added", [1, 2]),
        "pkg/fresh.py": ("untracked", [1, 2, 3, 4]),
    }
    assert next(f.previous for f in changes.files if f.path == "pkg/new.py") == "pkg/old.py"
    assert changes.base == git(repo, "rev-parse", "v1").strip()
    assert changes.ref == "v1"


def test_changes_map_to_discovered_modules(repo):
    project = discover(repo)
    changed = changed_since(repo, "v1").modules(project.modules)

    assert changed == {
        "pkg/mod.py": [2, 6, 7, 8, 9, 10],
        "pkg/new.py": [6],
        "pkg/added.py": [1, 2, 3],
        "pkg/staged.py": [1, 2],
        "pkg/fresh.py": [1, 2, 3, 4],
    }
    assert "pkg/keep.py" in {m.path for m in project.modules}


def test_nothing_changed_since_head_of_a_clean_tree(tmp_path):
    root = write_project(tmp_path / "clean", {"pkg/__init__.py": "", "pkg/mod.py": MOD_V1})
    git(root, "init", "-q")
    commit_all(root, "only")

    assert changed_since(root, "HEAD").files == []


def test_a_project_below_the_repository_root_sees_its_own_files(tmp_path):
    root = write_project(tmp_path / "mono", {"proj/pkg/__init__.py": "", "proj/pkg/mod.py": MOD_V1, "other/x.py": ""})
    git(root, "init", "-q")
    commit_all(root, "first")
    (root / "proj/pkg/mod.py").write_text(MOD_V1 + "X = 1\n")
    (root / "other/x.py").write_text("Y = 2\n")
    (root / "other/new.py").write_text("Z = 3\n")

    changes = changed_since(root / "proj", "HEAD")

    assert {f.path: f.lines for f in changes.files} == {"pkg/mod.py": [7]}


def test_a_base_branch_that_moved_on_is_compared_at_the_merge_base(tmp_path):
    root = write_project(tmp_path / "repo", {"pkg/__init__.py": "", "pkg/mod.py": MOD_V1, "pkg/other.py": "O = 1\n"})
    git(root, "init", "-q")
    commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "pkg/mod.py").write_text(MOD_V1 + "\n\ndef c():\n    return 3\n")
    commit_all(root, "feature work")
    git(root, "checkout", "-q", "main")
    (root / "pkg/other.py").write_text("O = 1\nP = 2\n")
    commit_all(root, "main moved on")
    git(root, "checkout", "-q", "feature")

    changes = changed_since(root, "main")

    # other.py differs from main's tip, but the feature branch never touched it.
    assert {f.path: f.lines for f in changes.files} == {"pkg/mod.py": [7, 8, 9, 10]}


def test_a_directory_that_is_not_a_work_tree_is_bad_input(tmp_path):
    plain = write_project(tmp_path / "plain", {"pkg/__init__.py": "", "pkg/mod.py": MOD_V1})

    with pytest.raises(InputError, match="is not a git work tree"):
        changed_since(plain, "HEAD")


@pytest.mark.parametrize("ref", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567", "--output=/tmp/x"])
def test_a_ref_that_does_not_exist_is_bad_input(repo, ref):
    with pytest.raises(InputError, match="is not a commit, branch or tag"):
        changed_since(repo, ref)
