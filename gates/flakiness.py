"""Flaky tasks, from every stored evaluation: tasks that pass and fail without a real change.

A task is flaky when either

* in at least one stored evaluation of one artifact with two or more runs of it, it both
  passed and failed (noise within a version), or
* its majority outcome per version, with versions in the order they were first run, changed
  direction at least MIN_SWINGS times (pass, fail, pass, fail): it keeps going back and forth
  across versions too.

The second rule catches tasks that happened to agree with themselves inside every version
(two runs of a coin agree half of the time) but are plainly unreliable over their history.
One or two changes are not enough: a task fixed by one release and broken by a later
candidate changed twice for real reasons, and must not be asked for stronger evidence forever.
The gate asks flaky tasks for stronger evidence (gates.statistics.FLAKY_DIVISOR) before it
counts their flips; `ratchet flaky` lists them. `benchmarks/gate_error_rates.py` measures
what the two rules buy on a suite with 20% flaky tasks.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from gates.run_store import RunRecord

COLUMNS = ["task_id", "versions", "mixed_versions", "swings", "runs", "pass_rate"]
MIN_SWINGS = 3


def flakiness_table(records: Iterable[RunRecord], task_ids: set[str] | None = None) -> pd.DataFrame:
    """Per task: versions with 2+ runs, how many of those gave mixed outcomes, runs, pass rate; flaky first."""
    rows = [{"task_id": r.task_id, "artifact": r.key.artifact_hash, "passed": r.outcome.passed,
             "started_at": r.trace.started_at} for r in records if task_ids is None or r.task_id in task_ids]
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
    table = pd.DataFrame({
        "versions": repeated.groupby("task_id").size(),
        "mixed_versions": mixed.groupby("task_id").size(),
        "swings": _swings(per_version),
        "runs": by_task.size(),
        "pass_rate": by_task.mean(),
    }).fillna(0)
    table = table.astype({"versions": "int64", "mixed_versions": "int64", "swings": "int64", "runs": "int64"})
    table = table.reset_index(names="task_id")
    table["flaky"] = _is_flaky(table)
    table = table.sort_values(["flaky", "mixed_versions", "task_id"], ascending=[False, False, True])
    return table.reset_index(drop=True)[COLUMNS]


def _swings(per_version: pd.DataFrame) -> pd.Series:
    """Per task: how often the majority outcome changed between consecutive versions (ties skipped)."""
    rate = per_version["sum"] / per_version["size"]
    decided = per_version.assign(up=rate > 0.5)[rate != 0.5]
    previous = decided.groupby("task_id", sort=False)["up"].shift()
    changed = previous.notna() & (decided["up"] != previous)
    return changed.groupby(decided["task_id"], sort=False).sum()


def _is_flaky(table: pd.DataFrame) -> pd.Series:
    return (table["mixed_versions"] > 0) | (table["swings"] >= MIN_SWINGS)


def flaky(table: pd.DataFrame) -> set[str]:
    """Tasks that gave mixed outcomes within a version, or swung back and forth across versions."""
    if table.empty:
        return set()
    return set(table.loc[_is_flaky(table), "task_id"])
