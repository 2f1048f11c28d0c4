"""`ratchet diff`: two releases' artifacts and the flips between their stored gate outcomes (which table
belongs to a release: pipeline.release_outcomes), judged at the later release's gate alpha."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import UserError
from ratchet.gates import Flip, flips_from_classified
from ratchet.pipeline.release_outcomes import OutcomeSource, ReleaseLine, parse_release
from ratchet.releases import outcomes_of

if TYPE_CHECKING:  # pandas and the statistics are for this command only
    import pandas as pd


class ReleaseDiff(BaseModel):
    """What `ratchet diff` shows: the artifact diff and the flips between two releases' stored outcomes."""

    model_config = ConfigDict(frozen=True)
    version: int = 1
    agent: str
    old: str
    new: str
    files: list[str] = Field(description="Paths under agents/<agent>/ that differ.")
    patch: str = Field(description="`git diff <old> <new> -- agents/<agent>/`.")
    old_outcomes: OutcomeSource | None = None
    new_outcomes: OutcomeSource | None = None
    missing: str | None = Field(default=None, description="Why there is no flip table, when there is none.")
    alpha: float | None = Field(default=None, description="From the later release's verdict.json policy.")
    counts: dict[str, int] = Field(default_factory=dict, description="Tasks per kind (majority outcomes).")
    confirmed: dict[str, int] = Field(default_factory=dict, description="Confirmed P->F and F->P flips.")
    flips: list[Flip] = Field(default_factory=list, description="The tasks that changed: P->F and F->P.")


def release_diff(line: ReleaseLine, old: str, new: str) -> ReleaseDiff:
    """Diff two releases of the line's agent (UserError for unknown ones)."""
    for release in (old, new):
        line.require(release)
    patch = line.reader.git.repo.git.diff(
        "--no-color", f"refs/tags/{old}", f"refs/tags/{new}", "--", f"agents/{line.agent}/"
    )
    files = re.findall(r"(?m)^diff --git a/(\S+) b/", patch)
    result = ReleaseDiff(
        agent=line.agent,
        old=old,
        new=new,
        files=files,
        patch=patch,
        old_outcomes=line.source(old),
        new_outcomes=line.source(new),
    )
    missing = [r for r, s in ((old, result.old_outcomes), (new, result.new_outcomes)) if s is None]
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        why = f"{' and '.join(missing)} {verb} no stored gate outcomes (no cycle has evaluated it on the gate split)"
        return result.model_copy(update={"missing": why})
    frames = [_outcome_frame(line, s) for s in (result.old_outcomes, result.new_outcomes)]
    later = max(old, new, key=lambda name: parse_release(name)[1])
    alpha = line.alpha(later)
    from ratchet.gates import GatePolicy, JudgedSplit, judge, paired_counts

    judged = judge(GatePolicy(name="diff", alpha=alpha, min_fixes=0), JudgedSplit(paired_counts(*frames)))
    table = flips_from_classified(judged.gate, *(outcomes_of(f) for f in frames))
    return result.model_copy(
        update={
            "alpha": alpha,
            "counts": table.counts(),
            "confirmed": table.confirmed_counts(),
            "flips": [f for f in table.flips if f.kind in ("P->F", "F->P")],
        }
    )


def _outcome_frame(line: ReleaseLine, source: OutcomeSource | None) -> pd.DataFrame:
    frame = line.reader.outcomes(line.entry(source), source.side) if source else None
    if frame is None:  # source() only returns tables it has read
        raise UserError(f"{source.path if source else 'outcomes'}: unreadable outcome table")
    return frame
