"""What `make deploy` stores for the nightly sweep: its targets (directories resolved, repository URLs as
they are, never one carrying a token)."""

from __future__ import annotations

import pytest

from covsweep.provision import sweep_targets
from tasks.core.errors import InputError


def test_sweep_targets_resolve_directories_and_keep_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    urls = ["https://example.com/team/a.git", "git@example.com:team/b.git", "file:///srv/c.git"]
    assert sweep_targets(["proj", *urls]) == [str(tmp_path / "proj"), *urls]


@pytest.mark.parametrize("url", ["https://x:tok_abc@example.com/a.git", "https://tok_abc@example.com/a.git"])
def test_a_target_url_carrying_a_token_is_refused_without_showing_it(url):
    with pytest.raises(InputError) as refused:
        sweep_targets(["/srv/proj", url])
    assert str(refused.value).startswith("https://example.com/a.git: a token in a target URL would be stored")
    assert "tok_abc" not in str(refused.value)


def test_deploy_saves_covsweep_git_token_as_the_secret_block_the_runs_read(prefect_api):
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from covsweep.provision import ensure_git_token_block
    from tasks.core.names import GIT_TOKEN_BLOCK
    from tasks.core.settings import Settings
    from tasks.project.remote import resolve

    said: list[str] = []
    ensure_git_token_block(Settings(git_token=None), said.append)
    assert said == []
    try:
        ensure_git_token_block(Settings(git_token=SecretStr("tok_saved")), said.append)
        assert said == [f"block secret/{GIT_TOKEN_BLOCK}: saved from COVSWEEP_GIT_TOKEN"]
        assert Secret.load(GIT_TOKEN_BLOCK).get() == "tok_saved"
        remote = resolve("https://example.com/a.git", Settings(git_token=None))  # a worker without the variable
        assert remote.credentials.password.get_secret_value() == "tok_saved"
    finally:
        Secret.delete(GIT_TOKEN_BLOCK)  # the session's other tests use the same API
