"""Cloning a repository TARGET: at a branch, a tag, a commit or the remote's HEAD, shallow where it can;
one-line errors; a clone per host and commit; a token that shows nowhere."""

from __future__ import annotations

import logging
import subprocess

import pytest
from pydantic import SecretStr

from tasks.core.errors import InputError
from tasks.core.settings import Settings
from tasks.project.changes import changed_since
from tasks.project.repository import checkout, checkout_cached, fetch_history_for, probe
from tests.git_fixtures import files_containing, run_git
from tests.helpers import free_port, in_threads


def no_token() -> Settings:
    return Settings(git_token=None)


def is_shallow(path) -> bool:
    return run_git("rev-parse", "--is-shallow-repository", cwd=path).strip() == "true"


def test_default_is_the_remote_head_shallow_and_named_by_its_branch(origin, tmp_path):
    made = checkout(origin.url, None, tmp_path / "clone", no_token())
    assert (made.commit, made.ref, made.repository) == (origin.second, "main", origin.url)
    assert run_git("rev-parse", "HEAD", cwd=made.path).strip() == origin.second
    assert is_shallow(made.path) and (made.path / "README").exists()
    assert run_git("status", "--porcelain", cwd=made.path) == ""
    assert made.source.model_dump() == {"repository": origin.url, "ref": "main", "commit": origin.second}


@pytest.mark.parametrize(("ref", "expected"), [("feature", "feature"), ("v1", "first"), ("refs/heads/main", "second")])
def test_a_branch_or_a_tag_is_cloned_shallow(origin, tmp_path, ref, expected):
    made = checkout(origin.url, ref, tmp_path / "clone", no_token())
    assert made.commit == getattr(origin, expected) and made.ref == ref
    assert run_git("rev-parse", "HEAD", cwd=made.path).strip() == made.commit
    assert is_shallow(made.path)


def test_a_full_commit_sha_is_fetched_alone(origin, tmp_path):
    made = checkout(origin.url, origin.first, tmp_path / "clone", no_token())
    assert made.commit == origin.first and run_git("rev-parse", "HEAD", cwd=made.path).strip() == origin.first
    assert is_shallow(made.path) and not (made.path / "README").exists()


def test_an_abbreviated_sha_is_found_in_a_full_clone(origin, tmp_path):
    made = checkout(origin.url, origin.first[:10], tmp_path / "clone", no_token())
    assert made.commit == origin.first and made.ref == origin.first[:10]
    assert not is_shallow(made.path)


def test_a_tag_over_git_daemon(origin, git_daemon, tmp_path):
    made = checkout(git_daemon, "v1", tmp_path / "clone", no_token())
    assert made.commit == origin.first and made.repository == git_daemon


def test_the_clone_records_the_url_without_credentials(origin, http_remote, tmp_path):
    made = checkout(http_remote.url_with(f"bob:{http_remote.token}"), "main", tmp_path / "clone", no_token())
    assert made.repository == http_remote.url
    assert run_git("remote", "get-url", "origin", cwd=made.path).strip() == http_remote.url


def test_an_unknown_ref_is_one_line_naming_it(origin, tmp_path):
    for ref in ("no-such-branch", "abcdef1234"):
        with pytest.raises(InputError) as failed:
            checkout(origin.url, ref, tmp_path / "clone", no_token())
        assert str(failed.value) == f"ref {ref} does not exist in {origin.url}"
        assert not (tmp_path / "clone").exists()  # nothing half-cloned is left


@pytest.mark.parametrize("scheme", ["file", "http", "git"])
def test_an_unreachable_url_is_one_line(tmp_path, scheme):
    url = {
        "file": (tmp_path / "missing.git").as_uri(),
        "http": f"http://127.0.0.1:{free_port()}/r.git",
        "git": f"git://127.0.0.1:{free_port()}/r.git",
    }[scheme]
    with pytest.raises(InputError) as failed:
        checkout(url, None, tmp_path / "clone", no_token())
    message = str(failed.value)
    assert message.startswith(f"cannot reach {url}: ") and "\n" not in message


def test_an_empty_repository_is_refused(tmp_path):
    run_git("init", "-q", "--bare", str(tmp_path / "empty.git"))
    with pytest.raises(InputError, match="is empty"):
        checkout((tmp_path / "empty.git").as_uri(), None, tmp_path / "clone", no_token())


def test_a_remote_head_naming_no_branch_asks_for_a_ref(origin, tmp_path):
    run_git("symbolic-ref", "HEAD", "refs/heads/gone", cwd=origin.bare)
    with pytest.raises(InputError, match="has no HEAD .*: give --ref$"):
        checkout(origin.url, None, tmp_path / "clone", no_token())
    assert checkout(origin.url, "main", tmp_path / "clone", no_token()).commit == origin.second


def test_probe_finds_what_checkout_would_refuse_without_cloning(origin, tmp_path):
    for ref in (None, "main", "v1", "refs/heads/feature", origin.first[:8]):
        probe(origin.url, ref, no_token())
    with pytest.raises(InputError, match=f"^ref no-such-branch does not exist in {origin.url}$"):
        probe(origin.url, "no-such-branch", no_token())
    with pytest.raises(InputError, match="^cannot reach "):
        probe((tmp_path / "missing.git").as_uri(), None, no_token())
    assert list(tmp_path.iterdir()) == [origin.bare.parent]


