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
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from ratchet.gates.clearing import drop_upper_bound, wilson_bounds, z_for
from ratchet.gates.fdr import SCREEN, fdr_levels
from ratchet.gates.fisher import fisher_greater, fisher_less

FlipClass = Literal["regression", "fix", "unconfirmed_regression", "unconfirmed_fix", "stable_pass", "stable_fail"]
COUNT_COLUMNS = ["task_id", "b_pass", "b_n", "c_pass", "c_n"]
FLAKY_DIVISOR = 20
FAMILY_SCREEN = SCREEN
RULE_VERSION = 3  # the rule of new verdicts (gates.policy.Verdict.version)
MIXED_BAND = (0.1, 0.9)  # a baseline rate surely inside it is flaky (the flakiness model's STABLE_EDGE)
MIXED_MIN_RUNS = 8  # baseline runs before its own counts may show it (fewer: a stable task's slips look mixed)


class TaskClass(NamedTuple):
    """One task of a classified table: both sides' pass counts, the two one-sided p-values, the
    p-value each direction needs (level, fix_level), its flip class, and the clearing test: the upper
    bound of its fall against the margin, whether that cleared it, and whether it is undecided
    (leans towards a regression that is neither confirmed nor cleared)."""

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
    fix_level: float
    upper_drop: float
    margin: float
    cleared: bool
    undecided: bool


@dataclass(frozen=True)
class ClassifiedTasks:
    """The classified table (`classify`'s frame) as a typed record: the only way code outside the
    statistics reads it, so the column names stay a private schema of this module and gates.confirmation."""

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self) -> Iterator[TaskClass]:
        """Every task, in the table's order."""
        return _rows(self.frame)

    def tasks(self, *flips: FlipClass) -> list[str]:
        """The ids of the tasks in any of these flip classes, in the table's order."""
        return [str(t) for t in self.frame.loc[self.frame["flip"].isin(flips), "task_id"]]

    def count(self, flip: FlipClass) -> int:
        return int((self.frame["flip"] == flip).sum())

    def changed(self) -> list[TaskClass]:
        """Tasks whose majority outcome changed, whose change was confirmed, or that are undecided."""
        f = self.frame
        return list(_rows(f[~f["flip"].isin(["stable_pass", "stable_fail"]) | f["undecided"]]))

    def undecided(self) -> list[TaskClass]:
        """Tasks leaning towards a regression that is neither confirmed nor cleared, strongest lean first."""
        f = self.frame
        return list(_rows(f[f["undecided"]].sort_values(["p_regression", "upper_drop"], ascending=[True, False])))

    def count_undecided(self) -> int:
        return int(self.frame["undecided"].sum())

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


def _rows(frame: pd.DataFrame) -> Iterator[TaskClass]:
    columns = frame[list(TaskClass._fields)]
    for values in columns.itertuples(index=False, name=None):
        (task_id, b_pass, b_n, c_pass, c_n, b_rate, c_rate, p_reg, p_fix, flaky, shares, level, flip, fix_level,
         upper_drop, margin, cleared, undecided) = values  # fmt: skip
        yield TaskClass(
            str(task_id), int(b_pass), int(b_n), int(c_pass), int(c_n), float(b_rate), float(c_rate),
            float(p_reg), float(p_fix), bool(flaky), bool(shares), float(level), flip, float(fix_level),
            float(upper_drop), float(margin), bool(cleared), bool(undecided),
        )  # fmt: skip


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


@dataclass(frozen=True)
class TaskRule:
    """The parameters of the per-task rule (a GatePolicy gives them: `GatePolicy.task_rule`)."""

    alpha: float
    version: int = RULE_VERSION
    margin: float = 0.4
    flaky_margin: float = 0.8
    clearing_level: float = 0.1
    # the caps of a sequential gate (the cycle's confirmation): the clearing boundary is then
    # O'Brien-Fleming shaped, z * sqrt(cap / n), so a task is not cleared early by a lucky streak;
    # None: the counts were not collected sequentially (result files), the boundary is z
    cap: int | None = None
    flaky_cap: int | None = None


def classify(counts: pd.DataFrame, rule: TaskRule, flaky: Collection[str] = ()) -> pd.DataFrame:
    """`counts` plus, per task: b_rate, c_rate, p_regression, p_fix, flaky, shares_alpha, level and
    fix_level (the p-value each direction needs), flip (a FlipClass), upper_drop and margin (the
    clearing test), cleared and undecided. The rule of `rule.version`: 3 (the module's notes) or, to
    re-derive older verdicts, 2 and 1 (`classify_shared_alpha`).

    A task is undecided when it leans towards a regression (the candidate's pass rate is lower, or
    both sides passed some runs and failed others at the same rate and the task is not known to be
    flaky: such counts cannot lean either way, and a stable pass that broke can hide there) that is
    neither confirmed nor cleared."""
    if rule.version < RULE_VERSION:
        return classify_shared_alpha(counts, rule.alpha, flaky, shared=rule.version >= 2)
    columns = _with_p_values(counts, flaky)
    b_pass, b_n, c_pass, c_n = columns["b_pass"], columns["b_n"], columns["c_pass"], columns["c_n"]
    b_rate, c_rate = columns["b_rate"], columns["c_rate"]
    p_regression, p_fix, is_flaky = columns["p_regression"], columns["p_fix"], columns["flaky"]
    weight = np.where(is_flaky, 1 / FLAKY_DIVISOR, 1.0)
    level, regression = fdr_levels(p_regression, weight, rule.alpha)
    fix_level, fix = fdr_levels(p_fix, weight, rule.alpha)
    flip = _flip_array(b_rate, c_rate, regression & (c_rate < b_rate), fix & (c_rate > b_rate))
    z = z_for(rule.clearing_level)
    boundary = clearing_boundary(rule, is_flaky, np.minimum(b_n, c_n))
    low, high = wilson_bounds(b_pass, b_n, z)
    # this gate's own baseline runs show the task is flaky
    mixed = (b_n >= MIXED_MIN_RUNS) & (low > MIXED_BAND[0]) & (high < MIXED_BAND[1])
    margin = np.where(is_flaky | mixed, rule.flaky_margin, rule.margin)
    upper = drop_upper_bound(b_pass, b_n, c_pass, c_n, boundary)
    clear = upper < margin
    leaning = (c_rate < b_rate) | ((c_rate == b_rate) & (b_rate > 0) & (b_rate < 1) & ~is_flaky)
    columns |= {
        "shares_alpha": (p_regression <= SCREEN) | (p_fix <= SCREEN),
        "level": level,
        "fix_level": fix_level,
        "flip": flip,
        "margin": margin,
        "upper_drop": upper,
        "cleared": clear,
        "undecided": leaning & ~clear & (flip != "regression"),
    }
    return pd.DataFrame(columns)


