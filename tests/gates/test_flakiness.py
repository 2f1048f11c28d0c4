"""Flakiness from stored runs: mixed outcomes within one version, or swings back and forth across versions."""

from __future__ import annotations

from ratchet.agents.trace import Trace
from ratchet.gates.flakiness import flakiness_table, flaky
from ratchet.gates.outcome import Outcome
from ratchet.gates.run_store import RunKey, RunRecord


def run(artifact: str, task: str, trial: int, passed: bool, started_at: str = "2026-11-24T00:00:00Z") -> RunRecord:
    key = RunKey(artifact_hash=artifact, suite_hash="s" * 64, model_config_hash="m" * 64)
    trace = Trace(
        task_id=task,
        trial=trial,
        agent="coder",
        artifact_hash=artifact,
        model="sim/x",
        simulated=True,
        messages=[],
        started_at=started_at,
        duration_s=0.1,
    )
    return RunRecord(
        key=key,
        task_id=task,
        trial=trial,
        trace=trace,
        outcome=Outcome(task_id=task, trial=trial, passed=passed, score=float(passed)),
    )


def test_mixed_within_a_version_is_flaky_and_a_change_across_versions_is_not() -> None:
    records = [
        run("v1", "coin", 0, True),
        run("v1", "coin", 1, False),  # mixed inside v1: flaky
        run("v1", "fixed", 0, False),
        run("v1", "fixed", 1, False),  # v1 fails, v2 passes: a flip, not noise
        run("v2", "fixed", 0, True),
        run("v2", "fixed", 1, True),
        run("v1", "once", 0, True),
        run("v2", "once", 0, False),  # one run per version: no evidence
    ]
    table = flakiness_table(records).set_index("task_id")
    assert flaky(table.reset_index()) == {"coin"}
    assert table.loc["coin", "mixed_versions"] == 1 and table.loc["fixed", "versions"] == 2
    assert table.loc["once", "versions"] == 0 and table.loc["fixed", "pass_rate"] == 0.5
    assert list(flakiness_table(records, {"coin"})["task_id"]) == ["coin"]
    assert flakiness_table([]).empty


def test_a_task_that_swings_across_versions_is_flaky_even_if_each_version_agreed_with_itself() -> None:
    import pandas as pd

    from ratchet.gates.flakiness import flakiness_of_runs

    # versions in the order they ran, two runs each; each version agrees with itself
    outcomes = {
        "swing": [True, False, True, False],  # three changes of direction: noise, not releases
        "fixed": [False, True, True, False],  # fixed by a release, broken by a later candidate: real
        "steady": [True, True, True, True],
    }
    rows = [
        {"task_id": task, "artifact": version, "passed": passed}
        for task, seq in outcomes.items()
        for version, passed in enumerate(seq)
        for _ in range(2)
    ]
    table = flakiness_of_runs(pd.DataFrame(rows))
    assert flaky(table) == {"swing"}
    assert table.set_index("task_id")["swings"].to_dict() == {"swing": 3, "fixed": 2, "steady": 0}
    assert list(table["task_id"])[0] == "swing", "flaky tasks come first"


def test_versions_are_ordered_by_when_they_ran_not_by_where_they_are_stored() -> None:
    # stored grouped by artifact hash (as the run store's files are), but run a, b, c, d in time
    when = {
        "d": "2026-11-24T04:00:00Z",
        "a": "2026-11-24T01:00:00Z",
        "c": "2026-11-24T03:00:00Z",
        "b": "2026-11-24T02:00:00Z",
    }
    passed = {"a": True, "b": False, "c": True, "d": False}
    records = [run(v, "swing", t, passed[v], when[v]) for v in ("d", "a", "c", "b") for t in range(2)]
    table = flakiness_table(records)
    assert table.loc[0, "swings"] == 3 and flaky(table) == {"swing"}


def test_one_slip_in_a_clean_history_is_not_flaky_but_noise_spread_over_versions_is() -> None:
    import pandas as pd

    from ratchet.gates.flakiness import flakiness_of_runs

    passes_per_version = {  # two runs per version, versions in the order they ran
        "slipped": [2, 1, 2, 2, 2, 2],  # a stable pass that failed once: 11 of 12
        "noisy": [2, 0, 1, 2, 0, 1],  # every outcome, in no order a release explains
        "fresh-coin": [1],  # one mixed version, nothing else known
    }
    rows = [
        {"task_id": task, "artifact": version, "passed": run < passes}
        for task, seq in passes_per_version.items()
        for version, passes in enumerate(seq)
        for run in range(2)
    ]
    table = flakiness_of_runs(pd.DataFrame(rows)).set_index("task_id")
    assert flaky(table.reset_index()) == {"noisy", "fresh-coin"}
    assert table.loc["slipped", "p_flaky"] < 0.1 < 0.9 < table.loc["noisy", "p_flaky"]
    assert 0.5 < table.loc["fresh-coin", "p_flaky"] < 0.9, "one mixed version makes a fresh task flaky, barely"
