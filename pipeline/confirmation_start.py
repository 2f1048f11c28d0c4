"""Where a gate's adaptive confirmation started, kept so that a restarted cycle replays it exactly.

Confirmation is sequential: which tasks get another trial depends on the counts so far and on
which tasks history calls flaky. A cycle killed mid-confirmation leaves some confirmation trials
in the run store. Were the restarted cycle to start from *everything* stored, it would begin from
different counts (and a different flaky set, since those trials are history too), ask for other
trials, and could reach another verdict than the uninterrupted cycle.

So the first time a gate on (baseline, candidate, split) starts, the per-task trial counts of both
sides and the flaky set are written to `.ratchet/confirmation/<baseline run key>--<candidate run
key>--<split>.json` (written to a temporary file, fsynced, renamed: all or nothing). A restart
loads them and confirms from the same start; every trial it then asks for that the killed cycle
already finished is read back from the run store instead of being run again. At the start every
run in the store was made by a deterministic step (the evaluations before the gate), so the
snapshot is the same whether or not a kill came before it was written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FOLDER = "confirmation"


class ConfirmationStart(BaseModel):
    """Trials per task on each side when confirmation began, and the tasks history called flaky then."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    baseline: dict[str, int] = Field(description="Task id -> trials of the baseline counted at the start.")
    candidate: dict[str, int] = Field(description="Task id -> trials of the candidate counted at the start.")
    flaky: list[str] = Field(default_factory=list, description="Tasks known to be flaky (weight 1 / FLAKY_DIVISOR).")


def start_path(root: Path, baseline_slug: str, candidate_slug: str, split: str) -> Path:
    return root / FOLDER / f"{baseline_slug}--{candidate_slug}--{split}.json"


def load_or_record(path: Path, compute: Callable[[], ConfirmationStart]) -> ConfirmationStart:
    """The recorded start for this gate, or `compute()` recorded now. An unreadable file (it cannot be
    torn: it is renamed into place whole) is recomputed, which is what a first start would do."""
    if path.exists():
        try:
            return ConfirmationStart.model_validate_json(path.read_bytes())
        except ValidationError:
            pass
    start = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    with partial.open("wb") as handle:
        handle.write(start.model_dump_json(indent=1).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return start
