"""Workspace settings: `ratchet.toml` at the workspace root."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import UserError, validation_message
from agents.model_config import ModelConfig

SETTINGS_FILE = "ratchet.toml"


class WorkspaceInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1


class RunSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    concurrency: int = Field(default=8, ge=1, le=512, description="Tasks run at once inside a stage.")


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    suite: str = "humaneval"
    policy: str = "default"
    critic_model: str | None = Field(
        default=None,
        description="Model (alias or litellm string) of the LLM critic; unset: the deterministic detectors.",
    )
    smoke_suite: str | None = Field(
        default=None, description="Suite (folder in suites/) every RC runs before the gate; unset: no smoke check.")
    smoke_model: str | None = Field(
        default=None, description="Model for the smoke suite (alias or litellm string); unset: the agent's model.")


class Settings(BaseModel):
    """The validated content of ratchet.toml."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workspace: WorkspaceInfo = Field(default_factory=WorkspaceInfo)
    run: RunSettings = Field(default_factory=RunSettings)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="Model aliases: [models.<alias>].")

    def agent(self, name: str) -> AgentSettings:
        return self.agents.get(name, AgentSettings())


def load_settings(workspace: Path) -> Settings:
    """Read `ratchet.toml`; UserError naming the file and field when it is missing or invalid."""
    path = workspace / SETTINGS_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; {workspace} is not a Ratchet workspace (create one with `ratchet init DIR`)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {validation_message(exc)}") from exc
