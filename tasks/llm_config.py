"""The effective LLM configuration: option > environment > saved block `covsweep-llm` > default."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from blocks.llm import (
    DEFAULT_MAX_TOKENS, DEFAULT_MODELS, DEFAULT_PRICES, DEFAULT_REQUEST_TIMEOUT_S,
    OPENROUTER_BASE_URL, CovsweepLLM, Price,
)
from blocks.saved import DEFAULT_BLOCK_NAME, load_saved
from covsweep.settings import Settings, load
from tasks.models import InputError

Source = Literal["option", "environment", "block", "default"]


class LLMConfig(BaseModel):
    """What the LLM generator needs for one run. The key is a SecretStr: masked in repr and JSON."""

    model_config = {"frozen": True}

    base_url: str = OPENROUTER_BASE_URL
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    request_timeout_s: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    circuit_breaker: bool = True
    breaker_threshold: int = Field(default=3, ge=1, description="consecutive failures that open a breaker")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, description="open -> half-open after this long")
    sources: dict[str, Source] = Field(default_factory=dict, description="field -> where its value came from")

    @property
    def has_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    def price(self, model: str) -> Price | None:
        return self.prices.get(model)


def parse_models(value: str | list[str] | None) -> list[str] | None:
    """`A,B,C` or a list -> names in order, blanks and repeats dropped; None when not given."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    names: list[str] = []
    for item in items:
        name = item.strip()
        if name and name not in names:
            names.append(name)
    return names


def normalize_base_url(url: str, what: str) -> str:
    """http(s)://host[:port]/path without a trailing slash or a pasted `/chat/completions`."""
    url = url.strip().rstrip("/")
    url = url.removesuffix("/chat/completions")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InputError(f"{what}: {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"{what}: {url!r} is not an http(s) URL, e.g. {OPENROUTER_BASE_URL}")
    return url


def load_llm_block(name: str = DEFAULT_BLOCK_NAME) -> CovsweepLLM | None:
    return load_saved(CovsweepLLM, name)


def resolve_llm_config(*, models: str | list[str] | None = None, llm_base_url: str | None = None,
                       budget_usd: float | None = None, settings: Settings | None = None,
                       block: CovsweepLLM | None = None, load_block: bool = True,
                       block_name: str = DEFAULT_BLOCK_NAME) -> LLMConfig:
    """Options (the flow's parameters) beat the environment, which beats the saved block, which
    beats the defaults. Raises InputError for a value a user has to fix."""
    settings = settings or load()
    if block is None and load_block:
        block = load_llm_block(block_name)
    sources: dict[str, Source] = {}

    def pick(field: str, option, env, saved, default):
        for source, value in (("option", option), ("environment", env), ("block", saved)):
            if value is not None:
                sources[field] = source
                return value
        sources[field] = "default"
        return default

    option_models = parse_models(models)
    if option_models == []:
        raise InputError("--models: no model names given")
    env_models = parse_models(settings.models) or None
    chain = pick("models", option_models, env_models, block.models if block and block.models else None,
                 list(DEFAULT_MODELS))
    base_url = pick("base_url", llm_base_url, settings.llm_base_url, block.base_url if block else None,
                    OPENROUTER_BASE_URL)
    what = {"option": "--llm-base-url", "environment": "COVSWEEP_LLM_BASE_URL",
            "block": "block covsweep-llm base_url", "default": "default base URL"}[sources["base_url"]]
    base_url = normalize_base_url(base_url, what)
    env_key = settings.llm_api_key if settings.llm_api_key and settings.llm_api_key.get_secret_value() else None
    block_key = block.api_key if block and block.api_key and block.api_key.get_secret_value() else None
    api_key = pick("api_key", None, env_key, block_key, None)
    prices = dict(DEFAULT_PRICES) | (dict(block.prices) if block else {})
    sources["prices"] = "block" if block and block.prices else "default"
    sources["circuit_breaker"] = "environment" if not settings.circuit_breaker else "default"
    sources["budget_usd"] = "option" if budget_usd is not None else "default"
    return LLMConfig(
        base_url=base_url, api_key=api_key, models=chain, prices=prices,
        request_timeout_s=pick("request_timeout_s", None, None, block.request_timeout_s if block else None,
                               DEFAULT_REQUEST_TIMEOUT_S),
        max_tokens=pick("max_tokens", None, None, block.max_tokens if block else None, DEFAULT_MAX_TOKENS),
        budget_usd=budget_usd, circuit_breaker=settings.circuit_breaker, sources=sources,
    )