def clearing_boundary(rule: TaskRule, flaky: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """The normal quantile each task is cleared at: z of the clearing level, or, in a sequential gate,
    z * sqrt(cap / n) with n the runs of the task's smaller side (O'Brien & Fleming 1979): strict at
    the first looks, z at the cap."""
    z = z_for(rule.clearing_level)
    if rule.cap is None:
        return np.full(runs.shape, z)
    caps = np.where(flaky, rule.flaky_cap or rule.cap, rule.cap)
    return z * np.sqrt(np.maximum(1.0, caps / np.maximum(runs, 1)))


def classify_shared_alpha(
    counts: pd.DataFrame, alpha: float, flaky: Collection[str] = (), shared: bool = True
) -> pd.DataFrame:
    """The rule of verdicts before version 3 (`ratchet verify` re-derives them with it): every task
    in the family at its weighted Bonferroni share of alpha (`shared`, version 2) or at alpha
    (version 1), flaky ones at 1 / FLAKY_DIVISOR of it; no clearing, nothing undecided.

    `level` is the task's share of alpha: alpha * weight / the family's total weight, where a task in
    `flaky` weighs 1 / FLAKY_DIVISOR."""
    frame = pd.DataFrame(_with_p_values(counts, flaky))
    weight = _weights(frame)
    family = (frame["p_regression"] <= FAMILY_SCREEN) | (frame["p_fix"] <= FAMILY_SCREEN)
    frame["shares_alpha"] = family
    family_weight = max(1.0, float(weight[family].sum())) if shared else 1.0
    frame["level"] = alpha * weight / family_weight
    frame["fix_level"] = frame["level"]
    regression = (frame["c_rate"] < frame["b_rate"]) & (frame["p_regression"] <= frame["level"])
    fix = (frame["c_rate"] > frame["b_rate"]) & (frame["p_fix"] <= frame["level"])
    frame["flip"] = _flip_array(
        frame["b_rate"].to_numpy(), frame["c_rate"].to_numpy(), regression.to_numpy(), fix.to_numpy()
    )
    frame["margin"] = np.nan
    frame["upper_drop"] = np.nan
    frame["cleared"] = True
    frame["undecided"] = False
    return frame


def _with_p_values(counts: pd.DataFrame, flaky: Collection[str]) -> dict[str, np.ndarray]:
    """The columns of `counts` plus b_rate, c_rate, both one-sided Fisher p-values and `flaky`. The
    tests run once per distinct (b_pass, b_n, c_pass, c_n): with a handful of trials there are only a
    few dozen, whatever the number of tasks."""
    columns = {c: counts[c].to_numpy(dtype="int64") for c in ("b_pass", "b_n", "c_pass", "c_n")}
    keys = np.stack([columns["b_pass"], columns["b_n"], columns["c_pass"], columns["c_n"]], axis=1)
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    tests = np.array([(fisher_greater(*key), fisher_less(*key)) for key in distinct.tolist()], dtype="float64")
    tests = tests.reshape(-1, 2)[inverse.reshape(-1)]
    ids = counts["task_id"]
    return {
        "task_id": ids.to_numpy(dtype=object),
        **columns,
        "b_rate": columns["b_pass"] / columns["b_n"],
        "c_rate": columns["c_pass"] / columns["c_n"],
        "p_regression": tests[:, 0],
        "p_fix": tests[:, 1],
        "flaky": ids.isin(set(flaky)).to_numpy(dtype=bool) if len(flaky) else np.zeros(len(ids), dtype=bool),
    }


def _weights(frame: pd.DataFrame) -> pd.Series:
    return frame["flaky"].map({True: 1 / FLAKY_DIVISOR, False: 1.0}).astype("float64")


def _flip_array(b_rate: np.ndarray, c_rate: np.ndarray, regression: np.ndarray, fix: np.ndarray) -> np.ndarray:
    """Majority classes (stable pass / fail, unconfirmed regression / fix), then the confirmed ones."""
    b_up, c_up = b_rate >= 0.5, c_rate >= 0.5
    flip = np.select(
        [fix, regression, b_up & c_up, b_up & ~c_up, ~b_up & c_up],
        ["fix", "regression", "stable_pass", "unconfirmed_regression", "unconfirmed_fix"],
        "stable_fail",
    )
    return flip.astype(object)


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
