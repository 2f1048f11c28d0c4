"""Flaky tasks, from every stored evaluation: tasks whose outcome changes between runs of one version.

A task is flaky when, in at least one stored evaluation of one artifact with two or more runs
of it, it both passed and failed. Across versions a changed outcome is a flip, not noise, so
runs of different artifacts are never pooled. The gate asks flaky tasks for stronger
evidence (alpha / 10) before it counts their flips; `ratchet flaky` lists them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from gates.run_store import RunRecord

COLUMNS = ["task_id", "versions", "mixed_versions", "runs", "pass_rate"]


def flakiness_table(records: Iterable[RunRecord], task_ids: set[str] | None = None) -> pd.DataFrame:
    """Per task: versions with 2+ runs, how many of those gave mixed outcomes, runs, pass rate; flaky first."""
    rows = [{"task_id": r.task_id, "artifact": r.key.artifact_hash, "passed": r.outcome.passed}
            for r in records if task_ids is None or r.task_id in task_ids]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    per_version = frame.groupby(["task_id", "artifact"])["passed"].agg(["size", "sum"]).reset_index()
    repeated = per_version[per_version["size"] >= 2]
    mixed = repeated[(repeated["sum"] > 0) & (repeated["sum"] < repeated["size"])]
    table = pd.DataFrame({
        "versions": repeated.groupby("task_id").size(),
        "mixed_versions": mixed.groupby("task_id").size(),
        "runs": frame.groupby("task_id").size(),
        "pass_rate": frame.groupby("task_id")["passed"].mean(),
    }).fillna(0)
    table = table.astype({"versions": "int64", "mixed_versions": "int64", "runs": "int64"})
    table = table.reset_index(names="task_id")
    return table.sort_values(["mixed_versions", "task_id"], ascending=[False, True]).reset_index(drop=True)[COLUMNS]


def flaky(table: pd.DataFrame) -> set[str]:
    """Tasks that gave mixed outcomes within at least one version."""
    return set(table.loc[table["mixed_versions"] > 0, "task_id"])
