"""Delivery as a branch: one new commit on the resolved commit, generated files only, pushed as a new
branch and nothing else; refusals are one clear line; a token shows nowhere."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from tasks.core.errors import InputError
from tasks.core.models import Coverage, ModuleResult
from tasks.core.settings import Settings
from tasks.delivery.branch import commit_message, create_branch, default_branch_name, push_branch
from tasks.delivery.deliver import deliver as deliver_as
from tasks.delivery.staging import Staging
from tasks.project.remote import resolve
from tasks.project.repository import checkout, origin_url
from tests.git_fixtures import CALC, commit_all, files_containing, run_git, state_of, write_generated
from tests.helpers import write_project

MESSAGE = "covsweep: generated tests for 1 module\n\ncalc.py: line coverage 60.0% -> 100.0%\n"
NO_TOKEN = Settings(git_token=None)  # whatever the environment of the test session holds


def assert_one_new_commit_of_generated_files(bare: Path, branch: str, parent: str) -> str:
    commit = run_git("rev-parse", f"refs/heads/{branch}", cwd=bare).strip()
    assert run_git("rev-list", "--parents", "-n", "1", commit, cwd=bare).split() == [commit, parent]
    changed = run_git("diff-tree", "--no-commit-id", "--name-status", "-r", parent, commit, cwd=bare)
    assert changed.splitlines() and all(
        line.split("\t")[1].startswith("tests/generated/") for line in changed.splitlines()
    )
    return commit


def cloned_with_tests(url: str, ref: str | None, where: Path, settings: Settings | None = None):
    made = checkout(url, ref, where, settings or NO_TOKEN)
    write_generated(made.path)
    (made.path / "calc.py").write_text("# an edit outside --out, never delivered\n")
    return made


def deliver(made, url: str, branch: str, settings: Settings | None = NO_TOKEN):
    """The accepted tests of the clone `made` pushed as `branch`; None settings: read the environment."""
    return push_branch(
        made.path, made.commit, made.path / "tests" / "generated", url, branch, MESSAGE, settings=settings
    )


def test_the_branch_is_one_commit_of_the_generated_files_on_the_ref(origin, tmp_path):
    before = origin.refs()
    made = cloned_with_tests(origin.url, "v1", tmp_path / "clone")
    pushed = deliver(made, origin.url, "covsweep/test")
    assert (pushed.branch, pushed.repository) == ("covsweep/test", origin.url)
    assert assert_one_new_commit_of_generated_files(origin.bare, "covsweep/test", origin.first) == pushed.commit
    assert run_git("log", "-1", "--format=%an%n%B", pushed.commit, cwd=origin.bare) == "covsweep\n" + MESSAGE + "\n"
    # Exactly one ref was added to the remote; every other one is where it was.
    assert origin.refs() == before | {"refs/heads/covsweep/test": pushed.commit}
    # The clone keeps no ref or commit of the delivery.
    assert (
        run_git("for-each-ref", cwd=made.path) == ""
        and run_git("rev-parse", "HEAD", cwd=made.path).strip() == made.commit
    )


def test_a_users_work_tree_delivers_a_branch_and_is_left_exactly_as_it_was(origin, tmp_path):
    work = write_project(tmp_path / "mine", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    base = commit_all(work, "calc")
    run_git("checkout", "-q", "-b", "topic", cwd=work)
    (work / "calc.py").write_text((work / "calc.py").read_text() + "\n# staged\n")
    run_git("add", "calc.py", cwd=work)
    write_generated(work)
    bare = tmp_path / "team.git"
    run_git("init", "-q", "--bare", str(bare))
    run_git("remote", "add", "origin", bare.as_uri(), cwd=work)
    run_git("push", "-q", "origin", "main", cwd=work)
    before = state_of(work)

    url = origin_url(work)
    pushed = push_branch(work, base, work / "tests" / "generated", url, "covsweep/mine", MESSAGE, settings=NO_TOKEN)

    assert state_of(work) == before
    assert run_git("symbolic-ref", "HEAD", cwd=work).strip() == "refs/heads/topic"
    assert assert_one_new_commit_of_generated_files(bare, "covsweep/mine", base) == pushed.commit


def test_a_work_tree_without_the_remote_cannot_deliver_a_branch(tmp_path):
    work = write_project(tmp_path / "mine", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    with pytest.raises(InputError, match="has no git remote 'origin' to push a branch to; use --deliver patch"):
        origin_url(work)


def test_a_branch_over_git_daemon(origin, git_daemon, tmp_path):
    made = cloned_with_tests(git_daemon, "feature", tmp_path / "clone")
    deliver(made, git_daemon, "covsweep/daemon")
    assert_one_new_commit_of_generated_files(origin.bare, "covsweep/daemon", origin.feature)


def test_an_existing_branch_is_refused_and_nothing_is_pushed(origin, tmp_path):
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    before = origin.refs()
    with pytest.raises(InputError) as refused:
        deliver(made, origin.url, "feature")
    assert str(refused.value) == f"branch feature exists on {origin.url}"
    assert origin.refs() == before


def test_a_branch_that_appears_after_the_check_is_not_moved_even_forward(origin, tmp_path, monkeypatch):
    """The lease: `feature` sits at an ancestor of the new commit, so a plain push would fast-forward it."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Tester")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tester@example.com")
    made = cloned_with_tests(origin.url, "feature", tmp_path / "clone")
    before = origin.refs()
    with Staging(made.path) as staging:
        tree = staging.tree_with(made.commit, made.path / "tests" / "generated")
        commit = staging.git("commit-tree", tree, "-p", made.commit, input=MESSAGE).strip()
        with pytest.raises(InputError) as refused:
            create_branch(staging, resolve(origin.url, NO_TOKEN), commit, "feature", timeout=60)
    assert str(refused.value) == f"branch feature exists on {origin.url}"
    assert origin.refs() == before


