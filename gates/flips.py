"""Flips: how each task's outcome changed between a baseline and a candidate."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from gates.outcome import Outcome
from gates.task import natural_key

FlipKind = Literal["P->P", "P->F", "F->P", "F->F"]
KINDS: tuple[FlipKind, ...] = ("P->F", "F->P", "P->P", "F->F")


class Flip(BaseModel):
    """One task's baseline and candidate result (majority over trials)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_id: str
    kind: FlipKind
    baseline_pass_rate: float
    candidate_pass_rate: float
    baseline_error: str | None = None
    candidate_error: str | None = None


class FlipTable(BaseModel):
    """Flips for every task evaluated on both sides."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    flips: list[Flip]

    def counts(self) -> dict[str, int]:
        counts = {kind: 0 for kind in KINDS}
        for flip in self.flips:
            counts[flip.kind] += 1
        return counts

    @property
    def regressions(self) -> list[Flip]:
        return [f for f in self.flips if f.kind == "P->F"]

    @property
    def fixes(self) -> list[Flip]:
        return [f for f in self.flips if f.kind == "F->P"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([f.model_dump() for f in self.flips], columns=list(Flip.model_fields))


def compute_flips(baseline: list[Outcome], candidate: list[Outcome]) -> FlipTable:
    """Pair outcomes by task; a side passes a task when at least half its trials pass."""
    base, cand = _pass_rates(baseline), _pass_rates(candidate)
    base_errors, cand_errors = _first_errors(baseline), _first_errors(candidate)
    flips = []
    for task_id in sorted(base.index.intersection(cand.index), key=natural_key):
        b, c = float(base[task_id]), float(cand[task_id])
        kind = f"{'P' if b >= 0.5 else 'F'}->{'P' if c >= 0.5 else 'F'}"
        flips.append(Flip(
            task_id=task_id, kind=kind, baseline_pass_rate=b, candidate_pass_rate=c,
            baseline_error=base_errors.get(task_id), candidate_error=cand_errors.get(task_id),
        ))
    return FlipTable(flips=flips)


def _pass_rates(outcomes: list[Outcome]) -> pd.Series:
    frame = pd.DataFrame({"task_id": [o.task_id for o in outcomes], "passed": [o.passed for o in outcomes]})
    return frame.groupby("task_id")["passed"].mean()


def _first_errors(outcomes: list[Outcome]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for o in outcomes:
        if o.error_type and o.task_id not in errors:
            errors[o.task_id] = o.error_type
    return errors
