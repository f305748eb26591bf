"""The one place covsweep reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVSWEEP_", extra="ignore")

    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COVSWEEP_LLM_API_KEY", "OPENROUTER_API_KEY")
    )
    llm_base_url: str | None = None
    models: str | None = None
    sandbox_image: str | None = None
    circuit_breaker: bool = True
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "covsweep")
    # The local sandbox's Pynguin: an executable in its own environment (it pins pytest<9).
    pynguin: str = "pynguin"
    base_image: str | None = Field(
        default=None, description="FROM of the sandbox image; None: python:3.11-slim if it is present, else covsweep-base:bookworm"
    )


def load() -> Settings:
    return Settings()
