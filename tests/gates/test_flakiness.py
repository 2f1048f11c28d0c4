"""Flakiness from stored runs: mixed outcomes within one version, never pooled across versions."""

from __future__ import annotations

from agents.trace import Trace
from gates.flakiness import flakiness_table, flaky
from gates.outcome import Outcome
from gates.run_store import RunKey, RunRecord


def run(artifact: str, task: str, trial: int, passed: bool) -> RunRecord:
    key = RunKey(artifact_hash=artifact, suite_hash="s" * 64, model_config_hash="m" * 64)
    trace = Trace(task_id=task, trial=trial, agent="coder", artifact_hash=artifact, model="sim/x", simulated=True,
                  messages=[], started_at="2026-11-24T00:00:00Z", duration_s=0.1)
    return RunRecord(key=key, task_id=task, trial=trial, trace=trace,
                     outcome=Outcome(task_id=task, trial=trial, passed=passed, score=float(passed)))


def test_mixed_within_a_version_is_flaky_and_a_change_across_versions_is_not() -> None:
    records = [
        run("v1", "coin", 0, True), run("v1", "coin", 1, False),      # mixed inside v1: flaky
        run("v1", "fixed", 0, False), run("v1", "fixed", 1, False),   # v1 fails, v2 passes: a flip, not noise
        run("v2", "fixed", 0, True), run("v2", "fixed", 1, True),
        run("v1", "once", 0, True), run("v2", "once", 0, False),      # one run per version: no evidence
    ]
    table = flakiness_table(records).set_index("task_id")
    assert flaky(table.reset_index()) == {"coin"}
    assert table.loc["coin", "mixed_versions"] == 1 and table.loc["fixed", "versions"] == 2
    assert table.loc["once", "versions"] == 0 and table.loc["fixed", "pass_rate"] == 0.5
    assert list(flakiness_table(records, {"coin"})["task_id"]) == ["coin"]
    assert flakiness_table([]).empty
