"""Where a run reads its target: a repository cloned at a branch, a tag or a commit into the run's
workspace; a work tree delivered as a patch or a branch cloned at its HEAD, the user's checkout left
alone; --out inside the clone; what is refused before anything is cloned or run. Real git, no Docker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tasks.checks import preflight
from tasks.core.errors import InputError
from tasks.core.options import RunOptions
from tasks.core.settings import Settings
from tasks.delivery.branch import default_branch_name
from tasks.project.repository import AccessDenied
from tasks.project.source import check_source, clone_target, out_in_clone
from tests.git_fixtures import CALC, commit_all, planned, run_git, state_of
from tests.helpers import write_project

NO_TOKEN = Settings(git_token=None)


def work_tree(root: Path, origin_url: str | None = None) -> Path:
    """The user's checkout of CALC in a subfolder `calc` of a repository, one commit, maybe an origin."""
    work = write_project(root, {f"calc/{name}": text for name, text in CALC.items()})
    run_git("init", "-q", "-b", "main", cwd=work)
    commit_all(work, "calc")
    if origin_url:
        run_git("remote", "add", "origin", origin_url, cwd=work)
    return work


@pytest.mark.parametrize("ref", ["feature", "v1", "second"])
def test_a_url_is_cloned_into_the_workspace_at_a_branch_a_tag_or_a_commit(origin, run_cache, ref):
    wanted = {"feature": origin.feature, "v1": origin.first, "second": origin.second}[ref]
    plan = planned(origin.url, ref=origin.second if ref == "second" else ref)
    clone = plan.workspace / "source"
    assert plan.repo == clone.resolve() and plan.project.target == clone.resolve()
    assert run_git("rev-parse", "HEAD", cwd=clone).strip() == wanted
    assert plan.source.model_dump() == {
        "repository": origin.url,
        "ref": origin.second if ref == "second" else ref,
        "commit": wanted,
    }
    assert [m.path for m in plan.project.modules] == ["calc.py"]
    assert plan.out == clone.resolve() / "tests" / "generated"
    assert (plan.deliver, plan.branch, plan.report) == ("patch", None, None)  # the report: result storage only


def test_a_repositorys_out_is_relative_to_its_root_and_never_outside_it(origin, run_cache, tmp_path):
    plan = planned(origin.url, out="tests/covsweep")
    assert plan.out == plan.repo / "tests" / "covsweep"
    for outside in ("../elsewhere", str(tmp_path / "elsewhere")):
        with pytest.raises(InputError, match="is outside the repository: give a folder relative to its root$"):
            planned(origin.url, out=outside)
    assert list((run_cache / "runs").iterdir()) == [plan.workspace]  # a refused plan leaves no clone behind


def test_deliver_branch_plans_a_new_branch_and_refuses_an_existing_one_before_anything_runs(origin, run_cache):
    plan = planned(origin.url, deliver="branch")
    assert plan.branch == default_branch_name(plan.run_id)
    assert planned(origin.url, deliver="branch", branch="covsweep/mine").branch == "covsweep/mine"
    with pytest.raises(InputError, match=f"^branch feature exists on {origin.url}$"):
        planned(origin.url, deliver="branch", branch="feature")
    with pytest.raises(InputError, match="is not a valid branch name"):
        planned(origin.url, deliver="branch", branch="no..dots")


def test_a_work_tree_delivered_as_a_patch_is_cloned_at_head_and_left_as_it_was(tmp_path, run_cache, caplog):
    work = work_tree(tmp_path / "mine")
    head = run_git("rev-parse", "HEAD", cwd=work).strip()
    (work / "calc" / "calc.py").write_text("# not committed\n")
    (work / "calc" / "tests" / "generated").mkdir()
    before = state_of(work)

    with caplog.at_level(logging.WARNING):
        plan = planned(str(work / "calc"), deliver="patch", out=str(work / "calc" / "tests" / "generated"))

    assert state_of(work) == before
    assert "has uncommitted changes: the run measures its last commit" in caplog.text
    assert plan.source.model_dump() == {"repository": str(work.resolve()), "ref": "main", "commit": head}
    assert plan.project.target == plan.repo / "calc" and plan.out == plan.repo / "calc" / "tests" / "generated"
    assert "def sign" in (plan.project.target / "calc.py").read_text()  # HEAD's, not the edit
    assert plan.report == work.resolve() / "calc" / ".covsweep" / "report.json"  # a directory's, as before


