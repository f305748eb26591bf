"""The one place covsweep reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVSWEEP_", extra="ignore")

    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COVSWEEP_LLM_API_KEY", "OPENROUTER_API_KEY")
    )
    llm_base_url: str | None = None
    models: str | None = None
    sandbox_image: str | None = None
    circuit_breaker: bool = True
    # A repository TARGET over HTTPS: the token git answers with (Prefect Secret block covsweep-git-token otherwise).
    git_token: SecretStr | None = None
    git_timeout: float = Field(default=600.0, gt=0, description="seconds one git command (clone, fetch, push) may take")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "covsweep")
    # The local sandbox's Pynguin: an executable in its own environment (it pins pytest<9).
    pynguin: str = "pynguin"
    base_image: str | None = Field(
        default=None,
        description="FROM of the sandbox image; None: python:3.11-slim if it is present, else covsweep-base:bookworm",
    )
    # The service (`make deploy`): where the covsweep-results block keeps the reports of deployed runs.
    results_dir: Path | None = Field(default=None, description="None: CACHE_DIR/results")
    sweep_targets: str | None = Field(default=None, description="comma-separated targets of the nightly sweep")
    # --cluster's default: a Dask scheduler (tcp://host:8786) whose workers run the module tasks.
    cluster: str | None = None
    cluster_timeout: float = Field(
        default=10.0, gt=0, description="seconds to reach the Dask scheduler, and for each worker to answer"
    )
    # The port `make server` gives the Prefect server and its UI (Makefile's PREFECT_PORT).
    prefect_port: int = Field(default=4200, validation_alias="PREFECT_PORT")
    pool_concurrency: int = Field(default=2, ge=1, description="flow runs at once on a new work pool")
    silent_run_s: int = Field(
        default=300,
        ge=90,
        description="a deployed run that sent no heartbeat for this "
        "long (its host or container died) is marked Crashed, freeing its pool slot",
    )
    # The OpenHands backend (docs/openhands.md): its own names, as OpenHands' docs use them.
    openhands_image: str = Field(
        default="docker.all-hands.dev/all-hands-ai/openhands:0.59", validation_alias="OPENHANDS_IMAGE"
    )
    openhands_runtime_image: str = Field(
        default="docker.all-hands.dev/all-hands-ai/runtime:0.59-nikolaik", validation_alias="OPENHANDS_RUNTIME_IMAGE"
    )
    openhands_model: str | None = Field(
        default=None, validation_alias="OPENHANDS_MODEL", description="None: the first model of the LLM chain"
    )
    openhands_timeout: float = Field(
        default=900.0,
        gt=0,
        validation_alias="OPENHANDS_TIMEOUT",
        description="wall clock per OpenHands run, within the module's --timeout",
    )
    openhands_idle_timeout: float = Field(
        default=180.0,
        gt=0,
        validation_alias="OPENHANDS_IDLE_TIMEOUT",
        description="no output for this long: stuck, killed",
    )
    openhands_network: str = Field(
        default="bridge",
        validation_alias="OPENHANDS_NETWORK",
        description="Docker network mode of the OpenHands container",
    )

    def results_path(self) -> Path:
        return (self.results_dir or self.cache_dir / "results").expanduser().resolve()

    def sweep_target_list(self) -> list[str] | None:
        """None: leave the deployed list as it is."""
        if self.sweep_targets is None:
            return None
        return [t.strip() for t in self.sweep_targets.split(",") if t.strip()]


def load() -> Settings:
    return Settings()
