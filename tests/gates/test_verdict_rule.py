"""The gate's rule of verdict version 3: three values, clearing, false discovery rate control over all
tasks, the suite-level paired test and the versions it keeps re-deriving (docs/gate-statistics.md)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from ratchet.gates import GatePolicy, JudgedSplit, Verdict, judge, paired_from_counts
from ratchet.gates.clearing import drop_upper_bound, more_trials_needed, z_for
from ratchet.gates.fdr import benjamini_hochberg
from ratchet.gates.fisher import fisher_greater
from ratchet.gates.statistics import TaskRule, classify
from ratchet.gates.suite_test import student_t_cdf, suite_change

CI = GatePolicy(name="ci", min_fixes=0)


def verdict_of(
    changes: dict[str, tuple[tuple[int, int], tuple[int, int]]], policy: GatePolicy = CI, **split
) -> Verdict:
    baseline = {task: b for task, (b, _) in changes.items()}
    candidate = {task: c for task, (_, c) in changes.items()}
    return judge(policy, JudgedSplit(paired_from_counts(baseline, candidate), **split)).verdict


def stable(n: int, trials: int) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    return {f"s{i}": ((trials, trials), (trials, trials)) for i in range(n)}


@pytest.mark.parametrize("trials", [1, 2, 3])
def test_a_deterministic_regression_with_few_trials_is_inconclusive_never_promoted(trials: int) -> None:
    verdict = verdict_of(stable(10, trials) | {"broke": ((trials, trials), (0, trials))})
    assert verdict.decision == "inconclusive", verdict.explanation
    assert verdict.undecided_count == 1 and verdict.undecided[0].task_id == "broke"
    more = verdict.undecided[0].more_trials
    assert more is not None and more >= 1
    # that many more trials a side, all going the same way, settle it
    n = trials + more
    assert verdict_of(stable(10, n) | {"broke": ((n, n), (0, n))}).decision == "reject"


def test_three_values_and_what_decides_each() -> None:
    assert verdict_of(stable(10, 6) | {"broke": ((6, 6), (0, 6))}).decision == "reject"
    assert verdict_of(stable(10, 6) | {"slip": ((11, 11), (10, 11))}).decision == "promote", "cleared"
    open_task = verdict_of(stable(10, 6) | {"soft": ((11, 11), (6, 11))})
    assert open_task.decision in ("inconclusive", "reject") and open_task.decision != "promote"
    held = verdict_of(stable(10, 6), GatePolicy(name="h", min_fixes=0, require_manual_approval=True))
    assert held.decision == "hold"


def test_clearing_is_a_bound_on_the_fall_that_shrinks_with_trials() -> None:
    z = z_for(0.1)
    bound = [
        float(drop_upper_bound(np.array([n]), np.array([n]), np.array([n - 1]), np.array([n]), z)[0])
        for n in (4, 11, 40)
    ]
    assert bound[0] > bound[1] > bound[2], "one slip weighs less as the runs grow"
    assert bound[1] < 0.4 < bound[0], "11/11 -> 10/11 is cleared at the default margin, 4/4 -> 3/4 is not"
    # a real fall of half the pass rate is never cleared, however many trials
    assert float(drop_upper_bound(np.array([100]), np.array([100]), np.array([50]), np.array([100]), z)[0]) > 0.5
    assert more_trials_needed(3, 5, 2, 5, 0.005, 0.3, z) is not None
    assert more_trials_needed(1, 1, 0, 1, 0.025, 0.3, z) == 3, "4/4 -> 0/4 reaches p = 1/70 < 0.025"


def test_a_flaky_task_is_cleared_against_its_wider_margin() -> None:
    counts = paired_from_counts({"coin": (5, 7), "other": (5, 5)}, {"coin": (3, 7), "other": (5, 5)})
    strict = classify(counts, TaskRule(0.05)).set_index("task_id").loc["coin"]
    known = classify(counts, TaskRule(0.05), flaky={"coin"}).set_index("task_id").loc["coin"]
    assert bool(strict["undecided"]) and not bool(known["undecided"])
    assert known["margin"] == pytest.approx(0.8) and strict["margin"] == pytest.approx(0.4)
    # from 10 baseline runs on, a baseline rate surely inside (0.1, 0.9) shows the task is flaky by itself
    mixed = paired_from_counts({"coin": (12, 20), "other": (5, 5)}, {"coin": (8, 20), "other": (5, 5)})
    assert classify(mixed, TaskRule(0.05)).set_index("task_id").loc["coin", "margin"] == pytest.approx(0.8)
    slipped = paired_from_counts({"slip": (2, 4), "other": (5, 5)}, {"slip": (0, 4), "other": (5, 5)})
    assert classify(slipped, TaskRule(0.05)).set_index("task_id").loc["slip", "margin"] == pytest.approx(0.4), (
        "2 of 4 could be a stable task's slips: too few runs to call it flaky"
    )


def test_false_discovery_rate_keeps_power_as_the_suite_grows() -> None:
    """100 tasks 9/9 -> 0/9 (p = 2.2e-5) among 20,000: Bonferroni would ask for 0.05 / 20,000 = 2.5e-6
    each and confirm none; Benjamini-Hochberg asks for 100 x 0.05 / 20,000 = 2.5e-4 and confirms all."""
    changes = stable(19_900, 9) | {f"b{i}": ((9, 9), (0, 9)) for i in range(100)}
    p = fisher_greater(9, 9, 0, 9)
    assert 0.05 / 20_000 < p < 100 * 0.05 / 20_000
    verdict = verdict_of(changes)
    assert verdict.decision == "reject" and verdict.regressions == 100


def test_benjamini_hochberg_step_up_by_hand() -> None:
    # thresholds 0.0125, 0.025, 0.0375, 0.05: the third smallest (0.036) is the largest under its threshold,
    # so the second (0.03, above its own 0.025) is confirmed too: the step-up
    confirmed = benjamini_hochberg(np.array([0.036, 0.001, 0.03, 0.2]), 0.05)
    assert confirmed.tolist() == [True, True, True, False]
    assert benjamini_hochberg(np.array([0.04, 0.001, 0.03, 0.2]), 0.05).tolist() == [False, True, False, False]
    assert benjamini_hochberg(np.array([0.5, 0.6]), 0.05).tolist() == [False, False]


def test_the_suite_test_catches_a_regression_spread_thin() -> None:
    # 400 tasks; 80 drop from 5/5 to 4/5, no single task is confirmed (p = 0.5 each)
    thin = stable(320, 5) | {f"d{i}": ((5, 5), (4, 5)) for i in range(80)}
    verdict = verdict_of(thin)
    assert verdict.regressions == 0 and verdict.decision == "reject"
    assert verdict.suite_p is not None and verdict.suite_p <= 0.01 and verdict.suite_change == pytest.approx(-0.04)
    assert any("suite regressed as a whole" in reason for reason in verdict.reasons)
    # the same drops balanced by as many rises: the suite did not fall
    balanced = thin | {f"u{i}": ((4, 5), (5, 5)) for i in range(80)}
    assert all("suite regressed" not in reason for reason in verdict_of(balanced).reasons)


def test_student_t_matches_known_quantiles() -> None:
    assert student_t_cdf(-2.0, 10) == pytest.approx(0.036694017385, abs=1e-10)
    assert student_t_cdf(-3.182446305284263, 3) == pytest.approx(0.025, abs=1e-9)
    assert student_t_cdf(1.0, 2) == pytest.approx(0.7886751345948129, abs=1e-12)
    assert student_t_cdf(-1.6448536, 10_000) == pytest.approx(0.05, abs=1e-6)
    same = pd.DataFrame({"b_pass": [1, 1], "b_n": [1, 1], "c_pass": [0, 0], "c_n": [1, 1]})
    assert suite_change(same).p_value == 0.0, "every task fell alike: certain"


def test_missing_candidate_tasks_never_promote() -> None:
    pairs = paired_from_counts({"a": (3, 3)}, {"a": (3, 3)})
    assert judge(CI, JudgedSplit(pairs, missing=["gone"])).verdict.decision == "inconclusive"
    strict = GatePolicy(name="strict", min_fixes=0, missing_tasks="reject")
    rejected = judge(strict, JudgedSplit(pairs, missing=["gone"])).verdict
    assert rejected.decision == "reject" and rejected.missing_tasks == ["gone"]


def test_older_verdict_versions_keep_their_rule_and_hash() -> None:
    """A 1/1 -> 0/1 regression promoted under version 2; re-deriving it must still say promote, and a
    policy written before the new fields hashes as it did."""
    pairs = paired_from_counts({"a": (1, 1), "b": (1, 1)}, {"a": (0, 1), "b": (1, 1)})
    assert judge(CI, JudgedSplit(pairs), version=2).verdict.decision == "promote"
    assert judge(CI, JudgedSplit(pairs)).verdict.decision == "inconclusive"
    # a policy as a version-2 verdict.json stored it, and its hash as Ratchet computed it then (every field
    # but flaky_confirmation_cap, which was left out at its default 7)
    stored = {
        "name": "default", "description": "", "trials": 2, "max_regressions": 0, "min_fixes": 1,
        "require_manual_approval": False, "alpha": 0.05, "confirmation_cap": 11, "flaky_confirmation_cap": 7,
        "max_nfr": None, "min_intent_coverage": None, "holdout": "report", "smoke_max_drop": 0.25,
    }  # fmt: skip
    hashed = {name: value for name, value in stored.items() if name != "flaky_confirmation_cap"}
    then = hashlib.sha256(json.dumps(hashed, separators=(",", ":")).encode()).hexdigest()
    assert GatePolicy.model_validate(stored).content_hash() == then
    assert GatePolicy.model_validate(stored | {"regression_margin": 0.3}).content_hash() != then


def test_a_verdict_written_before_version_3_still_loads() -> None:
    verdict = verdict_of(stable(3, 2))
    data = verdict.model_dump(mode="json")
    for field in (
        "undecided_count",
        "undecided",
        "suite_change",
        "suite_p",
        "missing_count",
        "missing_tasks",
        "notes",
        "sequential",
    ):
        data.pop(field)
    data["version"] = 2
    assert Verdict.model_validate(data).undecided == []
