"""Trial statistics for the gate: per-task pass counts, exact tests for flips, suite-level rates.

A task *looks* flipped when its majority outcome differs between baseline and candidate
(P->F: baseline pass rate >= 0.5, candidate < 0.5; F->P the other way). It is a *confirmed*
regression (fix) when its pass rate went down (up) and a one-sided Fisher exact test on the
2x2 table

                 passes   fails
    baseline       b      nb - b
    candidate      c      nc - c

rejects "the candidate passes at least as often as the baseline" ("... at most as often")
at the task's level (its share of the policy's alpha, below). The p-value is the hypergeometric tail: with K = b + c passes
among N = nb + nc runs, P(X >= b) for X ~ Hypergeometric(N, K, nb) (regressions), P(X <= b)
for fixes. Exact for any trial counts; with one trial a side it is 0.5, so a single run can
never confirm a flip, which is the point. A confirmed change need not cross the majority
line: a task that passed 9 of 9 before and 4 of 9 after regressed, even at 44% (p = 0.015, when
no more than three tasks share alpha).

The policy's alpha is for the whole candidate, not for each task: it bounds the chance that a
gate calls any false flip, so it is shared among the tasks whose counts lean either way (the
*family*: one-sided p-value <= FAMILY_SCREEN in either direction; no other task can be confirmed
at any level <= alpha). The sharing is a weighted Bonferroni split: each task in the family gets
weight 1, or 1 / FLAKY_DIVISOR when it is known to be flaky from history (gates.flakiness), and
its level is alpha * weight / (sum of the family's weights). So on a suite where a dozen flaky
tasks wobble, a stable task that breaks still needs only p <= about alpha / 5, while a flaky task
needs twenty times more, and the gate's false-reject rate stays near alpha however many tasks
wobble (`benchmarks/gate_error_rates.py` measures it). The family is read from the counts, so the
same counts always give the same levels: a verdict re-derives from its stored outcome tables.

Also here: the negative flip rate (NFR, Yan et al. 2021: share of tasks right before and
wrong after), its relative form (NFR / baseline error rate), and Wilson score intervals for
suite pass rates. Everything works on counts grouped per task, so a million outcome rows
cost one pandas groupby.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

FlipClass = Literal["regression", "fix", "unconfirmed_regression", "unconfirmed_fix", "stable_pass", "stable_fail"]
COUNT_COLUMNS = ["task_id", "b_pass", "b_n", "c_pass", "c_n"]
FLAKY_DIVISOR = 20
FAMILY_SCREEN = 0.5


class TaskClass(NamedTuple):
    """One task of a classified table: both sides' pass counts, the two one-sided p-values, the task's
    level (share of alpha) and its flip class."""

    task_id: str
    b_pass: int
    b_n: int
    c_pass: int
    c_n: int
    b_rate: float
    c_rate: float
    p_regression: float
    p_fix: float
    flaky: bool
    shares_alpha: bool
    level: float
    flip: FlipClass


@dataclass(frozen=True)
class ClassifiedTasks:
    """The classified table (`classify`'s frame) as a typed record: the only way code outside the
    statistics reads it, so the column names stay a private schema of this module and gates.confirmation."""

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self) -> Iterator[TaskClass]:
        """Every task, in the table's order."""
        columns = self.frame[list(TaskClass._fields)]
        for values in columns.itertuples(index=False, name=None):
            task_id, b_pass, b_n, c_pass, c_n, b_rate, c_rate, p_reg, p_fix, flaky, shares, level, flip = values
            yield TaskClass(
                str(task_id), int(b_pass), int(b_n), int(c_pass), int(c_n), float(b_rate), float(c_rate),
                float(p_reg), float(p_fix), bool(flaky), bool(shares), float(level), flip,
            )  # fmt: skip

    def tasks(self, *flips: FlipClass) -> list[str]:
        """The ids of the tasks in any of these flip classes, in the table's order."""
        return [str(t) for t in self.frame.loc[self.frame["flip"].isin(flips), "task_id"]]

    def count(self, flip: FlipClass) -> int:
        return int((self.frame["flip"] == flip).sum())

    def changed(self) -> list[TaskClass]:
        """Tasks whose majority outcome changed or whose change was confirmed (every class but stable)."""
        return [row for row in self.rows() if row.flip not in ("stable_pass", "stable_fail")]

    def flaky_tasks(self) -> list[str]:
        """The tasks weighed as flaky (1 / FLAKY_DIVISOR of a share), sorted: an input of the verdict."""
        return sorted(str(t) for t in self.frame.loc[self.frame["flaky"], "task_id"])

    def runs(self) -> tuple[int, int, int, int]:
        """(baseline passes, baseline runs, candidate passes, candidate runs) over every task."""
        f = self.frame
        return int(f["b_pass"].sum()), int(f["b_n"].sum()), int(f["c_pass"].sum()), int(f["c_n"].sum())

    def negative_flip_rate(self) -> tuple[float, float | None]:
        return negative_flip_rate(self.frame)

    def family(self) -> tuple[int, int]:
        """(stable, flaky) tasks that shared alpha: they leaned either way (see the module's notes)."""
        if self.frame.empty or "shares_alpha" not in self.frame:
            return 0, 0
        leaning = self.frame["shares_alpha"]
        flaky = int((leaning & self.frame["flaky"]).sum())
        return int(leaning.sum()) - flaky, flaky


def task_counts(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per task: passes and runs. `outcomes` has columns task_id and passed (one row per trial)."""
    grouped = outcomes.groupby("task_id", sort=False)["passed"].agg(["sum", "count"])
    return grouped.rename(columns={"sum": "passes", "count": "runs"}).astype("int64")


def paired_counts(baseline: pd.DataFrame, candidate: pd.DataFrame) -> pd.DataFrame:
    """Tasks run on both sides: task_id, b_pass, b_n, c_pass, c_n (outcome frames as in `task_counts`)."""
    b, c = task_counts(baseline), task_counts(candidate)
    joined = b.join(c, how="inner", lsuffix="_b", rsuffix="_c")
    frame = pd.DataFrame(
        {
            "task_id": joined.index,
            "b_pass": joined["passes_b"].to_numpy(),
            "b_n": joined["runs_b"].to_numpy(),
            "c_pass": joined["passes_c"].to_numpy(),
            "c_n": joined["runs_c"].to_numpy(),
        }
    )
    return frame.reset_index(drop=True)


def paired_from_counts(
    baseline: Mapping[str, tuple[int, int]], candidate: Mapping[str, tuple[int, int]]
) -> pd.DataFrame:
    """`paired_counts` from (passes, runs) per task of each side: tasks on both sides, baseline's order."""
    tasks = [t for t in baseline if t in candidate]

    def column(counts: Mapping[str, tuple[int, int]], index: int) -> np.ndarray:
        return np.array([counts[t][index] for t in tasks], dtype=np.int64)

    return pd.DataFrame(
        {
            "task_id": tasks,
            "b_pass": column(baseline, 0),
            "b_n": column(baseline, 1),
            "c_pass": column(candidate, 0),
            "c_n": column(candidate, 1),
        }
    )


@lru_cache(maxsize=65536)
def fisher_greater(b_pass: int, b_n: int, c_pass: int, c_n: int) -> float:
    """One-sided Fisher exact p-value for "the baseline passes more often than the candidate"."""
    total, passes = b_n + c_n, b_pass + c_pass
    denominator = math.comb(total, b_n)
    top = min(b_n, passes)
    tail = sum(math.comb(passes, i) * math.comb(total - passes, b_n - i) for i in range(b_pass, top + 1))
    return min(1.0, tail / denominator)


def fisher_less(b_pass: int, b_n: int, c_pass: int, c_n: int) -> float:
    """One-sided Fisher exact p-value for "the candidate passes more often than the baseline"."""
    return fisher_greater(c_pass, c_n, b_pass, b_n)


def classify(counts: pd.DataFrame, alpha: float, flaky: Collection[str] = (), shared: bool = True) -> pd.DataFrame:
    """`counts` plus b_rate, c_rate, p_regression, p_fix, `flaky`, `shares_alpha` (leans either way),
    `level` and `flip` (a FlipClass) per task.

    `level` is the task's share of alpha (see the module's notes): alpha * weight / the family's total
    weight, where a task in `flaky` weighs 1 / FLAKY_DIVISOR. The tests run once per distinct
    (b_pass, b_n, c_pass, c_n): with a handful of trials there are only a few dozen, whatever the
    number of tasks. `shared=False` is the rule of verdicts before version 2 (gates.policy.Verdict):
    every task at alpha, flaky ones at alpha / FLAKY_DIVISOR; `ratchet verify` re-derives those with it.
    """
    frame = counts.copy()
    frame["b_rate"] = frame["b_pass"] / frame["b_n"]
    frame["c_rate"] = frame["c_pass"] / frame["c_n"]
    keys = list(zip(frame["b_pass"], frame["b_n"], frame["c_pass"], frame["c_n"], strict=True))
    distinct = {key: (fisher_greater(*key), fisher_less(*key)) for key in set(keys)}
    frame["p_regression"] = [distinct[k][0] for k in keys]
    frame["p_fix"] = [distinct[k][1] for k in keys]
    frame["flaky"] = frame["task_id"].isin(set(flaky)) if len(flaky) else False
    weight = frame["flaky"].map({True: 1 / FLAKY_DIVISOR, False: 1.0}).astype("float64")
    family = (frame["p_regression"] <= FAMILY_SCREEN) | (frame["p_fix"] <= FAMILY_SCREEN)
    frame["shares_alpha"] = family
    frame["weight"] = weight
    frame["family_weight"] = max(1.0, float(weight[family].sum())) if shared else 1.0
    frame["level"] = alpha * weight / frame["family_weight"]
    b_up, c_up = frame["b_rate"] >= 0.5, frame["c_rate"] >= 0.5
    looks_regression, looks_fix = b_up & ~c_up, ~b_up & c_up
    flip = pd.Series("stable_fail", index=frame.index, dtype="object")
    flip[b_up & c_up] = "stable_pass"
    flip[looks_regression] = "unconfirmed_regression"
    flip[looks_fix] = "unconfirmed_fix"
    flip[(frame["c_rate"] < frame["b_rate"]) & (frame["p_regression"] <= frame["level"])] = "regression"
    flip[(frame["c_rate"] > frame["b_rate"]) & (frame["p_fix"] <= frame["level"])] = "fix"
    frame["flip"] = flip
    return frame


def negative_flip_rate(classified: pd.DataFrame) -> tuple[float, float | None]:
    """(NFR, relative NFR): share of tasks passing before and failing after (majority outcomes), and
    that share over the baseline's error rate (None when the baseline fails nothing)."""
    if classified.empty:
        return 0.0, None
    negative = (classified["b_rate"] >= 0.5) & (classified["c_rate"] < 0.5)
    nfr = float(negative.mean())
    baseline_error = float((classified["b_rate"] < 0.5).mean())
    return nfr, (nfr / baseline_error if baseline_error > 0 else None)


def wilson_interval(passes: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """95% (by default) Wilson score interval for a pass rate; (0, 1) with no runs."""
    if runs == 0:
        return 0.0, 1.0
    p = passes / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)
