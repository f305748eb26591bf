"""The saved LLM settings: Prefect block `covsweep-llm`."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from tasks.core.llm import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODELS,
    DEFAULT_PRICES,
    DEFAULT_REQUEST_TIMEOUT_S,
    OPENROUTER_BASE_URL,
    Price,
)


class CovsweepLLM(Block):
    """Where covsweep's LLM generator sends its requests, with which key, to which models."""

    _block_type_name = "Covsweep LLM"
    _block_type_slug = "covsweep-llm"
    _description = "OpenAI-compatible endpoint, API key, model fallback chain and prices for covsweep."

    base_url: str = Field(default=OPENROUTER_BASE_URL, description="any OpenAI-compatible endpoint")
    api_key: SecretStr | None = Field(default=None, description="sent as `Authorization: Bearer`")
    models: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODELS), description="fallback chain, first preferred"
    )
    prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES), description="model -> USD per million prompt/completion tokens"
    )
    request_timeout_s: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, gt=0)
