"""The playbook strategy: symptom pattern -> known remediation, no model needed.

Reads the release's own `meta/playbook.yaml` and `meta/synthesizer.yaml`, so the
procedure that makes RC N+1 is always the one in release N.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ratchet.agents import UserError, validation_message
from ratchet.critics import EngineeringSpec, Pattern
from ratchet.pipeline.synthesis.candidate import Proposal, unified_diff
from ratchet.pipeline.synthesis.edits import Edit, apply_edits

PLAYBOOK_FILE = "meta/playbook.yaml"
SETTINGS_FILE = "meta/synthesizer.yaml"
Parsed = TypeVar("Parsed", bound=BaseModel)


class Remediation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    targets: list[str] = Field(min_length=1)
    intent: str = Field(min_length=1)
    edits: list[Edit] = Field(min_length=1)


class Playbook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    remediations: list[Remediation] = Field(default_factory=list)


class LlmSettings(BaseModel):
    """The llm strategy's budget: which model, how many samples before its fallback."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(min_length=1, description="Alias from ratchet.toml or a litellm model string.")
    samples: int = Field(default=3, ge=1, le=10)
    max_tokens: int = Field(default=2048, ge=64, le=32768)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)


def _playbook_only() -> list[Literal["playbook", "llm"]]:
    """The default strategies: the playbook alone."""
    return ["playbook"]


class SynthesizerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    strategies: list[Literal["playbook", "llm"]] = Field(default_factory=_playbook_only, min_length=1)
    llm: LlmSettings | None = Field(default=None, description="Needed when strategies include llm.")
    min_pattern_count: int = Field(default=2, ge=1)
    skip_rejected: bool = True

    @model_validator(mode="after")
    def _llm_needs_settings(self) -> SynthesizerSettings:
        if "llm" in self.strategies and self.llm is None:
            raise ValueError("strategy 'llm' needs an `llm:` section with at least `model:`")
        return self


def load_meta(agent: str, files: dict[str, str]) -> tuple[SynthesizerSettings, Playbook]:
    """Parse the improvement procedure from the artifact's files (relative paths)."""
    settings = _parse(agent, files, SETTINGS_FILE, SynthesizerSettings)
    playbook = _parse(agent, files, PLAYBOOK_FILE, Playbook)
    return settings, playbook


def propose_from_playbook(
    spec: EngineeringSpec,
    files: dict[str, str],
    settings: SynthesizerSettings,
    playbook: Playbook,
    rejected: set[str],
) -> Proposal | None:
    """The first applicable remediation for the most frequent pattern that has one."""
    for pattern in spec.patterns:
        if pattern.count < settings.min_pattern_count:
            break
        for remedy in playbook.remediations:
            if pattern.label not in remedy.targets or (settings.skip_rejected and remedy.id in rejected):
                continue
            changes = apply_edits(spec.agent, files, remedy.edits)
            if changes:
                return _proposal(spec, pattern, remedy, files, changes)
    return None


def _proposal(
    spec: EngineeringSpec, pattern: Pattern, remedy: Remediation, files: dict[str, str], changes: dict[str, str | None]
) -> Proposal:
    prefix = f"agents/{spec.agent}/"
    diff = "".join(
        unified_diff(path, files.get(path[len(prefix) :]) if path.startswith(prefix) else None, text)
        for path, text in sorted(changes.items())
    )
    covered = [p for p in spec.patterns if p.label in remedy.targets]
    expected = list(dict.fromkeys(t for p in covered for t in p.task_ids))
    return Proposal(
        agent=spec.agent,
        strategy="playbook",
        remediation=remedy.id,
        targets=[p.label for p in covered] or [pattern.label],
        intent=remedy.intent,
        expected_fixes=expected,
        changes=changes,
        diff=diff,
    )


def _parse(agent: str, files: dict[str, str], rel: str, model: type[Parsed]) -> Parsed:
    where = f"agents/{agent}/{rel}"
    if rel not in files:
        raise UserError(f"{where}: missing; the agent's improvement procedure needs it")
    try:
        raw = yaml.safe_load(files[rel]) or {}
        return model.model_validate(raw)
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except ValidationError as exc:
        raise UserError(f"{where}: {validation_message(exc)}") from exc
