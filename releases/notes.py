"""Release notes: what a candidate intended, what the gate saw, what was decided."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import package_templates

TEMPLATES = Path(__file__).parent / "templates"


class FlipRow(BaseModel):
    """One task's change, as shown in the notes."""

    model_config = ConfigDict(frozen=True)
    task_id: str
    kind: str
    baseline_error: str | None = None
    candidate_error: str | None = None
    confirmed: bool | None = None
    p_value: float | None = None
    runs: str = Field(default="", description="Passes/runs on each side, e.g. '3/3 -> 0/3'.")


class ReleaseNotes(BaseModel):
    """Everything the release-notes template shows."""

    model_config = ConfigDict(frozen=True)
    agent: str
    title: str = Field(description="e.g. 'coder/v2' or 'rc/coder/3 (rejected)'.")
    base_release: str
    rc: str
    decision: str
    actor: str
    reasons: list[str]
    intent: str
    targets: list[str]
    remediation: str
    model: str
    simulated: bool
    counts: dict[str, int]
    flips: list[FlipRow] = Field(description="Changed tasks only (P->F and F->P).")
    baseline_gate_pass_rate: float | None = None
    gate_pass_rate: float | None = None
    holdout_pass_rate: float | None = None
    baseline_holdout_pass_rate: float | None = None
    top_patterns: list[tuple[str, int]] = Field(default_factory=list)
    strategy: str = ""
    meta_edits: list[str] = Field(default_factory=list, description="Changed files of the improvement procedure.")
    smoke: str | None = Field(default=None, description="The smoke check's one-line summary, when one ran.")

    def markdown(self) -> str:
        template = package_templates(TEMPLATES, trim_blocks=True).get_template("release_notes.md.j2")
        return template.render(notes=self)
