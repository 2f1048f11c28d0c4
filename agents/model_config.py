"""Per-model configuration: the `[models.<alias>]` tables of ratchet.toml.

An agent names its model either as a litellm string (`sim/humaneval`,
`hosted_vllm/tiny`, `openai/gpt-4o-mini`) or as an alias defined here. Keys are
never written here: `api_key_env` names the environment variable that holds one.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.match(value):
        raise ValueError(
            "must be the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), never the key"
        )
    return value


EnvName = Annotated[str | None, AfterValidator(_env_name)]


class Deployment(BaseModel):
    """One endpoint serving a model; several make a litellm Router (load balancing, fallbacks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(min_length=1, description="litellm model string of this deployment.")
    api_base: str | None = None
    api_key_env: EnvName = None


class ModelConfig(BaseModel):
    """How to call one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(min_length=1, description="litellm model string, e.g. hosted_vllm/tiny.")
    api_base: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1 for a vLLM server.")
    api_key_env: EnvName = Field(default=None, description="Name of the environment variable with the API key.")
    timeout_s: float | None = Field(default=None, gt=0, description="Request timeout; default: the agent's.")
    max_concurrency: int = Field(default=64, ge=1, le=4096, description="Requests in flight to this model.")
    retries: int = Field(
        default=4, ge=0, le=20, description="Retries of transient errors (429, 5xx, timeouts, resets)."
    )
    backoff_s: float = Field(default=0.5, gt=0, description="Base of the exponential backoff (with full jitter).")
    backoff_max_s: float = Field(default=20.0, gt=0)
    input_cost_per_token: float | None = Field(default=None, ge=0, description="USD per prompt token.")
    output_cost_per_token: float | None = Field(default=None, ge=0, description="USD per completion token.")
    structured_outputs: bool | None = Field(
        default=None, description="Whether the backend takes response_format json_schema; default: detect."
    )
    deployments: list[Deployment] = Field(default_factory=list, description="Two or more: a litellm Router.")
    transport: Literal["auto", "litellm", "openai-http"] = Field(
        default="auto",
        description="How requests travel. auto: the lean OpenAI-compatible HTTP path for a hosted_vllm/ "
        "model with an api_base, litellm for everything else.",
    )

    @model_validator(mode="after")
    def _http_needs_one_endpoint(self) -> ModelConfig:
        if self.transport == "openai-http" and (not self.api_base or self.deployments):
            raise ValueError(
                "transport 'openai-http' needs one endpoint: set api_base (and no deployments), "
                "or use transport 'litellm'"
            )
        return self

    def uses_http_transport(self) -> bool:
        """Whether calls go over agents.openai_http instead of litellm."""
        if self.transport == "auto":
            return self.model.startswith("hosted_vllm/") and bool(self.api_base) and not self.deployments
        return self.transport == "openai-http"

    def served_name(self) -> str:
        """The model name the server knows: the litellm string without its provider prefix."""
        for prefix in ("hosted_vllm/", "openai/"):
            if self.model.startswith(prefix):
                return self.model[len(prefix) :]
        return self.model

    def key_variables(self) -> list[str]:
        """The environment variables this config reads keys from (its own and its deployments')."""
        names = [self.api_key_env, *(d.api_key_env for d in self.deployments)]
        return [name for name in names if name]

    def behaviour_hash(self) -> str:
        """Hash of what changes the model's answers (not keys, concurrency or retries)."""
        blob = json.dumps(
            {
                "model": self.model,
                "api_base": self.api_base,
                "deployments": [(d.model, d.api_base) for d in self.deployments],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def resolve_model(name: str, aliases: dict[str, ModelConfig], api_base: str | None = None) -> ModelConfig:
    """The config for an alias, or a default config for a plain litellm model string."""
    if name in aliases:
        config = aliases[name]
        return config.model_copy(update={"api_base": api_base}) if api_base else config
    return ModelConfig(model=name, api_base=api_base)
