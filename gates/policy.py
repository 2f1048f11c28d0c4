"""Gate policies (`gates/<name>.yaml` in a workspace) and the verdicts they give."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import UserError, validation_message
from gates.flips import FlipTable

Decision = Literal["promote", "reject", "hold"]


class GatePolicy(BaseModel):
    """What a release candidate must show to be promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "default"
    description: str = ""
    trials: int = Field(default=1, ge=1, le=20, description="Runs per task on the gate split.")
    max_regressions: int = Field(default=0, ge=0, description="P->F flips allowed.")
    min_fixes: int = Field(default=1, ge=0, description="F->P flips required.")
    require_manual_approval: bool = Field(default=False, description="Hold every passing RC for a person.")

    def content_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Verdict(BaseModel):
    """The gate's decision with every number that decided it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    decision: Decision
    stage: Literal["validate", "gate"] = "gate"
    reasons: list[str]
    fixes: int = 0
    regressions: int = 0
    policy: GatePolicy
    policy_hash: str


def load_policy(workspace: Path, name: str = "default") -> GatePolicy:
    """Read and validate `gates/<name>.yaml`; UserError naming file and field."""
    path = workspace / "gates" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: no gate policy named {name!r}; create gates/{name}.yaml or pass another --policy")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of policy fields")
    try:
        return GatePolicy.model_validate({"name": name, **raw})
    except ValidationError as exc:
        raise UserError(f"{path}: {validation_message(exc)}") from exc


def decide(flips: FlipTable, policy: GatePolicy) -> Verdict:
    """Apply the policy to the flip table."""
    fixes, regressions = len(flips.fixes), len(flips.regressions)
    reasons = []
    if regressions > policy.max_regressions:
        names = ", ".join(f.task_id for f in flips.regressions[:5])
        reasons.append(f"{regressions} regression(s) (P->F), policy allows {policy.max_regressions}: {names}")
    if fixes < policy.min_fixes:
        reasons.append(f"{fixes} fix(es) (F->P), policy requires at least {policy.min_fixes}")
    if reasons:
        decision: Decision = "reject"
    elif policy.require_manual_approval:
        decision = "hold"
        reasons.append(f"{fixes} fix(es), {regressions} regression(s); policy requires a person's approval")
    else:
        decision = "promote"
        reasons.append(f"{fixes} fix(es), {regressions} regression(s) within policy")
    return Verdict(decision=decision, reasons=reasons, fixes=fixes, regressions=regressions,
                   policy=policy, policy_hash=policy.content_hash())


def reject_before_evaluation(reason: str, policy: GatePolicy) -> Verdict:
    """The verdict for an RC that failed validation and was never evaluated."""
    return Verdict(decision="reject", stage="validate", reasons=[reason], policy=policy,
                   policy_hash=policy.content_hash())
