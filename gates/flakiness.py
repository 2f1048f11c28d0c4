"""Flaky tasks, from every stored evaluation: tasks that pass and fail without a real change.

Each task's stored runs are grouped by version (artifact), versions in the order they were first
run; only versions with two or more runs count (one run says nothing about noise). Two
explanations of those counts compete:

* **stable**: in each version the task passes with probability >= 1 - STABLE_EDGE (0.9) or
  <= STABLE_EDGE; a version may change that (releases fix and break tasks for real), with
  probability SWITCH between consecutive versions: a two-state hidden Markov chain, summed over
  every path of states by the forward algorithm;
* **flaky**: the task passes with one probability somewhere in FLAKY_BAND (0.2 to 0.8) in every
  version.

Each likelihood averages p^passes (1 - p)^fails over its band (uniformly, on a fine grid); their
ratio and the prior share FLAKY_PRIOR of flaky tasks give `p_flaky`, the posterior probability
that the task is flaky, and a task is flaky when p_flaky >= 0.5. So it is the whole history that
decides, not one mixed version:

    one version, 1 of 2 passed (a fresh task that wobbled)          p_flaky 0.54  flaky
    six versions, 2 2 2 2 2 2 of 2 except one 1 of 2 (one slip)     p_flaky 0.05  stable
    versions passing 2, 0, 2, 0 of 2 (each agrees with itself)      p_flaky 0.79  flaky
    0, 2, 2, 0 of 2 (fixed by a release, broken by a later one)     p_flaky 0.41  stable
    2, 0, 1, 2, 0, 1 of 2                                           p_flaky 0.99  flaky

The third row is why a coin that happened to agree with itself inside every version is still
caught: going back and forth is cheap for a coin and costly for a stable task. The fourth is why
two real changes are not enough: such a task must not be asked for stronger evidence forever.

The gate asks flaky tasks for stronger evidence (gates.statistics.FLAKY_DIVISOR) and gives them
fewer confirmation trials (gates.confirmation); `ratchet flaky` lists them with p_flaky.
`benchmarks/gate_error_rates.py` measures the whole gate on a suite with 20% flaky tasks.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from functools import lru_cache
from typing import cast

import numpy as np
import pandas as pd

from ratchet.gates.run_store import RunRecord

COLUMNS = ["task_id", "versions", "mixed_versions", "swings", "runs", "pass_rate", "p_flaky"]
STABLE_EDGE = 0.1  # a stable task passes (or fails) with probability >= 0.9 in a version
FLAKY_BAND = (0.2, 0.8)  # a flaky task's pass probability
FLAKY_PRIOR = 0.2  # share of flaky tasks expected before any run is seen
SWITCH = 0.05  # chance that a version changes a stable task's outcome (fixes, breaks)
_GRID = 512  # points per band for the likelihood averages


def flakiness_table(records: Iterable[RunRecord], task_ids: set[str] | None = None) -> pd.DataFrame:
    """Per task: versions with 2+ runs, how many of those gave mixed outcomes, swings of the majority
    outcome across versions, runs, pass rate and p_flaky; the most likely flaky first."""
    rows = [
        {
            "task_id": r.task_id,
            "artifact": r.key.artifact_hash,
            "passed": r.outcome.passed,
            "started_at": r.trace.started_at,
        }
        for r in records
        if task_ids is None or r.task_id in task_ids
    ]
    frame = pd.DataFrame(rows, columns=["task_id", "artifact", "passed", "started_at"])
    return flakiness_of_runs(frame.sort_values("started_at", kind="stable"))


def flakiness_of_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """`flakiness_table` for a frame of runs with columns task_id, artifact (any version key), passed,
    in the order they ran (a version's place is its first run)."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    per_version = frame.groupby(["task_id", "artifact"], sort=False)["passed"].agg(["size", "sum"]).reset_index()
    repeated = per_version[per_version["size"] >= 2]
    mixed = repeated[(repeated["sum"] > 0) & (repeated["sum"] < repeated["size"])]
    by_task = frame.groupby("task_id")["passed"]
    table = pd.DataFrame(
        {
            "versions": repeated.groupby("task_id").size(),
            "mixed_versions": mixed.groupby("task_id").size(),
            "swings": _swings(per_version),
            "runs": by_task.size(),
            "pass_rate": by_task.mean(),
            "p_flaky": _posterior(repeated),
        }
    ).fillna({"versions": 0, "mixed_versions": 0, "swings": 0, "p_flaky": FLAKY_PRIOR})
    table = table.astype({"versions": "int64", "mixed_versions": "int64", "swings": "int64", "runs": "int64"})
    table = table.reset_index(names="task_id")
    table["flaky"] = _is_flaky(table)
    table = table.sort_values(["p_flaky", "task_id"], ascending=[False, True])
    return table.reset_index(drop=True)[COLUMNS]


def _swings(per_version: pd.DataFrame) -> pd.Series:
    """Per task: how often the majority outcome changed between consecutive versions (ties skipped)."""
    rate = per_version["sum"] / per_version["size"]
    decided = per_version.assign(up=rate > 0.5)[rate != 0.5]
    previous = decided.groupby("task_id", sort=False)["up"].shift()
    changed = previous.notna() & (decided["up"] != previous)
    return changed.groupby(decided["task_id"], sort=False).sum()


def _posterior(repeated: pd.DataFrame) -> pd.Series:
    """Per task: the posterior probability of "flaky" against "stable", from its versions with 2+ runs
    (in the order they ran)."""
    evidence: dict[Hashable, float] = {}  # keyed by task id, as the frame holds it
    for task, group in repeated.groupby("task_id", sort=False):
        passes, runs = group["sum"].to_numpy(), group["size"].to_numpy()
        evidence[task] = _log_flaky(int(passes.sum()), int(runs.sum())) - _log_stable(passes, runs)
    log_odds = math.log(FLAKY_PRIOR / (1 - FLAKY_PRIOR)) + pd.Series(evidence, dtype="float64")
    # numpy's stub types a ufunc's result as an array; on a Series, pandas' __array_ufunc__ returns a Series
    exp = cast(pd.Series, np.exp(-log_odds.clip(-50, 50)))
    return 1 / (1 + exp)


def _log_flaky(passes: int, runs: int) -> float:
    """log P(runs | flaky): one pass probability for the task, uniform over FLAKY_BAND."""
    return _log_average(passes, runs, *FLAKY_BAND)


def _log_stable(passes: np.ndarray, runs: np.ndarray) -> float:
    """log P(runs | stable): per version passing (p >= 1 - STABLE_EDGE) or failing (p <= STABLE_EDGE),
    starting either way with equal odds and changing between consecutive versions with probability
    SWITCH (a two-state hidden Markov chain, summed over every path by the forward algorithm)."""
    log_total, weights = 0.0, np.array([0.5, 0.5])
    stay = np.array([[1 - SWITCH, SWITCH], [SWITCH, 1 - SWITCH]])
    for index, (s, n) in enumerate(zip(passes.tolist(), runs.tolist(), strict=True)):
        if index:
            weights = weights @ stay
        weights = weights * np.exp([_log_average(s, n, 1 - STABLE_EDGE, 1.0), _log_average(s, n, 0.0, STABLE_EDGE)])
        scale = float(weights.sum())
        log_total += math.log(scale)
        weights = weights / scale
    return log_total


@lru_cache(maxsize=65536)
def _log_average(passes: int, runs: int, low: float, high: float) -> float:
    """log of the mean of p^passes (1 - p)^(runs - passes) for p uniform on [low, high] (a fine grid)."""
    p = low + (high - low) * (np.arange(_GRID) + 0.5) / _GRID
    terms = passes * np.log(p) + (runs - passes) * np.log1p(-p)
    top = float(terms.max())
    return top + math.log(float(np.mean(np.exp(terms - top))))


def _is_flaky(table: pd.DataFrame) -> pd.Series:
    return table["p_flaky"] >= 0.5


def flaky(table: pd.DataFrame) -> set[str]:
    """Tasks whose history is more likely noise than a stable pass or fail (p_flaky >= 0.5)."""
    if table.empty:
        return set()
    return set(table.loc[_is_flaky(table), "task_id"])
