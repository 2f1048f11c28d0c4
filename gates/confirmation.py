"""Adaptive confirmation: more trials only for the tasks whose flip is in doubt.

After the first trials, a task is *in doubt* when its data leans towards a change (the
one-sided Fisher p-value in either direction is <= SCREEN) but the change is not confirmed
yet. Each round runs one more trial of every task in doubt, on each side still below the
policy's `confirmation_cap`, and classifies again; tasks whose evidence settles either way
leave the loop. Stable tasks never get a second look, which is how the gate is both more
trustworthy and cheaper than "run everything N times".

A task also leaves the loop as soon as it cannot be confirmed any more (curtailment): if even
the most extreme remaining trials (every further baseline run passing and every candidate run
failing, or the other way round) would leave the Fisher p-value above the task's level, more
trials cannot change the verdict, so none are run. This is exact: it never changes a
classification the full loop would reach, only what it costs.

The sampler is a callback, so the cycle (real runs through the run store), `ratchet gate`'s
tests and the ground-truth benchmark (simulated tasks) share this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from gates.statistics import classify, fisher_greater, fisher_less

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
    """Tasks leaning towards a change that is not confirmed, with room for another trial on a side,
    that more trials (up to `cap` a side) could still confirm."""
    leaning = (classified["p_regression"] <= SCREEN) | (classified["p_fix"] <= SCREEN)
    settled = classified["flip"].isin(["regression", "fix"])
    room = (classified["b_n"] < cap) | (classified["c_n"] < cap)
    candidates = classified[leaning & ~settled & room]
    return [row.task_id for row in candidates.itertuples() if _can_still_confirm(row, cap)]


def _can_still_confirm(row: object, cap: int) -> bool:
    """Whether the most extreme remaining trials would bring either one-sided p-value to the task's level."""
    b_pass, b_n, c_pass, c_n = (int(getattr(row, name)) for name in ("b_pass", "b_n", "c_pass", "c_n"))
    b_more, c_more = max(0, cap - b_n), max(0, cap - c_n)
    level = float(getattr(row, "level"))
    worse = fisher_greater(b_pass + b_more, b_n + b_more, c_pass, c_n + c_more)
    better = fisher_less(b_pass, b_n + b_more, c_pass + c_more, c_n + c_more)
    return min(worse, better) <= level


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
