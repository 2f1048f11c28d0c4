"""Adaptive confirmation: more trials only for the tasks whose flip is in doubt.

After the first trials, a task is *in doubt* when

* its data leans towards a change (the one-sided Fisher p-value in either direction is
  <= gates.statistics.FAMILY_SCREEN) but the change is not confirmed yet, or
* it is not known to be flaky and both sides passed some runs and failed others at exactly the
  same rate (1 of 2 against 1 of 2): such counts cannot lean either way, and a stable pass that
  broke can hide there.

Each round runs one more trial of every task in doubt, on each side still below the task's cap,
and classifies again; tasks whose evidence settles either way leave the loop. The cap is the
policy's `confirmation_cap` (11 by default), or its `flaky_confirmation_cap` (7) for tasks known
to be flaky: at their stricter level a few more trials rarely settle anything, and they are where
most confirmation runs would otherwise go. Stable tasks never get a second look, which is how the
gate is both more trustworthy and cheaper than "run everything N times".

A task also leaves the loop as soon as it cannot be confirmed any more (curtailment): if even the
most extreme remaining trials (every further baseline run passing and every candidate run
failing, or the other way round) would leave the Fisher p-value above the task's current level,
none are run. The level is the task's share of alpha (gates.statistics), which can grow a little
as other tasks settle, so curtailment may stop a task that a later, larger share would have
confirmed; `benchmarks/gate_error_rates.py` measures the gate with it.

The sampler is a callback, so the cycle (real runs through the run store), `ratchet gate`'s
tests and the ground-truth benchmark (simulated tasks) share this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ratchet.gates.statistics import ClassifiedTasks, TaskClass, classify, fisher_greater, fisher_less

Side = Literal["baseline", "candidate"]
# sample(task_ids, side) -> {task_id: passed} for one more trial of each of those tasks
Sampler = Callable[[list[str], Side], dict[str, bool]]
# (side, its passes column, its runs column) in the counts table
_SIDES: tuple[tuple[Side, str, str], ...] = (("baseline", "b_pass", "b_n"), ("candidate", "c_pass", "c_n"))


@dataclass
class Confirmation:
    """The final classification and what confirming it cost."""

    classified: pd.DataFrame
    rounds: int = 0
    extra_runs: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})


def in_doubt(classified: pd.DataFrame, cap: int, flaky_cap: int | None = None) -> list[str]:
    """Tasks leaning towards a change that is not confirmed (or balanced, see above), with room for
    another trial on a side, that more trials (up to `cap` a side, `flaky_cap` for flaky tasks)
    could still confirm."""
    leaning = classified["shares_alpha"]
    balanced = (
        (classified["b_rate"] == classified["c_rate"])
        & (classified["b_rate"] > 0)
        & (classified["b_rate"] < 1)
        & ~classified["flaky"]
    )
    settled = classified["flip"].isin(["regression", "fix"])
    caps = task_caps(classified, cap, flaky_cap)
    room = (classified["b_n"] < caps) | (classified["c_n"] < caps)
    chosen = (leaning | balanced) & ~settled & room
    candidates = zip(ClassifiedTasks(classified[chosen]).rows(), caps[chosen], strict=True)
    return [row.task_id for row, row_cap in candidates if _can_still_confirm(row, int(row_cap))]


def task_caps(classified: pd.DataFrame, cap: int, flaky_cap: int | None = None) -> pd.Series:
    """Most trials a side per task: `cap`, or `flaky_cap` (at most `cap`) for tasks known to be flaky."""
    smaller = cap if flaky_cap is None else min(cap, flaky_cap)
    return classified["flaky"].map({True: smaller, False: cap}).astype("int64")


def _can_still_confirm(row: TaskClass, cap: int) -> bool:
    """Whether the most extreme remaining trials would bring either one-sided p-value to the task's level."""
    b_pass, b_n, c_pass, c_n = row.b_pass, row.b_n, row.c_pass, row.c_n
    b_more, c_more = max(0, cap - b_n), max(0, cap - c_n)
    level = row.level
    worse = fisher_greater(b_pass + b_more, b_n + b_more, c_pass, c_n + c_more)
    better = fisher_less(b_pass, b_n + b_more, c_pass + c_more, c_n + c_more)
    return min(worse, better) <= level


def confirm(
    counts: pd.DataFrame,
    sample: Sampler,
    alpha: float,
    cap: int,
    flaky: Collection[str] = (),
    flaky_cap: int | None = None,
) -> Confirmation:
    """Run more trials for tasks in doubt until none is left or every one reached its cap on both sides."""
    counts = counts.set_index("task_id", drop=False)
    result = Confirmation(classified=classify(counts.reset_index(drop=True), alpha, flaky))
    while True:
        doubtful = in_doubt(result.classified, cap, flaky_cap)
        if not doubtful:
            return result
        caps = task_caps(result.classified, cap, flaky_cap).set_axis(result.classified["task_id"])
        result.rounds += 1
        for side, passes, runs in _SIDES:
            tasks = [t for t in doubtful if counts.at[t, runs] < caps[t]]
            if not tasks:
                continue
            for task, passed in sample(tasks, side).items():
                counts.at[task, runs] = _count(counts, task, runs) + 1
                counts.at[task, passes] = _count(counts, task, passes) + int(passed)
            result.extra_runs[side] += len(tasks)
        result.classified = classify(counts.reset_index(drop=True), alpha, flaky)


def _count(counts: pd.DataFrame, task: str, column: str) -> int:
    """One task's count: an integer, as `classify` (math.comb) has already required of every count."""
    value = counts.at[task, column]
    assert isinstance(value, int | np.integer)
    return int(value)
