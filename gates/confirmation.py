"""Adaptive confirmation: more trials only for the tasks whose flip is in doubt.

After the first trials, a task is *in doubt* when its data leans towards a change (the
one-sided Fisher p-value in either direction is <= SCREEN) but the change is not confirmed
yet. Each round runs one more trial of every task in doubt, on each side still below the
policy's `confirmation_cap`, and classifies again; tasks whose evidence settles either way
leave the loop. Stable tasks never get a second look, which is how the gate is both more
trustworthy and cheaper than "run everything N times".

The sampler is a callback, so the cycle (real runs through the run store), `ratchet gate`'s
tests and the ground-truth benchmark (simulated tasks) share this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from gates.statistics import classify

Side = Literal["baseline", "candidate"]
# sample(task_ids, side) -> {task_id: passed} for one more trial of each of those tasks
Sampler = Callable[[list[str], Side], dict[str, bool]]
SCREEN = 0.5


@dataclass
class Confirmation:
    """The final classification and what confirming it cost."""

    classified: pd.DataFrame
    rounds: int = 0
    extra_runs: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})


def in_doubt(classified: pd.DataFrame, cap: int) -> list[str]:
    """Tasks leaning towards a change that is not confirmed, with room for another trial on a side."""
    leaning = (classified["p_regression"] <= SCREEN) | (classified["p_fix"] <= SCREEN)
    settled = classified["flip"].isin(["regression", "fix"])
    room = (classified["b_n"] < cap) | (classified["c_n"] < cap)
    return classified.loc[leaning & ~settled & room, "task_id"].tolist()


def confirm(counts: pd.DataFrame, sample: Sampler, alpha: float, cap: int,
            flaky: Collection[str] = ()) -> Confirmation:
    """Run more trials for tasks in doubt until none is left or every one reached `cap` on both sides."""
    counts = counts.set_index("task_id", drop=False)
    result = Confirmation(classified=classify(counts.reset_index(drop=True), alpha, flaky))
    while True:
        doubtful = in_doubt(result.classified, cap)
        if not doubtful:
            return result
        result.rounds += 1
        for side, passes, runs in (("baseline", "b_pass", "b_n"), ("candidate", "c_pass", "c_n")):
            tasks = [t for t in doubtful if counts.at[t, runs] < cap]
            if not tasks:
                continue
            for task, passed in sample(tasks, side).items():
                counts.at[task, runs] += 1
                counts.at[task, passes] += int(passed)
            result.extra_runs[side] += len(tasks)
        result.classified = classify(counts.reset_index(drop=True), alpha, flaky)
