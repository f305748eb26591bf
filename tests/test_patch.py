"""Delivery as a patch: the generated files only, `git apply` takes it at the commit, the suite passes."""

from __future__ import annotations

import logging

import pytest

from tasks.core.errors import InputError
from tasks.core.settings import Settings
from tasks.delivery.deliver import deliver
from tasks.delivery.patch import make_patch
from tasks.project.repository import checkout
from tests.git_fixtures import (
    CALC,
    SIGN_TESTS,
    commit_all,
    fresh_clone,
    plain_pytest,
    run_git,
    state_of,
    write_generated,
)
from tests.helpers import write_project


def test_the_patch_applies_to_a_fresh_clone_and_its_suite_passes(origin, tmp_path):
    made = checkout(origin.url, "v1", tmp_path / "clone", Settings(git_token=None))
    generated = write_generated(made.path)
    assert plain_pytest(made.path).returncode == 0
    patch = make_patch(made.path, made.commit, made.path / "tests" / "generated")

    # calc.py's project has no pytest configuration: covsweep's conftest.py puts its root on sys.path
    assert patch.startswith("diff --git a/tests/generated/conftest.py b/tests/generated/conftest.py\nnew file mode")
    assert (
        "diff --git a/tests/generated/test_calc_covsweep.py b/tests/generated/test_calc_covsweep.py\nnew file mode"
        in patch
    )
    fresh = fresh_clone(origin.url, made.commit, tmp_path / "fresh")
    (tmp_path / "covsweep.patch").write_text(patch)
    run_git("apply", "--check", str(tmp_path / "covsweep.patch"), cwd=fresh)
    run_git("apply", str(tmp_path / "covsweep.patch"), cwd=fresh)
    assert (fresh / "tests" / "generated" / "test_calc_covsweep.py").read_bytes() == generated.read_bytes()
    conftest = made.path / "tests" / "generated" / "conftest.py"
    assert (fresh / "tests" / "generated" / "conftest.py").read_bytes() == conftest.read_bytes()
    assert (
        run_git("status", "--porcelain", "--untracked-files=all", cwd=fresh)
        == "?? tests/generated/conftest.py\n?? tests/generated/test_calc_covsweep.py\n"
    )
    suite = plain_pytest(fresh)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "PASSED tests/generated/test_calc_covsweep.py::test_sign" in suite.stdout and "2 passed" in suite.stdout


def test_only_covsweep_files_under_out_are_in_the_patch(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", Settings(git_token=None))
    write_generated(made.path)
    out = made.path / "tests" / "generated"
    (out / "notes.py").write_text("# someone else's file\n")
    (out / "__pycache__").mkdir()
    (out / "__pycache__" / "test_calc.cpython-311.pyc").write_bytes(b"\0cache")
    (made.path / "calc.py").write_text("changed = True\n")
    patch = make_patch(made.path, made.commit, out)
    changed = [line for line in patch.splitlines() if line.startswith("diff --git")]
    assert changed == [
        "diff --git a/tests/generated/conftest.py b/tests/generated/conftest.py",
        "diff --git a/tests/generated/test_calc_covsweep.py b/tests/generated/test_calc_covsweep.py",
    ]


def test_a_generated_file_already_in_the_repository_is_updated(origin, tmp_path):
    work = fresh_clone(origin.url, origin.second, tmp_path / "work")
    write_generated(work)
    base = commit_all(work, "tests from an earlier covsweep run")
    write_generated(work, SIGN_TESTS.replace("sign(5) == 1", "sign(5) == 1\n    assert sign(0.5) == 1"))
    patch = make_patch(work, base, work / "tests" / "generated")
    assert "\nindex " in patch and "new file mode" not in patch and "+    assert sign(0.5) == 1" in patch
    fresh = fresh_clone(work.as_uri(), base, tmp_path / "fresh")
    (tmp_path / "p").write_text(patch)
    run_git("apply", "--check", str(tmp_path / "p"), cwd=fresh)


def test_a_users_work_tree_gives_a_patch_and_is_left_exactly_as_it_was(tmp_path):
    work = write_project(tmp_path / "mine", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    base = commit_all(work, "calc")
    (work / "calc.py").write_text((work / "calc.py").read_text() + "\n# work in progress\n")
    run_git("add", "calc.py", cwd=work)  # something staged: the index must keep it
    (work / "scratch.txt").write_text("untracked\n")
    write_generated(work)
    before = state_of(work)

    patch = make_patch(work / "tests", base, work / "tests" / "generated")

    assert state_of(work) == before
    assert patch.count("diff --git") == 2
    assert "b/tests/generated/conftest.py" in patch and "b/tests/generated/test_calc_covsweep.py" in patch
    fresh = fresh_clone(work.as_uri(), base, tmp_path / "fresh")
    (tmp_path / "p").write_text(patch)
    run_git("apply", "--check", str(tmp_path / "p"), cwd=fresh)


def test_nothing_kept_delivers_nothing_and_says_so(origin, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    made = checkout(origin.url, None, tmp_path / "clone", Settings(git_token=None))
    (made.path / "tests" / "generated").mkdir()
    assert make_patch(made.path, made.commit, made.path / "tests" / "generated") is None
    assert "no test was kept: nothing to deliver" in caplog.text
    assert make_patch(made.path, made.commit, made.path / "tests" / "missing") is None


def test_out_outside_the_work_tree_cannot_be_delivered(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", Settings(git_token=None))
    with pytest.raises(InputError, match="outside the git work tree"):
        make_patch(made.path, made.commit, tmp_path / "elsewhere")


def test_a_directory_that_is_no_work_tree_is_one_line(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is not in a git work tree"):
        make_patch(tmp_path / "plain", "HEAD", tmp_path / "plain" / "tests")


def test_deliver_patch_writes_the_file_the_report_names(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", Settings(git_token=None))
    write_generated(made.path)
    patch_file = tmp_path / "here" / ".covsweep" / "covsweep.patch"
    delivery, text = deliver("patch", made.path, made.commit, made.path / "tests" / "generated", patch_file=patch_file)
    assert delivery.model_dump() == {"kind": "patch", "patch": str(patch_file), "branch": None, "commit": None}
    assert patch_file.read_text() == text == make_patch(made.path, made.commit, made.path / "tests" / "generated")


def test_deliver_patch_with_nothing_kept_names_no_patch_and_writes_none(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", Settings(git_token=None))
    patch_file = tmp_path / "here" / "covsweep.patch"
    delivery, text = deliver("patch", made.path, made.commit, made.path / "tests" / "generated", patch_file=patch_file)
    assert (delivery.patch, text) == (None, None) and not patch_file.exists()
