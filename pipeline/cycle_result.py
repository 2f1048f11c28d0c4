"""What one improvement cycle did, as returned by the flow and printed by the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CycleResult(BaseModel):
    """Summary of one cycle (the evidence itself is committed on the RC branch)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    agent: str
    base_release: str
    model: str
    simulated: bool
    status: Literal["decided", "nothing_to_fix", "no_proposal"]
    dev_runs: int
    dev_pass_rate: float
    patterns: list[tuple[str, int]] = Field(default_factory=list, description="Top symptom patterns on dev.")
    rc: str | None = None
    remediation: str | None = None
    intent: str | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="Flip counts P->F, F->P, P->P, F->F.")
    confirmed: dict[str, int] = Field(default_factory=dict, description="Confirmed P->F and F->P flips.")
    trials: int = Field(default=1, description="Gate runs per task and side before confirmation.")
    confirmation_runs: int = Field(default=0, description="Extra runs spent confirming tasks in doubt.")
    in_doubt: int = Field(default=0, description="Tasks that got confirmation trials.")
    decision: Literal["promote", "reject", "hold", "inconclusive"] | None = None
    stage: Literal["validate", "smoke", "gate"] | None = None
    reasons: list[str] = Field(default_factory=list)
    new_tag: str | None = Field(default=None, description="The release tag a promotion made.")
    rejected_tag: str | None = Field(default=None, description="The tag marking a rejected RC.")
    baseline_gate_pass_rate: float | None = None
    gate_pass_rate: float | None = None
    baseline_holdout_pass_rate: float | None = None
    holdout_pass_rate: float | None = None
    smoke: str | None = Field(default=None, description="The smoke check's one-line summary, when one ran.")
