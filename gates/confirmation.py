"""Sequential confirmation: more trials only for the tasks whose verdict is still open.

After the first trials, a task is *in doubt* when

* it is undecided (gates.statistics): it leans towards a regression (lower pass rate on the
  candidate, or equal mixed outcomes on a task not known to be flaky) that is neither confirmed
  (gates.fdr) nor cleared (gates.clearing); or
* its data lean towards a fix (one-sided Fisher p-value <= gates.fdr.SCREEN, higher rate on the
  candidate) that is not confirmed yet: fixes count towards the policy's `min_fixes`.

Each round runs one more trial of every task in doubt, on each side still below the task's cap,
and classifies again; a task leaves the loop as soon as it crosses a boundary: confirmed (either
way) or cleared. This is a group-sequential design with two boundaries and curtailment: a task
also leaves as soon as neither boundary can be crossed within its cap. For the regression side,
if even the most extreme remaining trials (every further baseline run passing, every candidate
run failing) would leave the Fisher p-value above the task's level, and even the kindest ones
(every baseline run failing, every candidate run passing) would leave the bound of its fall at or
above the margin, no trial can settle it and none is run: it stays undecided, and the verdict is
inconclusive. Trials go where the evidence is closest to a boundary; stable tasks never get a
second look.

The cap is the policy's `confirmation_cap`, or its `flaky_confirmation_cap` for tasks known to be
flaky. The sampler is a callback, so the cycle (real runs through the run store), tests and the
ground-truth benchmark (simulated tasks) share this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ratchet.gates.clearing import drop_bound_of, z_for
from ratchet.gates.fdr import SCREEN
from ratchet.gates.fisher import fisher_greater, fisher_less
from ratchet.gates.statistics import TaskRule, classify

Side = Literal["baseline", "candidate"]
# sample(task_ids, side) -> {task_id: passed} for one more trial of each of those tasks
Sampler = Callable[[list[str], Side], dict[str, bool]]
# (side, its passes column, its runs column) in the counts table
_SIDES: tuple[tuple[Side, str, str], ...] = (("baseline", "b_pass", "b_n"), ("candidate", "c_pass", "c_n"))
_DOUBT_COLUMNS = (
    "task_id", "b_pass", "b_n", "c_pass", "c_n", "b_rate", "c_rate", "p_fix", "flip", "undecided", "level",
    "fix_level", "margin",
)  # fmt: skip


@dataclass
class Confirmation:
    """The final classification and what confirming it cost."""

    classified: pd.DataFrame
    rounds: int = 0
    extra_runs: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})


def in_doubt(
    classified: pd.DataFrame, rule: TaskRule, cap: int, flaky_cap: int | None = None, wants_fixes: bool = True
) -> list[str]:
    """Tasks still open (above) with room for another trial on a side (up to `cap` a side, `flaky_cap`
    for flaky tasks) that more trials could still settle; tasks leaning towards a fix only when
    `wants_fixes` (the policy counts confirmed fixes)."""
    column = {name: classified[name].to_numpy() for name in _DOUBT_COLUMNS}
    fix_leaning = (column["p_fix"] <= SCREEN) & (column["c_rate"] > column["b_rate"]) & (column["flip"] != "fix")
    fix_leaning &= wants_fixes
    caps = task_caps(classified, cap, flaky_cap).to_numpy()
    room = (column["b_n"] < caps) | (column["c_n"] < caps)
    z = z_for(rule.clearing_level)
    chosen = np.flatnonzero((column["undecided"].astype(bool) | fix_leaning) & room)
    return [str(column["task_id"][i]) for i in chosen if _can_still_settle(column, int(i), int(caps[i]), z)]


def task_caps(classified: pd.DataFrame, cap: int, flaky_cap: int | None = None) -> pd.Series:
    """Most trials a side per task: `cap`, or `flaky_cap` (at most `cap`) for tasks known to be flaky."""
    smaller = cap if flaky_cap is None else min(cap, flaky_cap)
    return classified["flaky"].map({True: smaller, False: cap}).astype("int64")


def _can_still_settle(column: dict[str, np.ndarray], i: int, cap: int, z: float) -> bool:
    """Whether the most extreme remaining trials (up to `cap` a side) could cross a boundary for task
    `i`: confirm or clear an undecided task, confirm a task leaning towards a fix."""
    b_pass, b_n, c_pass, c_n = (int(column[name][i]) for name in ("b_pass", "b_n", "c_pass", "c_n"))
    b_more, c_more = max(0, cap - b_n), max(0, cap - c_n)
    if not column["undecided"][i]:
        return fisher_less(b_pass, b_n + b_more, c_pass + c_more, c_n + c_more) <= column["fix_level"][i]
    worse = fisher_greater(b_pass + b_more, b_n + b_more, c_pass, c_n + c_more)
    kindest = drop_bound_of(b_pass, b_n + b_more, c_pass + c_more, c_n + c_more, z)
    return bool(worse <= column["level"][i] or kindest < column["margin"][i])


def confirm(
    counts: pd.DataFrame,
    sample: Sampler,
    rule: TaskRule,
    cap: int,
    flaky: Collection[str] = (),
    flaky_cap: int | None = None,
    wants_fixes: bool = True,
) -> Confirmation:
    """Run more trials for tasks in doubt until none is left or every one reached its cap on both sides."""
    ids = [str(t) for t in counts["task_id"]]
    position = {task: i for i, task in enumerate(ids)}
    tally = {name: counts[name].to_numpy(dtype="int64").copy() for name in ("b_pass", "b_n", "c_pass", "c_n")}

    def table() -> pd.DataFrame:
        return pd.DataFrame({"task_id": ids, **{name: values.copy() for name, values in tally.items()}})

    result = Confirmation(classified=classify(table(), rule, flaky))
    caps = task_caps(result.classified, cap, flaky_cap).to_numpy()
    while doubtful := in_doubt(result.classified, rule, cap, flaky_cap, wants_fixes):
        result.rounds += 1
        for side, passes, runs in _SIDES:
            tasks = [t for t in doubtful if tally[runs][position[t]] < caps[position[t]]]
            if not tasks:
                continue
            for task, passed in sample(tasks, side).items():
                tally[runs][position[task]] += 1
                tally[passes][position[task]] += int(passed)
            result.extra_runs[side] += len(tasks)
        result.classified = classify(table(), rule, flaky)
    return result
