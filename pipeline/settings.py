"""Workspace settings: `ratchet.toml` at the workspace root."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ratchet.agents import ModelConfig, UserError, redact, register_key_variables, validation_message

SETTINGS_FILE = "ratchet.toml"


class WorkspaceInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1


class RunSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    concurrency: int = Field(default=8, ge=1, le=512, description="Tasks run at once inside a stage.")


class ExecutionSettings(BaseModel):
    """Where evaluations run: in the flow's process, or in shards on a Dask cluster (pipeline/execution.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    runner: Literal["local", "dask"] = Field(
        default="local", description="local: asyncio in the flow's process; dask: shards on a Dask cluster."
    )
    address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster, e.g. tcp://host:8786; unset: a local cluster."
    )
    workers: int = Field(default=2, ge=1, le=256, description="Worker processes of the local cluster (no address).")
    shard_size: int = Field(default=16, ge=1, le=100_000, description="Tasks per shard (one Prefect task each).")

    # Field validators, so that an error names the field; they run only on fields ratchet.toml sets.
    @field_validator("address")
    @classmethod
    def _address_needs_dask(cls, address: str | None, info: ValidationInfo) -> str | None:
        if address is not None and info.data.get("runner") != "dask":
            raise PydanticCustomError("execution", 'only used with runner = "dask"; set runner = "dask" or remove it')
        if address is not None and not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", address):
            raise PydanticCustomError(
                "execution", f"expected a scheduler address such as tcp://host:8786, got {address!r}"
            )
        return address

    @field_validator("workers")
    @classmethod
    def _workers_need_local_cluster(cls, workers: int, info: ValidationInfo) -> int:
        if info.data.get("address") is not None:
            raise PydanticCustomError(
                "execution",
                "sizes a local cluster; an existing cluster (address) has its own workers: remove workers or address",
            )
        return workers


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    suite: str = "humaneval"
    policy: str = "default"
    critic_model: str | None = Field(
        default=None,
        description="Model (alias or litellm string) of the LLM critic; unset: the deterministic detectors.",
    )
    smoke_suite: str | None = Field(
        default=None, description="Suite (folder in suites/) every RC runs before the gate; unset: no smoke check."
    )
    smoke_model: str | None = Field(
        default=None, description="Model for the smoke suite (alias or litellm string); unset: the agent's model."
    )


class Settings(BaseModel):
    """The validated content of ratchet.toml."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workspace: WorkspaceInfo = Field(default_factory=WorkspaceInfo)
    run: RunSettings = Field(default_factory=RunSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="Model aliases: [models.<alias>].")

    @field_validator("models")
    @classmethod
    def _no_credentials_in_urls(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        for alias, config in models.items():
            for url in (config.api_base, *(d.api_base for d in config.deployments)):
                if url and redact(url, []) != url:
                    raise PydanticCustomError(
                        "credentials",
                        f"[models.{alias}] api_base holds credentials, and ratchet.toml is committed "
                        "to git: name the key's variable with api_key_env, or pass the URL with "
                        "--api-base",
                    )
        return models

    def agent(self, name: str) -> AgentSettings:
        return self.agents.get(name, AgentSettings())

    def key_variables(self) -> list[str]:
        """Every environment variable a [models.<alias>] table names as a key (`api_key_env`)."""
        return sorted({name for config in self.models.values() for name in config.key_variables()})


def load_settings(workspace: Path) -> Settings:
    """Read `ratchet.toml`; UserError naming the file and field when it is missing or invalid.

    Every variable it names as a key is registered for redaction in this process (agents.redaction),
    whether or not a model that uses it is called."""
    path = workspace / SETTINGS_FILE
    if not path.is_file():
        raise UserError(
            f"{path}: not found; {workspace} is not a Ratchet workspace (create one with `ratchet init DIR`)"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {validation_message(exc)}") from exc
    register_key_variables(settings.key_variables())
    return settings
