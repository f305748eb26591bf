"""Delivering a run's accepted tests: the report's `source` and `delivery`, a patch that `git apply` takes
at the resolved commit, a branch of one commit on it, a refused push that loses nothing, a token that
shows nowhere; first on real plans without Docker, then through `covsweep run` and `covsweep submit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from covsweep.cli import delivery_line
from tasks.core.models import Coverage, ModuleResult, Report, Totals
from tasks.core.plan import Plan
from tasks.deliver import patch_markdown
from tasks.delivery.branch import commit_message
from tasks.delivery.deliver import deliver_run
from tests.fake_llm import API_KEY, code_answer
from tests.git_fixtures import (
    CALC,
    SIGN_TESTS,
    commit_all,
    files_containing,
    fresh_clone,
    plain_pytest,
    planned,
    run_git,
    state_of,
    write_generated,
)
from tests.helpers import write_project
from tests.service_fixtures import api

SIGN_LINE = "calc.py: line coverage 60.0% -> 100.0%"


def assert_applies_and_passes(patch: Path, url: str, commit: str, where: Path) -> None:
    fresh = fresh_clone(url, commit, where)
    run_git("apply", "--check", str(patch), cwd=fresh)
    run_git("apply", str(patch), cwd=fresh)
    added = run_git("status", "--porcelain", "--untracked-files=all", cwd=fresh).splitlines()
    assert added and all(line.startswith("?? tests/generated/") for line in added), added
    suite = plain_pytest(fresh)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "PASSED tests/generated/test_calc_covsweep.py::test_sign" in suite.stdout


def one_new_commit(bare: Path, branch: str, parent: str) -> tuple[str, str]:
    """(the branch's commit, its message): one commit on `parent`, files under tests/generated only."""
    commit = run_git("rev-parse", f"refs/heads/{branch}", cwd=bare).strip()
    assert run_git("rev-list", "--parents", "-n", "1", commit, cwd=bare).split() == [commit, parent]
    changed = run_git("diff-tree", "--no-commit-id", "--name-only", "-r", parent, commit, cwd=bare).split()
    assert changed and all(path.startswith("tests/generated/") for path in changed), changed
    return commit, run_git("log", "-1", "--format=%B", commit, cwd=bare)


# Real plans (local sandbox, measure only: no Docker, no Prefect), tests written as a run writes them.


def concluded(plan: Plan, kept: bool = True) -> Report:
    """The report conclude would give: calc.py raised from 60% to 100% by the tests written in the plan's clone."""
    files = [str(write_generated(plan.project.target).relative_to(plan.project.target))] if kept else []
    calc = ModuleResult(
        module="calc.py",
        status="reached_target" if kept else "unchanged",
        success=True,
        generated_files=files,
        coverage_before=Coverage(line=60.0),
        coverage=Coverage(line=100.0 if kept else 60.0),
    )
    return Report(
        run_id=plan.run_id,
        target=str(plan.project.target),
        generator="llm",
        coverage_target=80.0,
        started_at="2026-01-01T00:00:00",
        finished_at="2026-01-01T00:01:00",
        duration_s=60.0,
        totals=Totals(modules=1, succeeded=1),
        modules=[calc],
    )


@pytest.mark.parametrize("ref", ["main", "v1", "feature-sha"])
def test_a_patch_is_written_beside_the_report_and_applies_at_the_resolved_commit(origin, run_cache, tmp_path, ref):
    plan = planned(origin.url, ref=origin.feature if ref == "feature-sha" else ref, report=str(tmp_path / "r.json"))
    delivered = deliver_run(plan, concluded(plan))

    report = delivered.report
    assert (report.target, report.source, delivered.refused) == (origin.url, plan.source, None)
    assert report.delivery.model_dump() == {
        "kind": "patch",
        "patch": str(tmp_path / "covsweep.patch"),
        "branch": None,
        "commit": None,
    }
    assert (tmp_path / "covsweep.patch").read_text() == delivered.patch
    assert_applies_and_passes(tmp_path / "covsweep.patch", origin.url, plan.source.commit, tmp_path / "fresh")


def test_nothing_kept_delivers_nothing_and_no_earlier_patch_stays_beside_the_report(origin, run_cache, tmp_path):
    (tmp_path / "covsweep.patch").write_text("an earlier run's patch\n")
    plan = planned(origin.url, report=str(tmp_path / "r.json"))
    delivered = deliver_run(plan, concluded(plan, kept=False))
    assert delivered.patch is None and delivered.report.delivery.model_dump()["patch"] is None
    assert not (tmp_path / "covsweep.patch").exists()


def test_a_branch_is_one_commit_on_the_ref_saying_coverage_before_and_after(origin, run_cache):
    plan = planned(origin.url, ref="feature", deliver="branch", branch="covsweep/night")
    report = concluded(plan)
    delivered = deliver_run(plan, report)

    commit, message = one_new_commit(origin.bare, "covsweep/night", origin.feature)
    assert message == commit_message(report.modules, plan.run_id) + "\n" and SIGN_LINE in message
    assert delivered.report.delivery.model_dump() == {
        "kind": "branch",
        "patch": None,
        "branch": "covsweep/night",
        "commit": commit,
    }


def test_a_refused_push_says_why_and_keeps_the_tests_in_the_patch(origin, run_cache, tmp_path):
    hook = origin.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: covsweep/* needs a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    plan = planned(origin.url, deliver="branch", branch="covsweep/night", report=str(tmp_path / "r.json"))
    before = origin.refs()

    delivered = deliver_run(plan, concluded(plan))

    assert origin.refs() == before
    assert delivered.refused == (
        f"push of covsweep/night to {origin.url} refused: pre-receive hook declined (the remote said: "
        f"protected: covsweep/* needs a review); the tests are in {tmp_path / 'covsweep.patch'}"
    )
    assert delivered.report.delivery.model_dump() == {
        "kind": "branch",
        "patch": str(tmp_path / "covsweep.patch"),
        "branch": None,
        "commit": None,
    }
    assert_applies_and_passes(tmp_path / "covsweep.patch", origin.url, plan.source.commit, tmp_path / "fresh")


def test_a_work_tree_delivers_a_patch_and_a_branch_and_the_checkout_stays_as_it_was(tmp_path, run_cache):
    bare = tmp_path / "team.git"
    run_git("init", "-q", "--bare", str(bare))
    work = write_project(tmp_path / "mine", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    head = commit_all(work, "calc")
    run_git("remote", "add", "origin", bare.as_uri(), cwd=work)
    run_git("push", "-q", "origin", "main", cwd=work)
    (work / "README").write_text("work in progress\n")
    run_git("add", "README", cwd=work)
    before = state_of(work)

    as_patch = planned(str(work), deliver="patch", report=str(tmp_path / "p" / "r.json"))
    patched = deliver_run(as_patch, concluded(as_patch))
    as_branch = planned(str(work), deliver="branch", branch="covsweep/mine")
    pushed = deliver_run(as_branch, concluded(as_branch))

    assert state_of(work) == before  # index, HEAD, refs, objects, work tree
    assert not (work / "tests" / "generated").exists()
    assert patched.report.source.model_dump() == {"repository": str(work.resolve()), "ref": "main", "commit": head}
    run_git("apply", "--check", str(tmp_path / "p" / "covsweep.patch"), cwd=work)
    commit, _ = one_new_commit(bare, "covsweep/mine", head)
    assert pushed.report.delivery.commit == commit


def test_covsweep_run_says_when_nothing_was_delivered(origin, run_cache, tmp_path):
    for deliver in ("patch", "branch"):
        plan = planned(origin.url, deliver=deliver, branch="covsweep/none", report=str(tmp_path / "r.json"))
        delivered = deliver_run(plan, concluded(plan, kept=False))
        assert delivery_line(delivered.report) == "no test was kept: nothing delivered"
    assert "refs/heads/covsweep/none" not in origin.refs() and not (tmp_path / "covsweep.patch").exists()


def test_a_directory_written_into_is_reported_as_before_with_its_delivery_named(tmp_path, run_cache):
    plan = planned(str(write_project(tmp_path / "calc", CALC)))
    report = concluded(plan)
    delivered = deliver_run(plan, report)
    assert delivered.report == report.model_copy(update={"delivery": delivered.report.delivery})
    assert delivered.report.delivery.model_dump() == {"kind": "write", "patch": None, "branch": None, "commit": None}
    assert (delivered.patch, delivered.report.source) == (None, None)


def test_a_token_in_the_target_url_is_in_neither_the_report_nor_the_patch(http_remote, run_cache, tmp_path):
    plan = planned(http_remote.url_with(f"x-access-token:{http_remote.token}"), report=str(tmp_path / "r.json"))
    delivered = deliver_run(plan, concluded(plan))
    assert delivered.report.target == delivered.report.source.repository == http_remote.url
    assert http_remote.token not in delivered.report.to_json() + delivered.patch
    assert files_containing(http_remote.token, tmp_path / "cache", tmp_path / "covsweep.patch") == []


def test_the_patch_artifact_fences_the_patch_whatever_backticks_it_holds():
    patch = "+text = '```python'\n+more = '````'\n"
    report = Report.model_construct(run_id="r", source=None)  # all the artifact reads of it
    text = patch_markdown(patch, report)
    assert f"`````diff\n{patch}`````\n" in text and "covsweep results r --patch" in text


# Through the command line: a scripted LLM writes calc.py's tests, a real sandbox keeps them.


def covsweep(cwd: Path, fake_llm, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`covsweep run` in `cwd`, the LLM answering with tests of calc.sign that pass and add coverage."""
    fake_llm.script(*[code_answer(SIGN_TESTS) for _ in range(3)])
    cwd.mkdir(parents=True, exist_ok=True)
    options = ["--generator", "llm", "--models", "m/one", "--llm-base-url", fake_llm.base_url]
    quick = ["--mutation", "off", "--reruns", "1", "--max-iterations", "1", "--timeout", "120"]
    return subprocess.run(
        [sys.executable, "-m", "covsweep", "run", *args, *options, *quick],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COVSWEEP_LLM_API_KEY": API_KEY, **(env or {})},
    )


def report_in(cwd: Path) -> dict:
    return json.loads((cwd / ".covsweep" / "report.json").read_text())


@pytest.mark.docker
@pytest.mark.server
@pytest.mark.parametrize("ref", ["v1", "feature-sha"])
def test_covsweep_run_on_a_url_leaves_a_patch_in_the_current_directory(origin, fake_llm, sandbox_image, tmp_path, ref):
    wanted = origin.feature if ref == "feature-sha" else ref
    cwd = tmp_path / "here"
    result = covsweep(cwd, fake_llm, origin.url, "--ref", wanted)

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_in(cwd)
    commit = origin.first if ref == "v1" else origin.feature
    assert report["source"] == {"repository": origin.url, "ref": wanted, "commit": commit}
    assert report["target"] == origin.url
    assert report["delivery"] == {
        "kind": "patch",
        "patch": str(cwd / ".covsweep" / "covsweep.patch"),
        "branch": None,
        "commit": None,
    }
    assert report["modules"][0]["generated_files"] == ["tests/generated/test_calc_covsweep.py"]
    assert f"patch: {cwd / '.covsweep' / 'covsweep.patch'} (`git apply` it at commit {commit[:12]})" in result.stdout
    assert_applies_and_passes(cwd / ".covsweep" / "covsweep.patch", origin.url, commit, tmp_path / "fresh")
    assert sorted(p.name for p in cwd.rglob("*")) == [".covsweep", "covsweep.log", "covsweep.patch", "report.json"]


@pytest.mark.docker
@pytest.mark.server
def test_covsweep_run_pushes_a_branch_over_git_daemon(origin, git_daemon, fake_llm, sandbox_image, tmp_path):
    before = origin.refs()
    result = covsweep(tmp_path, fake_llm, git_daemon, "--ref", "main", "--deliver", "branch", "--branch", "covsweep/t")

    assert result.returncode == 0, result.stderr[-3000:]
    commit, message = one_new_commit(origin.bare, "covsweep/t", origin.second)
    assert origin.refs() == before | {"refs/heads/covsweep/t": commit}
    report = report_in(tmp_path)
    assert report["delivery"] == {"kind": "branch", "patch": None, "branch": "covsweep/t", "commit": commit}
    [calc] = report["modules"]
    line = f"calc.py: line coverage {calc['coverage_before']['line']:.1f}% -> {calc['coverage']['line']:.1f}%"
    assert message.splitlines()[0] == "covsweep: generated tests for 1 module" and line in message.splitlines()
    assert calc["coverage"]["line"] > calc["coverage_before"]["line"]
    assert f"branch: covsweep/t pushed, commit {commit[:12]} on {origin.second[:12]}" in result.stdout


def test_an_existing_branch_is_one_line_before_anything_runs(origin, git_daemon, tmp_path):
    before = origin.refs()
    result = subprocess.run(
        [sys.executable, "-m", "covsweep", "run", git_daemon, "--deliver", "branch", "--branch", "feature"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (2, f"covsweep: error: branch feature exists on {git_daemon}\n")
    assert origin.refs() == before and list(tmp_path.iterdir()) == [origin.bare.parent]


@pytest.mark.docker
@pytest.mark.server
def test_a_push_the_remote_refuses_is_exit_2_saying_why(origin, git_daemon, fake_llm, sandbox_image, tmp_path):
    hook = origin.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: covsweep/* needs a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = origin.refs()
    result = covsweep(tmp_path / "here", fake_llm, git_daemon, "--deliver", "branch", "--branch", "covsweep/t")

    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("covsweep: error:")]
    patch = tmp_path / "here" / ".covsweep" / "covsweep.patch"
    assert errors == [
        f"covsweep: error: push of covsweep/t to {git_daemon} refused: pre-receive hook declined (the remote "
        f"said: protected: covsweep/* needs a review); the tests are in {patch}"
    ]
    assert origin.refs() == before
    assert report_in(tmp_path / "here")["delivery"]["patch"] == str(patch)
    assert_applies_and_passes(patch, origin.url, origin.second, tmp_path / "fresh")


@pytest.mark.docker
@pytest.mark.server
def test_a_push_to_a_remote_that_may_only_be_read_is_exit_2_saying_permission_denied(
    origin, read_only_git_daemon, fake_llm, sandbox_image, tmp_path
):
    before = origin.refs()
    result = covsweep(
        tmp_path / "here", fake_llm, read_only_git_daemon, "--deliver", "branch", "--branch", "covsweep/t"
    )

    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("covsweep: error:")]
    patch = tmp_path / "here" / ".covsweep" / "covsweep.patch"
    assert len(errors) == 1 and errors[0].startswith(
        f"covsweep: error: push to {read_only_git_daemon} refused, permission denied: "
    ), errors
    assert errors[0].endswith(f"; the tests are in {patch}")
    assert origin.refs() == before
    assert_applies_and_passes(patch, origin.url, origin.second, tmp_path / "fresh")


@pytest.mark.docker
@pytest.mark.server
@pytest.mark.parametrize("given", ["in the url", "as COVSWEEP_GIT_TOKEN"])
def test_a_token_shows_in_nothing_the_run_leaves(
    http_remote, process_watch, origin, fake_llm, sandbox_image, tmp_path, given
):
    token = http_remote.token
    in_url = given == "in the url"
    target = http_remote.url_with(f"x-access-token:{token}") if in_url else http_remote.url
    cwd, cache = tmp_path / "here", tmp_path / "cache"
    result = covsweep(
        cwd,
        fake_llm,
        target,
        "--deliver",
        "branch" if in_url else "patch",
        env={"COVSWEEP_CACHE_DIR": str(cache), **({} if in_url else {"COVSWEEP_GIT_TOKEN": token})},
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_in(cwd)
    assert report["source"]["repository"] == report["target"] == http_remote.url
    if in_url:
        one_new_commit(origin.bare, report["delivery"]["branch"], origin.second)
    else:
        assert report["delivery"]["patch"] == str(cwd / ".covsweep" / "covsweep.patch")
    assert token not in result.stdout + result.stderr
    assert files_containing(token, cwd, cache, Path(os.environ["PREFECT_HOME"])) == []
    # Only the command the test typed holds it (a user who types a token sees it in their shell's history).
    assert process_watch.sightings > 0
    assert [line for line in process_watch.leaks if " -m covsweep run " not in line] == []
    assert not any((cache / "runs").iterdir())  # the workspace and its clone are gone


@pytest.mark.docker
@pytest.mark.server
def test_covsweep_run_on_a_work_tree_with_a_patch_leaves_the_checkout_as_it_was(fake_llm, sandbox_image, tmp_path):
    work = write_project(tmp_path / "mine", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    head = commit_all(work, "calc")
    before = state_of(work)
    result = covsweep(tmp_path, fake_llm, str(work), "--deliver", "patch", "--report", str(tmp_path / "r.json"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert state_of(work) == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["source"] == {"repository": str(work.resolve()), "ref": "main", "commit": head}
    assert report["delivery"]["patch"] == str(tmp_path / "covsweep.patch")
    assert_applies_and_passes(tmp_path / "covsweep.patch", work.as_uri(), head, tmp_path / "fresh")


# As a service: submitted from a folder with nothing of the project, cloned by the worker.


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"COVSWEEP_LLM_API_KEY": API_KEY}


def test_covsweep_submit_with_a_url_and_results_patch(service, origin, fake_llm, tmp_path):
    fake_llm.script(*[code_answer(SIGN_TESTS) for _ in range(3)])
    llm = ["--generator", "llm", "--models", "m/one", "--llm-base-url", fake_llm.base_url]
    quick = ["--mutation", "off", "--reruns", "1", "--max-iterations", "1", "--timeout", "120"]
    empty = tmp_path / "empty"  # where the user is: nothing of the project
    empty.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "covsweep", *args]
        return subprocess.run(command, cwd=empty, capture_output=True, text=True, timeout=600, env=service.env)

    secret = cli("submit", "https://x:tok_secret@example.com/team/calc.git", *llm)
    assert secret.returncode == 2 and secret.stderr.startswith("covsweep: error: a token in the URL would be stored")
    assert "tok_secret" not in secret.stderr
    submitted = cli("submit", origin.url, "--ref", "v1", *llm, *quick)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()

    waited = cli("results", run_id, "--wait", "--timeout", "300", "--poll", "1")
    assert waited.returncode == 0, waited.stderr + service.worker_log.read_text()[-4000:]
    report = json.loads(waited.stdout)
    assert report["source"] == {"repository": origin.url, "ref": "v1", "commit": origin.first}
    assert report["delivery"] == {"kind": "patch", "patch": None, "branch": None, "commit": None}
    printed = cli("results", run_id, "--patch")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "p.patch").write_text(printed.stdout)
    assert_applies_and_passes(tmp_path / "p.patch", origin.url, origin.first, tmp_path / "fresh")
    with api(service) as client:
        artifacts = {a.key: a for a in client.read_artifacts() if str(a.flow_run_id) == run_id}
    assert printed.stdout in artifacts["covsweep-patch"].data
    assert list(empty.iterdir()) == []

    measured = cli("submit", origin.url, "--generator", "none", "--timeout", "120").stdout.strip()
    assert cli("results", measured, "--wait", "--timeout", "300", "--poll", "1").returncode == 0
    none = cli("results", measured, "--patch")
    assert (none.returncode, none.stdout) == (1, "")
    assert none.stderr == f"covsweep: run {measured} has no patch: it kept no test, or did not deliver as a patch\n"
