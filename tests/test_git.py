"""Repository URLs and git itself: credentials out of URLs, out of messages, into git's environment only."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from tasks.core.errors import InputError
from tasks.core.settings import Settings
from tasks.project.git import CREDENTIAL_HELPER, GitError, environment, git
from tasks.project.remote import TOKEN_USERNAME, detach_secret, is_repository_url, redact, resolve, scrub

SECRET = "s3cr3t-t0ken/with:odd@chars"
QUOTED = "s3cr3t-t0ken%2Fwith%3Aodd%40chars"  # as it must be spelled inside a URL


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:pa55@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_abc123@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p@127.0.0.1:8080/r.git", "http://127.0.0.1:8080/r.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("ssh://git:pw@host.example/org/repo.git", "ssh://git@host.example/org/repo.git"),
        ("ssh://git@host.example:2222/org/repo.git", "ssh://git@host.example:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ("git://127.0.0.1:9418/repo.git", "git://127.0.0.1:9418/repo.git"),
    ],
)
def test_redact_drops_credentials_and_keeps_the_rest(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize(
    "target",
    ["https://h/r.git", "http://h/r", "ssh://git@h/r", "git@github.com:org/r.git", "file:///srv/r.git", "git://h/r"],
)
def test_repository_urls_are_told_from_paths(target):
    assert is_repository_url(target)


@pytest.mark.parametrize(
    "target",
    ["examples/shop", "/srv/project", "./x.py", "C:/work/project", "host:path", "-oProxyCommand@h:p", "-u@h:p"],
)
def test_paths_are_not_repository_urls(target):
    assert not is_repository_url(target)


def test_scrub_removes_user_info_from_every_url_and_the_secret_in_any_spelling():
    text = (
        f"fatal: unable to access 'https://x-access-token:{QUOTED}@h/r.git/': 403\n"
        f"remote: token {SECRET} refused\nhttp://bob:pw@h/x"
    )
    clean = scrub(text, [SECRET])
    assert SECRET not in clean and QUOTED not in clean and "pw@" not in clean and "bob" not in clean
    assert "https://h/r.git/" in clean and "remote: token *** refused" in clean


def test_a_token_comes_from_the_url_before_the_environment():
    settings = Settings(git_token=SecretStr("from-env"))
    from_url = resolve("https://bob:from-url@h/r.git", settings, load_block=False)
    assert from_url.url == "https://h/r.git"
    assert (from_url.credentials.username, from_url.credentials.password.get_secret_value()) == ("bob", "from-url")
    from_env = resolve("https://h/r.git", settings, load_block=False)
    assert from_env.credentials.username == TOKEN_USERNAME
    assert from_env.credentials.password.get_secret_value() == "from-env"
    assert resolve("https://h/r.git", Settings(git_token=None), load_block=False).credentials is None


def test_a_lone_user_name_in_an_https_url_is_taken_as_the_token():
    remote = resolve("https://ghp_abc123@github.com/org/r.git", Settings(git_token=None), load_block=False)
    assert remote.url == "https://github.com/org/r.git"
    assert remote.secrets() == ["ghp_abc123"]


def test_no_repr_of_a_remote_shows_a_token():
    for url in ("https://ghp_abc123@github.com/r.git", "https://bob:ghp_abc123@github.com/r.git"):
        remote = resolve(url, Settings(git_token=None), load_block=False)
        assert "ghp_abc123" not in repr(remote) + str(remote) + repr(remote.credentials)


@pytest.mark.parametrize(
    ("url", "kept", "secret"),
    [
        (f"https://bob:{QUOTED}@h/r.git", "https://bob@h/r.git", SECRET),
        ("https://ghp_abc123@h/r.git", "https://h/r.git", "ghp_abc123"),
        ("https://h/r.git", "https://h/r.git", None),
        ("ssh://git@h/r.git", "ssh://git@h/r.git", None),
    ],
)
def test_a_url_is_parted_from_its_secret_and_resolves_back_to_the_same_credentials(url, kept, secret, monkeypatch):
    stored, detached = detach_secret(url)
    assert stored == kept and (detached.get_secret_value() if detached else None) == secret
    monkeypatch.setenv("COVSWEEP_GIT_TOKEN", secret or "")
    again, direct = (
        resolve(stored, Settings(), load_block=False),
        resolve(url, Settings(git_token=None), load_block=False),
    )
    assert again.url == direct.url and again.secrets()[-1:] == direct.secrets()[-1:]


def test_covsweep_git_token_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("COVSWEEP_GIT_TOKEN", SECRET)
    assert Settings().git_token.get_secret_value() == SECRET
    assert SECRET not in repr(Settings())


@pytest.mark.parametrize("url", ["ssh://git@h/r.git", "git@h:r.git", "file:///srv/r.git", "git://h/r.git"])
def test_a_token_is_only_ever_sent_over_http(url):
    assert resolve(url, Settings(git_token=SecretStr(SECRET)), load_block=False).credentials is None


def test_a_password_in_an_ssh_url_is_refused_without_showing_it():
    with pytest.raises(InputError) as refused:
        resolve(f"ssh://git:{QUOTED}@h/r.git", Settings(), load_block=False)
    assert (
        QUOTED not in str(refused.value)
        and SECRET not in str(refused.value)
        and "ssh://git@h/r.git" in str(refused.value)
    )


def test_a_local_path_is_not_resolved_as_a_remote():
    with pytest.raises(InputError, match="is not a repository URL"):
        resolve("/srv/project", Settings(), load_block=False)


def test_git_environment_holds_the_token_for_the_helper_only_and_withholds_covsweep_secrets(monkeypatch):
    monkeypatch.setenv("COVSWEEP_GIT_TOKEN", SECRET)
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", "llm-key")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.abbrev")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "12")
    env = environment(resolve("https://h/r.git", Settings(), load_block=False))
    assert "COVSWEEP_GIT_TOKEN" not in env and "COVSWEEP_LLM_API_KEY" not in env
    # The user's own GIT_CONFIG_* entries stay; the reset and the helper come after them.
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("core.abbrev", "12")
    assert (env["GIT_CONFIG_KEY_1"], env["GIT_CONFIG_VALUE_1"]) == ("credential.helper", "")
    assert (env["GIT_CONFIG_KEY_2"], env["GIT_CONFIG_VALUE_2"]) == ("credential.helper", CREDENTIAL_HELPER)
    assert env["GIT_CONFIG_COUNT"] == "3" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert SECRET not in CREDENTIAL_HELPER
    assert [name for name, value in env.items() if SECRET in value] == ["COVSWEEP_GIT_HELPER_PASSWORD"]


def test_without_a_token_git_is_left_its_own_credential_helpers(monkeypatch):
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    env = environment(resolve("https://h/r.git", Settings(git_token=None), load_block=False))
    assert "GIT_CONFIG_COUNT" not in env and "COVSWEEP_GIT_HELPER_PASSWORD" not in env


def test_the_credential_helper_answers_get_with_the_environment_values(tmp_path):
    remote = resolve(f"https://bob:{QUOTED}@127.0.0.1/r.git", Settings(), load_block=False)
    answer = git("credential", "fill", remote=remote, input="protocol=https\nhost=127.0.0.1\n\n", cwd=tmp_path)
    assert f"username=bob\npassword={SECRET}\n" in answer


def test_a_failing_git_command_is_one_scrubbed_line(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    remote = resolve(f"http://bob:{QUOTED}@127.0.0.1:9/r.git", Settings(), load_block=False)
    with pytest.raises(GitError) as failed:
        git("ls-remote", remote.url, remote=remote, cwd=tmp_path)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("git ls-remote failed: unable to access")
    shown = message + failed.value.output + caplog.text
    assert SECRET not in shown and QUOTED not in shown and "bob" not in message


def test_the_secret_block_gives_the_token(prefect_api):
    from prefect.blocks.system import Secret

    from tasks.core.names import GIT_TOKEN_BLOCK

    Secret(value=SECRET).save(GIT_TOKEN_BLOCK, overwrite=True)
    try:
        remote = resolve("https://h/r.git", Settings(git_token=None))
        assert remote.credentials.password.get_secret_value() == SECRET
        # The environment beats the saved block.
        assert resolve("https://h/r.git", Settings(git_token=SecretStr("env"))).secrets() == ["env"]
    finally:
        Secret.delete(GIT_TOKEN_BLOCK)