def test_a_pre_receive_hook_that_refuses_is_quoted(origin, tmp_path):
    hook = origin.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: covsweep/* may not be pushed here' >&2\nexit 1\n")
    hook.chmod(0o755)
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    before = origin.refs()
    with pytest.raises(InputError) as refused:
        deliver(made, origin.url, "covsweep/x")
    assert str(refused.value) == (
        f"push of covsweep/x to {origin.url} refused: pre-receive hook declined "
        "(the remote said: protected branch: covsweep/* may not be pushed here)"
    )
    assert origin.refs() == before


def test_a_push_without_permission_says_so(http_remote, tmp_path):
    http_remote.server.read_only = True
    url = http_remote.url_with(f"bob:{http_remote.token}")
    made = cloned_with_tests(url, None, tmp_path / "clone")
    with pytest.raises(InputError) as refused:
        deliver(made, url, "covsweep/ro")
    message = str(refused.value)
    assert message.startswith(f"push to {http_remote.url} refused, permission denied: ") and "403" in message
    assert "\n" not in message and http_remote.token not in message


def test_a_push_to_a_read_only_git_daemon_says_permission_denied(origin, read_only_git_daemon, tmp_path):
    made = cloned_with_tests(read_only_git_daemon, None, tmp_path / "clone")
    before = origin.refs()
    with pytest.raises(InputError) as refused:
        deliver(made, read_only_git_daemon, "covsweep/ro")
    message = str(refused.value)
    assert message.startswith(f"push to {read_only_git_daemon} refused, permission denied: "), message
    assert "access denied" in message and "\n" not in message
    assert origin.refs() == before


def test_an_invalid_branch_name_is_refused(origin, tmp_path):
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    with pytest.raises(InputError, match="is not a valid branch name"):
        deliver(made, origin.url, "bad..name")


def test_nothing_kept_pushes_nothing(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", NO_TOKEN)
    before = origin.refs()
    assert deliver(made, origin.url, "covsweep/none") is None
    assert origin.refs() == before


def test_a_branch_pushed_with_covsweep_git_token_shows_it_nowhere(
    origin, http_remote, process_watch, tmp_path, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COVSWEEP_GIT_TOKEN", http_remote.token)
    made = cloned_with_tests(http_remote.url, "main", tmp_path / "clone", Settings())
    pushed = deliver(made, http_remote.url, "covsweep/http", None)
    with pytest.raises(InputError) as refused:
        deliver(made, http_remote.url, "covsweep/http", None)
    process_watch.stop.set()
    assert_one_new_commit_of_generated_files(origin.bare, "covsweep/http", origin.second)
    assert pushed.repository == http_remote.url
    assert str(refused.value) == f"branch covsweep/http exists on {http_remote.url}"
    assert http_remote.token not in caplog.text
    assert files_containing(http_remote.token, tmp_path) == []
    assert process_watch.sightings > 0 and process_watch.leaks == []


def test_a_wrong_token_on_push_is_an_authentication_error(origin, http_remote, tmp_path):
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    wrong = SecretStr("wrong-" + http_remote.token)
    with pytest.raises(InputError) as refused:
        deliver(made, http_remote.url, "covsweep/w", Settings(git_token=wrong))
    assert str(refused.value).startswith(f"authentication to {http_remote.url} failed")
    assert wrong.get_secret_value() not in str(refused.value)


def test_a_host_without_a_git_identity_commits_as_covsweep(origin, tmp_path, monkeypatch):
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    (tmp_path / "empty-gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.useConfigOnly")  # no identity guessed from the host name
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    pushed = deliver(made, origin.url, "covsweep/anon")
    people = run_git("log", "-1", "--format=%an <%ae>|%cn <%ce>", pushed.commit, cwd=origin.bare).strip()
    assert people == "covsweep <covsweep@localhost>|covsweep <covsweep@localhost>"


def test_deliver_branch_names_the_branch_and_its_commit(origin, tmp_path):
    made = cloned_with_tests(origin.url, None, tmp_path / "clone")
    out = made.path / "tests" / "generated"
    delivery, text = deliver_as(
        "branch", made.path, made.commit, out, url=origin.url, branch="covsweep/d", message=MESSAGE, settings=NO_TOKEN
    )
    commit = assert_one_new_commit_of_generated_files(origin.bare, "covsweep/d", origin.second)
    assert delivery.model_dump() == {"kind": "branch", "patch": None, "branch": "covsweep/d", "commit": commit}
    assert text is None


def test_the_default_branch_name():
    assert (
        default_branch_name("0c5e81f2-9a1b-4e0f-8d2c-1f2e3d4c5b6a", date(2025, 3, 9)) == "covsweep/2025-03-09-0c5e81f2"
    )


def test_the_commit_message_gives_coverage_before_and_after_per_module():
    results = [
        ModuleResult(module="calc.py", status="reached_target", success=True, generated_files=["tests/generated/test_calc.py"],
                     coverage_before=Coverage(line=60.0), coverage=Coverage(line=100.0)),
        ModuleResult(module="shop/cart.py", status="improved", success=True, generated_files=["tests/generated/test_shop_cart.py"],
                     coverage_before=Coverage(line=12.5), coverage=Coverage(line=71.26)),
        ModuleResult(module="shop/money.py", status="unchanged", success=True),
    ]  # fmt: skip
    assert commit_message(results, "run-1") == (
        "covsweep: generated tests for 2 modules\n\n"
        "calc.py: line coverage 60.0% -> 100.0%\n"
        "shop/cart.py: line coverage 12.5% -> 71.3%\n\n"
        "covsweep run run-1\n"
    )