def test_one_clone_per_host_and_commit_however_many_ask(origin, tmp_path):
    cache = tmp_path / "cache"
    made = in_threads(lambda: checkout_cached(origin.url, origin.feature, cache, no_token()), 4)
    assert len({m.path for m in made}) == 1
    clone = made[0].path
    assert run_git("rev-parse", "HEAD", cwd=clone).strip() == origin.feature
    assert sorted(p.name for p in clone.parent.iterdir()) == [origin.feature, f"{origin.feature}.lock"]
    inode = clone.stat().st_ino
    again = checkout_cached(origin.url, origin.feature, cache, no_token())
    assert again.path == clone and clone.stat().st_ino == inode
    other = checkout_cached(origin.url, origin.first, cache, no_token())
    assert other.path.parent == clone.parent and other.commit == origin.first


def test_the_cache_needs_a_full_sha(origin, tmp_path):
    with pytest.raises(ValueError, match="full commit sha"):
        checkout_cached(origin.url, "main", tmp_path / "cache", no_token())


# The token over smart HTTP with Basic auth: it must reach the server, and nothing else.


def assert_token_nowhere(token: str, text: str, *roots) -> None:
    assert token not in text
    assert files_containing(token, *roots) == []


def test_a_token_in_the_url_is_used_and_shows_nowhere(http_remote, process_watch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    url = http_remote.url_with(f"bob:{http_remote.token}")
    made = checkout(url, "main", tmp_path / "clone", no_token())
    with pytest.raises(InputError) as failed:
        checkout(url, "no-such-branch", tmp_path / "other", no_token())
    process_watch.stop.set()
    assert made.repository == http_remote.url and str(failed.value).endswith(f"in {http_remote.url}")
    assert_token_nowhere(http_remote.token, str(failed.value) + caplog.text, tmp_path)
    assert process_watch.sightings > 0 and process_watch.leaks == []


def test_a_token_from_covsweep_git_token_is_used_and_shows_nowhere(
    http_remote, process_watch, tmp_path, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COVSWEEP_GIT_TOKEN", http_remote.token)
    made = checkout(http_remote.url, "v1", tmp_path / "clone", Settings())
    process_watch.stop.set()
    assert made.commit == run_git("rev-parse", "v1^{commit}", cwd=http_remote.server.root / http_remote.name).strip()
    assert_token_nowhere(http_remote.token, caplog.text, tmp_path)
    assert process_watch.sightings > 0 and process_watch.leaks == []


def test_a_wrong_token_is_an_authentication_error_that_does_not_show_it(http_remote, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + http_remote.token
    with pytest.raises(InputError) as failed:
        checkout(http_remote.url, None, tmp_path / "clone", Settings(git_token=SecretStr(wrong)))
    message = str(failed.value)
    assert message.startswith(f"authentication to {http_remote.url} failed") and "\n" not in message
    assert wrong not in message + caplog.text


def test_no_credentials_at_all_is_an_authentication_error(http_remote, tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    with pytest.raises(InputError, match="^authentication to .* failed"):
        checkout(http_remote.url, None, tmp_path / "clone", no_token())


def test_without_a_token_the_hosts_own_credential_helper_answers(http_remote, tmp_path, monkeypatch):
    port = http_remote.server.server_address[1]
    store = tmp_path / "host" / "git-credentials"
    store.parent.mkdir()
    store.write_text(f"http://someone:{http_remote.token}@127.0.0.1%3a{port}\n")
    config = tmp_path / "host" / "gitconfig"
    config.write_text(f"[credential]\n\thelper = store --file={store}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    made = checkout(http_remote.url, "main", tmp_path / "clone", no_token())
    assert made.commit == run_git("rev-parse", "main", cwd=http_remote.server.root / http_remote.name).strip()


def test_a_given_token_is_never_handed_to_the_hosts_helpers(http_remote, tmp_path, monkeypatch):
    store = tmp_path / "host" / "git-credentials"
    store.parent.mkdir()
    config = tmp_path / "host" / "gitconfig"
    config.write_text(f"[credential]\n\thelper = store --file={store}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    checkout(http_remote.url_with(f"bob:{http_remote.token}"), "main", tmp_path / "clone", no_token())
    # The store helper would have saved a working credential: it never saw one.
    assert not store.exists() or http_remote.token not in store.read_text()
    found = subprocess.run(["grep", "-rl", http_remote.token, str(tmp_path)], capture_output=True, text=True)
    assert found.returncode == 1, found.stdout


@pytest.mark.parametrize("ref", ["main", "origin/main"])
def test_a_shallow_clone_gets_the_history_changed_since_needs(origin, git_daemon, tmp_path, ref):
    made = checkout(git_daemon, "feature", tmp_path / "clone", no_token())
    assert is_shallow(made.path)

    local = fetch_history_for(made, ref, no_token())
    changes = changed_since(made.path, local)

    # feature is one commit past main: the change is calc.py's new function, nothing of main's history.
    assert changes.base == origin.second
    assert [(f.path, f.status) for f in changes.files] == [("calc.py", "modified")]
    added = (made.path / "calc.py").read_text().splitlines()
    assert [added[n - 1] for n in changes.files[0].lines if added[n - 1].strip()] == [
        "def double(x):",
        "    return 2 * x",
    ]


def test_changed_since_an_unknown_ref_of_a_repository_is_one_line(origin, tmp_path):
    made = checkout(origin.url, "feature", tmp_path / "clone", no_token())
    with pytest.raises(InputError, match="--changed-since: nothing is not a branch, tag or commit"):
        fetch_history_for(made, "nothing", no_token())
