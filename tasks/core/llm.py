"""What a run's LLM requests go by, as plain data that pickles to any process or host: the
endpoint, the model chain, prices, limits, the budget. Never the key: each process reads that
itself where it runs (tasks.llm.config)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasks.core.names import LLM_SPEND_PREFIX

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
# Free OpenRouter models (the `:free` variants cost nothing and are rate limited per key).
DEFAULT_MODELS = [
    "qwen/qwen3-coder:free",
    "deepseek/deepseek-chat-v3.1:free",
    "meta-llama/llama-3.3-70b-instruct:free",
]
DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_MAX_TOKENS = 4096


class Price(BaseModel):
    """USD per million tokens."""

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)


DEFAULT_PRICES: dict[str, Price] = {model: Price() for model in DEFAULT_MODELS}


class LLMSettings(BaseModel):
    """Everything about a run's LLM requests but the key."""

    model_config = {"frozen": True}

    base_url: str = OPENROUTER_BASE_URL
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    request_timeout_s: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    circuit_breaker: bool = True
    breaker_threshold: int = Field(default=3, ge=1, description="consecutive failures that open a breaker")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, description="open -> half-open after this long")

    def price(self, model: str) -> Price | None:
        return self.prices.get(model)


class LLMSpec(BaseModel):
    """The run's LLM as a module task gets it, in whatever process or host it runs: a session is
    made from it there (tasks.llm.session.llm_session), with the key that process reads."""

    model_config = {"frozen": True}

    run_id: str
    settings: LLMSettings
    max_connections: int = Field(default=32, ge=1, description="of the HTTP pool each process opens")
    shared_spend: bool = Field(
        default=False,
        description="True: the run's spend and its stop after a rejected key live on the Prefect server, "
        "for module tasks in several processes or hosts; False: in the memory of the one process that "
        "holds the run's session (module tasks in threads of the flow's process)",
    )

    @property
    def spend_limit(self) -> str:
        """The run's global concurrency limit that counts its spend when `shared_spend`."""
        return LLM_SPEND_PREFIX + self.run_id

    @property
    def key(self) -> str:
        """Equal for equal specs in any process: what a process's open sessions are keyed by."""
        return self.model_dump_json()