def test_a_work_tree_refuses_what_cannot_be_delivered_from_its_clone(tmp_path, run_cache):
    work = work_tree(tmp_path / "mine")
    (work / "calc" / "new").mkdir()
    (work / "calc" / "new" / "mod.py").write_text("X = 1\n")
    with pytest.raises(
        InputError, match=r"calc/new is not in commit [0-9a-f]{12} of .*: commit it, or use --deliver write$"
    ):
        planned(str(work / "calc" / "new"), deliver="patch")
    with pytest.raises(InputError, match="is outside the git work tree .*: it cannot be delivered$"):
        planned(str(work / "calc"), deliver="patch", out=str(tmp_path / "elsewhere"))
    with pytest.raises(InputError, match="has no git remote 'origin' to push a branch to; use --deliver patch$"):
        planned(str(work / "calc"), deliver="branch")
    assert list((run_cache / "runs").iterdir()) == []


def test_a_directory_in_no_work_tree_cannot_be_delivered_and_ref_needs_a_clone(tmp_path, run_cache):
    loose = write_project(tmp_path / "loose", CALC)
    with pytest.raises(InputError, match=f"^--deliver patch needs a git work tree, and {loose} is in none$"):
        planned(str(loose), deliver="patch")
    with pytest.raises(InputError, match="^--ref picks a commit of a repository TARGET, or of a work tree with"):
        planned(str(loose), ref="main")
    assert planned(str(loose)).deliver == "write"  # as before: no clone, no source
    assert planned(str(loose)).repo is None


def test_the_directory_default_is_unchanged(tmp_path, run_cache):
    work = work_tree(tmp_path / "mine")
    plan = planned(str(work / "calc"))
    assert (plan.deliver, plan.source, plan.repo) == ("write", None, None)
    assert plan.project.target == (work / "calc").resolve()
    assert plan.out == (work / "calc" / "tests" / "generated").resolve()
    assert not (plan.workspace / "source").exists()


def test_check_source_refuses_in_one_ls_remote_and_clones_nothing(origin, tmp_path):
    check_source(origin.url, "v1", None, NO_TOKEN)
    with pytest.raises(InputError, match=f"^ref nope does not exist in {origin.url}$"):
        check_source(origin.url, "nope", None, NO_TOKEN)
    with pytest.raises(InputError, match="^cannot reach "):
        check_source((tmp_path / "missing.git").as_uri(), None, "patch", NO_TOKEN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["remote"]


def test_a_token_only_the_secret_block_may_hold_is_asked_for_by_the_plan_not_the_preflight(http_remote):
    # No token anywhere before Prefect starts: the server's refusal is left to the plan, which reads the block.
    check_source(http_remote.url, None, None, NO_TOKEN)
    with pytest.raises(AccessDenied, match="^authentication to http://127.0.0.1:[0-9]+/origin.git failed"):
        check_source(http_remote.url_with("x:wrong"), None, None, NO_TOKEN)


def test_preflight_of_a_url_runs_no_discovery_and_refuses_a_taken_branch(origin, monkeypatch):
    monkeypatch.delenv("COVSWEEP_GIT_TOKEN", raising=False)
    options = RunOptions(target=origin.url, sandbox="local", generator="none", deliver="branch", branch="main")
    with pytest.raises(InputError, match=f"^branch main exists on {origin.url}$"):
        preflight(options)
    assert preflight(options.model_copy(update={"branch": "covsweep/new"})) is None


def test_out_in_clone_maps_a_work_trees_out_into_the_clone(tmp_path, origin):
    work = work_tree(tmp_path / "mine")
    cloned = clone_target(str(work / "calc"), None, "patch", tmp_path / "clone", NO_TOKEN)
    assert cloned.work_tree == work.resolve() and cloned.target == (tmp_path / "clone" / "calc").resolve()
    assert out_in_clone(str(work / "calc" / "t"), cloned) == cloned.root / "calc" / "t"
    assert out_in_clone(None, cloned) is None
