"""Flips: how each task's outcome changed between a baseline and a candidate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.gates.outcome import Outcome
from ratchet.gates.task import natural_key

if TYPE_CHECKING:  # pandas only where a frame is made: `ratchet why` never needs it
    import pandas as pd

    from ratchet.gates.statistics import ClassifiedTasks

FlipKind = Literal["P->P", "P->F", "F->P", "F->F"]
KINDS: tuple[FlipKind, ...] = ("P->F", "F->P", "P->P", "F->F")
_KIND_OF: dict[str, FlipKind] = {kind: kind for kind in KINDS}  # a kind's text as the FlipKind it names


class Flip(BaseModel):
    """One task's baseline and candidate result (majority over trials)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_id: str
    kind: FlipKind
    baseline_pass_rate: float
    candidate_pass_rate: float
    baseline_error: str | None = None
    candidate_error: str | None = None
    baseline_runs: int | None = None
    candidate_runs: int | None = None
    confirmed: bool | None = Field(default=None, description="Flips only: did the exact test confirm it?")
    p_value: float | None = Field(default=None, description="One-sided Fisher p-value in the flip's direction.")


class FlipTable(BaseModel):
    """Flips for every task evaluated on both sides."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    flips: list[Flip]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {kind: 0 for kind in KINDS}
        for flip in self.flips:
            counts[flip.kind] += 1
        return counts

    @property
    def regressions(self) -> list[Flip]:
        return [f for f in self.flips if f.kind == "P->F"]

    @property
    def fixes(self) -> list[Flip]:
        return [f for f in self.flips if f.kind == "F->P"]

    def confirmed_counts(self) -> dict[str, int]:
        """Confirmed P->F and F->P flips."""
        return {kind: sum(1 for f in self.flips if f.kind == kind and f.confirmed) for kind in ("P->F", "F->P")}

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([f.model_dump() for f in self.flips], columns=list(Flip.model_fields))


def flips_from_classified(classified: ClassifiedTasks, baseline: list[Outcome], candidate: list[Outcome]) -> FlipTable:
    """The flip table of a statistical gate (gates.statistics.classify): majority kinds plus evidence."""
    base_errors, cand_errors = _first_errors(baseline), _first_errors(candidate)
    flips = []
    for row in sorted(classified.rows(), key=lambda r: natural_key(r.task_id)):
        kind = _KIND_OF[f"{'P' if row.b_rate >= 0.5 else 'F'}->{'P' if row.c_rate >= 0.5 else 'F'}"]
        p_value = {"P->F": row.p_regression, "F->P": row.p_fix}.get(kind)
        flips.append(
            Flip(
                task_id=str(row.task_id),
                kind=kind,
                baseline_pass_rate=float(row.b_rate),
                candidate_pass_rate=float(row.c_rate),
                baseline_error=base_errors.get(row.task_id),
                candidate_error=cand_errors.get(row.task_id),
                baseline_runs=int(row.b_n),
                candidate_runs=int(row.c_n),
                confirmed=None if p_value is None else row.flip in ("regression", "fix"),
                p_value=None if p_value is None else round(float(p_value), 6),
            )
        )
    return FlipTable(flips=flips)


def _first_errors(outcomes: list[Outcome]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for o in outcomes:
        if o.error_type and o.task_id not in errors:
            errors[o.task_id] = o.error_type
    return errors
