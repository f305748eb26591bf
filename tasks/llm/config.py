"""The effective LLM configuration: option > environment > saved block `covsweep-llm` > default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import Field, SecretStr

from tasks.core.errors import InputError
from tasks.core.llm import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODELS,
    DEFAULT_PRICES,
    DEFAULT_REQUEST_TIMEOUT_S,
    OPENROUTER_BASE_URL,
    LLMSettings,
    LLMSpec,
)
from tasks.core.names import DEFAULT_BLOCK_NAME
from tasks.core.settings import Settings, load

if TYPE_CHECKING:
    from blocks.llm import CovsweepLLM

Source = Literal["option", "environment", "block", "default"]
# A bad base URL's error names where it came from.
BASE_URL_ORIGINS: dict[Source, str] = {
    "option": "--llm-base-url",
    "environment": "COVSWEEP_LLM_BASE_URL",
    "block": "block covsweep-llm base_url",
    "default": "default base URL",
}


class LLMConfig(LLMSettings):
    """What the LLM generator needs in one process: the run's settings and the key that process
    read. The key is a SecretStr: masked in repr and JSON; a spec (`spec_of`) leaves it out."""

    api_key: SecretStr | None = None
    sources: dict[str, Source] = Field(default_factory=dict, description="field -> where its value came from")

    @property
    def has_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


def spec_of(config: LLMConfig, run_id: str, *, max_connections: int = 32, shared_spend: bool = False) -> LLMSpec:
    """The run's LLM as module tasks get it: the settings without the key."""
    settings = LLMSettings(**{name: getattr(config, name) for name in LLMSettings.model_fields})
    return LLMSpec(run_id=run_id, settings=settings, max_connections=max_connections, shared_spend=shared_spend)


def config_for(spec: LLMSpec, *, settings: Settings | None = None, block: CovsweepLLM | None = None) -> LLMConfig:
    """The spec with the key of this process: read here, where the module task runs."""
    return LLMConfig(**dict(spec.settings), api_key=read_api_key(settings=settings, block=block))


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
    # Imported here: the blocks import Prefect, which a run's checks before Prefect starts do without.
    from blocks.llm import CovsweepLLM
    from blocks.saved import load_saved

    return load_saved(CovsweepLLM, name)


def _env_key(settings: Settings) -> SecretStr | None:
    key = settings.llm_api_key
    return key if key and key.get_secret_value() else None


def _block_key(block: CovsweepLLM | None) -> SecretStr | None:
    return block.api_key if block and block.api_key and block.api_key.get_secret_value() else None


def read_api_key(*, settings: Settings | None = None, block: CovsweepLLM | None = None) -> SecretStr | None:
    """The key as this process sees it: COVSWEEP_LLM_API_KEY (or OPENROUTER_API_KEY), else the saved
    `covsweep-llm` block's; the block is read only when the environment has none."""
    key = _env_key(settings or load())
    if key is None:
        key = _block_key(block or load_llm_block())
    return key


def resolve_llm_config(
    *,
    models: str | list[str] | None = None,
    llm_base_url: str | None = None,
    budget_usd: float | None = None,
    settings: Settings | None = None,
    block: CovsweepLLM | None = None,
    load_block: bool = True,
    block_name: str = DEFAULT_BLOCK_NAME,
) -> LLMConfig:
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
    chain = pick(
        "models", option_models, env_models, block.models if block and block.models else None, list(DEFAULT_MODELS)
    )
    base_url = pick(
        "base_url", llm_base_url, settings.llm_base_url, block.base_url if block else None, OPENROUTER_BASE_URL
    )
    base_url = normalize_base_url(base_url, BASE_URL_ORIGINS[sources["base_url"]])
    api_key = pick("api_key", None, _env_key(settings), _block_key(block), None)
    prices = dict(DEFAULT_PRICES) | (dict(block.prices) if block else {})
    sources["prices"] = "block" if block and block.prices else "default"
    sources["circuit_breaker"] = "environment" if not settings.circuit_breaker else "default"
    sources["budget_usd"] = "option" if budget_usd is not None else "default"
    return LLMConfig(
        base_url=base_url,
        api_key=api_key,
        models=chain,
        prices=prices,
        request_timeout_s=pick(
            "request_timeout_s", None, None, block.request_timeout_s if block else None, DEFAULT_REQUEST_TIMEOUT_S
        ),
        max_tokens=pick("max_tokens", None, None, block.max_tokens if block else None, DEFAULT_MAX_TOKENS),
        budget_usd=budget_usd,
        circuit_breaker=settings.circuit_breaker,
        sources=sources,
    )
