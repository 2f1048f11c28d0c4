"""Executable diagnosis: aggregate symptom reports into dominant failure patterns.

The result, an `EngineeringSpec`, is the auditable work order for the next release
candidate: it is stored as JSON and rendered to markdown with a jinja2 template.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import package_templates
from ratchet.critics.symptoms import TAXONOMY, SymptomReport

TEMPLATES = Path(__file__).parent / "templates"


class Pattern(BaseModel):
    """One failure pattern: a symptom label and where it occurs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str
    description: str
    count: int = Field(description="Failed runs showing this symptom.")
    share: float = Field(description="count / failed runs.")
    task_ids: list[str]
    error_types: dict[str, int] = Field(description="Verifier error types among these runs (trigger conditions).")
    with_tools: int = Field(description="Runs among these in which the agent called a tool.")
    examples: list[str] = Field(description="Up to three evidence quotes.")


class EngineeringSpec(BaseModel):
    """The diagnosis of one release on one split."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    agent: str
    release: str
    split: str
    runs: int
    failed: int
    pass_rate: float
    patterns: list[Pattern] = Field(description="Most frequent first.")

    def markdown(self) -> str:
        return package_templates(TEMPLATES, trim_blocks=True).get_template("spec.md.j2").render(spec=self)


def symptom_frame(reports: list[SymptomReport]) -> pd.DataFrame:
    """One row per (run, symptom) of failed runs."""
    rows = [
        {
            "task_id": r.task_id,
            "trial": r.trial,
            "label": s.label,
            "error_type": r.error_type or "none",
            "used_tools": r.used_tools,
            "evidence": s.evidence[0] if s.evidence else "",
        }
        for r in reports
        if not r.passed
        for s in r.symptoms
    ]
    return pd.DataFrame(rows, columns=["task_id", "trial", "label", "error_type", "used_tools", "evidence"])


def diagnose(reports: list[SymptomReport], agent: str, release: str, split: str) -> EngineeringSpec:
    """Group failed runs by symptom label, most frequent first (ties by label)."""
    frame = symptom_frame(reports)
    failed = sum(not r.passed for r in reports)
    patterns = []
    if not frame.empty:
        counts = frame.groupby("label").size().reset_index(name="count")
        for label in counts.sort_values(["count", "label"], ascending=[False, True])["label"]:
            patterns.append(_pattern(frame[frame["label"] == label], label, failed))
    runs = len(reports)
    return EngineeringSpec(
        agent=agent,
        release=release,
        split=split,
        runs=runs,
        failed=failed,
        pass_rate=round((runs - failed) / runs, 4) if runs else 0.0,
        patterns=patterns,
    )


def _pattern(rows: pd.DataFrame, label: str, failed: int) -> Pattern:
    examples = [e for e in dict.fromkeys(rows["evidence"]) if e][:3]
    return Pattern(
        label=label,
        description=TAXONOMY.get(label, "new label (not in the taxonomy)"),
        count=len(rows),
        share=round(len(rows) / failed, 4) if failed else 0.0,
        task_ids=list(dict.fromkeys(rows["task_id"])),
        error_types={str(k): int(v) for k, v in rows["error_type"].value_counts().items()},
        with_tools=int(rows["used_tools"].sum()),
        examples=examples,
    )
