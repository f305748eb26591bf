"""The effective LLM configuration: option > environment > saved block `covsweep-llm` > default."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from pydantic import SecretStr

from blocks.llm import DEFAULT_MODELS, OPENROUTER_BASE_URL, CovsweepLLM, Price
from tasks.core.errors import InputError
from tasks.core.settings import Settings
from tasks.llm.config import LLMConfig, load_llm_block, parse_models, resolve_llm_config

ENV = [
    "COVSWEEP_LLM_API_KEY",
    "OPENROUTER_API_KEY",
    "COVSWEEP_LLM_BASE_URL",
    "COVSWEEP_MODELS",
    "COVSWEEP_CIRCUIT_BREAKER",
]
ENV_KEY = "sk-env-key-0123456789-SECRET"
BLOCK_KEY = "sk-block-key-9876543210-SECRET"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def resolve(**kw) -> LLMConfig:
    kw.setdefault("load_block", False)
    return resolve_llm_config(settings=Settings(), **kw)


def saved_block() -> CovsweepLLM:
    return CovsweepLLM(
        base_url="http://block.example:8000/v1",
        api_key=SecretStr(BLOCK_KEY),
        models=["block/a", "block/b"],
        prices={"block/a": Price(prompt=1, completion=2)},
        request_timeout_s=33,
        max_tokens=777,
    )


def test_defaults():
    config = resolve()
    assert config.base_url == OPENROUTER_BASE_URL
    assert config.models == DEFAULT_MODELS
    assert config.api_key is None and not config.has_key
    assert config.circuit_breaker is True and config.budget_usd is None
    assert all(config.price(m) == Price() for m in DEFAULT_MODELS)  # the default chain is free
    assert set(config.sources.values()) == {"default"}


def test_the_environment(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-openrouter")
    monkeypatch.setenv("COVSWEEP_LLM_BASE_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("COVSWEEP_MODELS", " a/one, b/two ,,a/one")
    monkeypatch.setenv("COVSWEEP_CIRCUIT_BREAKER", "0")
    config = resolve()
    assert config.api_key.get_secret_value() == "sk-openrouter"
    assert config.base_url == "http://localhost:11434/v1"
    assert config.models == ["a/one", "b/two"]
    assert config.circuit_breaker is False
    assert config.sources["api_key"] == config.sources["models"] == "environment"


def test_covsweep_llm_api_key_beats_openrouter_api_key(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-openrouter")
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", ENV_KEY)
    assert resolve().api_key.get_secret_value() == ENV_KEY


def test_options_beat_the_environment(monkeypatch):
    monkeypatch.setenv("COVSWEEP_MODELS", "env/model")
    monkeypatch.setenv("COVSWEEP_LLM_BASE_URL", "http://env.example/v1")
    config = resolve(models="opt/a,opt/b", llm_base_url="http://opt.example/v1/chat/completions", budget_usd=2.5)
    assert config.models == ["opt/a", "opt/b"]
    assert config.base_url == "http://opt.example/v1"
    assert config.budget_usd == 2.5
    assert config.sources["models"] == config.sources["base_url"] == "option"


def test_models_may_be_given_as_a_list():
    assert resolve(models=["x", " y "]).models == ["x", "y"]
    assert parse_models(None) is None


def test_the_environment_beats_the_block_which_beats_the_defaults(monkeypatch):
    config = resolve(block=saved_block())
    assert config.base_url == "http://block.example:8000/v1"
    assert config.models == ["block/a", "block/b"]
    assert config.api_key.get_secret_value() == BLOCK_KEY
    assert (config.request_timeout_s, config.max_tokens) == (33, 777)
    assert config.price("block/a") == Price(prompt=1, completion=2)
    assert config.price(DEFAULT_MODELS[0]) == Price()  # the defaults' prices stay known
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", ENV_KEY)
    monkeypatch.setenv("COVSWEEP_MODELS", "env/model")
    config = resolve(block=saved_block())
    assert config.api_key.get_secret_value() == ENV_KEY
    assert config.models == ["env/model"]
    assert config.base_url == "http://block.example:8000/v1"
    assert config.sources["base_url"] == "block"


@pytest.mark.parametrize("url", ["openrouter.ai/api/v1", "ftp://x.example", "http://", "not a url"])
def test_a_bad_base_url_is_an_input_error_naming_where_it_came_from(url):
    with pytest.raises(InputError, match="--llm-base-url"):
        resolve(llm_base_url=url)


def test_an_empty_model_option_is_an_input_error():
    with pytest.raises(InputError, match="--models"):
        resolve(models=" , ")


def test_the_key_is_masked_in_repr_and_json(monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", ENV_KEY)
    config = resolve()
    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        assert ENV_KEY not in text
    assert ENV_KEY not in repr(saved_block()) and BLOCK_KEY not in repr(saved_block())


def test_a_saved_block_is_loaded(prefect_api):
    name = f"test-{uuid.uuid4().hex[:8]}"
    saved_block().save(name, overwrite=True)
    try:
        block = load_llm_block(name)
        assert block is not None and block.api_key.get_secret_value() == BLOCK_KEY
        config = resolve_llm_config(settings=Settings(), block_name=name)
        assert config.models == ["block/a", "block/b"]
        assert config.api_key.get_secret_value() == BLOCK_KEY
        assert config.price("block/a") == Price(prompt=1, completion=2)
        assert config.sources["models"] == "block"
    finally:
        CovsweepLLM.delete(name)


def test_no_saved_block_is_no_error(prefect_api):
    assert load_llm_block(f"missing-{uuid.uuid4().hex[:8]}") is None
    config = resolve_llm_config(settings=Settings(), block_name=f"missing-{uuid.uuid4().hex[:8]}")
    assert config.models == DEFAULT_MODELS


def test_no_prefect_api_is_no_error():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        started = time.monotonic()
        assert load_llm_block() is None
        assert resolve_llm_config(settings=Settings()).base_url == OPENROUTER_BASE_URL
    assert time.monotonic() - started < 30
