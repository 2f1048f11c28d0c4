"""Exact tests for flips, NFR and intervals, checked against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ratchet.gates.statistics import (
    TaskRule,
    classify,
    classify_shared_alpha,
    fisher_greater,
    fisher_less,
    negative_flip_rate,
    paired_counts,
    wilson_interval,
)


def test_fisher_matches_the_hypergeometric_tail_by_hand() -> None:
    assert fisher_greater(1, 1, 0, 1) == pytest.approx(0.5), "one run a side can never confirm a flip"
    assert fisher_greater(3, 3, 0, 3) == pytest.approx(1 / math.comb(6, 3))
    assert fisher_greater(5, 5, 0, 5) == pytest.approx(1 / 252)
    # 4/4 vs 1/4: P(X >= 4) with N=8, K=5, n=4 = C(5,4)C(3,0)/C(8,4)
    assert fisher_greater(4, 4, 1, 4) == pytest.approx(5 / 70)
    assert fisher_less(0, 4, 4, 4) == pytest.approx(1 / 70)
    assert fisher_greater(2, 4, 2, 4) > 0.5


def test_the_version_2_rule_confirms_only_with_enough_evidence() -> None:
    """Verdicts of version 2 are re-derived with the shared-alpha rule (gates.statistics.classify_shared_alpha)."""
    counts = pd.DataFrame(
        {
            "task_id": ["hard", "thin", "fixed", "flaky", "same"],
            "b_pass": [5, 1, 0, 2, 4],
            "b_n": [5, 1, 5, 4, 4],
            "c_pass": [0, 0, 5, 1, 4],
            "c_n": [5, 1, 5, 4, 4],
        }
    )
    classified = classify_shared_alpha(counts, alpha=0.05).set_index("task_id")
    assert (
        classified["flip"].to_dict()
        == classify(counts, TaskRule(0.05, version=2)).set_index("task_id")["flip"].to_dict()
    )
    assert classified["flip"].to_dict() == {
        "hard": "regression",
        "thin": "unconfirmed_regression",
        "fixed": "fix",
        "flaky": "unconfirmed_regression",
        "same": "stable_pass",
    }
    # four tasks lean either way (hard, thin, fixed, flaky): each gets a quarter of alpha
    assert classified["level"].to_dict() == pytest.approx({t: 0.0125 for t in classified.index})


def test_version_2_shares_alpha_by_the_tasks_that_lean_and_a_flaky_task_weighs_a_twentieth() -> None:
    # 4/4 vs 0/4: p = 1/70 = 0.0143
    alone = pd.DataFrame({"task_id": ["broke"], "b_pass": [4], "b_n": [4], "c_pass": [0], "c_n": [4]})
    assert classify_shared_alpha(alone, 0.05).loc[0, "flip"] == "regression", "alone, the task has all of alpha"
    wobbly = [f"w{i}" for i in range(4)]  # 2/4 vs 1/4 each: they lean, so they share alpha
    many = pd.concat([alone, pd.DataFrame({"task_id": wobbly, "b_pass": 2, "b_n": 4, "c_pass": 1, "c_n": 4})])
    shared = classify_shared_alpha(many.reset_index(drop=True), 0.05).set_index("task_id")
    assert (
        shared.loc["broke", "level"] == pytest.approx(0.01) and shared.loc["broke", "flip"] == "unconfirmed_regression"
    )
    # the same wobbly tasks known to be flaky weigh 1/20 each: 0.05 / (1 + 4/20) for the stable one
    known = classify_shared_alpha(many.reset_index(drop=True), 0.05, flaky=set(wobbly)).set_index("task_id")
    assert known.loc["broke", "level"] == pytest.approx(0.05 / 1.2) and known.loc["broke", "flip"] == "regression"
    assert known.loc["w0", "level"] == pytest.approx(0.05 / 1.2 / 20)
    assert bool(known.loc["w0", "flaky"]) and not bool(known.loc["broke", "flaky"])
    # a task that leans nowhere (the same counts on both sides) takes nothing from the others
    calm = pd.concat([alone, pd.DataFrame({"task_id": ["same"], "b_pass": [3], "b_n": [4], "c_pass": [3], "c_n": [4]})])
    assert classify_shared_alpha(calm.reset_index(drop=True), 0.05).loc[0, "level"] == pytest.approx(0.05)


def test_paired_counts_nfr_and_intervals() -> None:
    baseline = pd.DataFrame({"task_id": ["a", "a", "b", "b", "c"], "passed": [True, True, False, False, True]})
    candidate = pd.DataFrame({"task_id": ["a", "a", "b", "b", "d"], "passed": [False, False, True, False, True]})
    pairs = paired_counts(baseline, candidate).set_index("task_id")
    assert list(pairs.index) == ["a", "b"], "only tasks run on both sides"
    assert pairs.loc["a"].tolist() == [2, 2, 0, 2] and pairs.loc["b"].tolist() == [0, 2, 1, 2]
    nfr, relative = negative_flip_rate(classify(pairs.reset_index(), TaskRule(0.05)))
    assert nfr == pytest.approx(0.5) and relative == pytest.approx(1.0)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_confirmation_spends_trials_only_on_tasks_in_doubt() -> None:
    import random

    from ratchet.gates.confirmation import confirm

    truth = {"stable": (1.0, 1.0), "broken": (1.0, 0.0), "fixed": (0.0, 1.0), "coin": (0.5, 0.5)}
    counts = pd.DataFrame(
        {
            "task_id": ["stable", "broken", "fixed", "coin"],
            "b_pass": [2, 2, 0, 1],
            "b_n": [2] * 4,
            "c_pass": [2, 0, 2, 1],
            "c_n": [2] * 4,
        }
    )
    rng = random.Random(5)
    asked: list[tuple[str, str]] = []

    def sample(tasks: list[str], side: str) -> dict[str, bool]:
        asked.extend((t, side) for t in tasks)
        return {t: rng.random() < truth[t][0 if side == "baseline" else 1] for t in tasks}

    result = confirm(counts, sample, TaskRule(alpha=0.05), cap=6, flaky={"coin"})
    flips = result.classified.set_index("task_id")["flip"].to_dict()
    assert flips["broken"] == "regression" and flips["fixed"] == "fix" and flips["stable"] == "stable_pass"
    assert flips["coin"] not in ("regression", "fix"), "a flaky task needs a 1 / FLAKY_DIVISOR share of alpha"
    assert not any(task == "stable" for task, _ in asked), "a stable task never gets another trial"
    assert max(result.classified.set_index("task_id").loc["broken", ["b_n", "c_n"]]) <= 6
    assert result.extra_runs["baseline"] + result.extra_runs["candidate"] == len(asked)


def test_a_significant_drop_is_a_regression_without_crossing_the_majority_line() -> None:
    counts = pd.DataFrame(
        {"task_id": ["worse", "noise"], "b_pass": [9, 9], "b_n": [9, 9], "c_pass": [4, 8], "c_n": [9, 9]}
    )
    flips = classify(counts, TaskRule(0.05)).set_index("task_id")["flip"]
    assert flips["worse"] == "regression", "9/9 -> 4/9 is a confirmed drop (p = 0.015 <= 0.05 x 1/2)"
    assert flips["noise"] == "stable_pass"


def test_confirmation_stops_when_no_further_trial_could_settle_the_task() -> None:
    from ratchet.gates.confirmation import confirm

    # "stuck" went 2/2 -> 0/2 among ten stable tasks. With a cap of 3 a side, even a third baseline pass
    # and candidate fail (3/3 vs 0/3, p = 0.05) stay above its level (0.05 x 1/11), and even the kindest
    # third runs (2/3 vs 1/3) leave the bound of its fall above the margin 0.3: no trial can settle it.
    stable = {f"s{i}": (2, 2) for i in range(10)}
    counts = pd.DataFrame(
        [{"task_id": t, "b_pass": b, "b_n": n, "c_pass": b, "c_n": n} for t, (b, n) in stable.items()]
        + [{"task_id": "stuck", "b_pass": 2, "b_n": 2, "c_pass": 0, "c_n": 2}]
    )
    asked: list[str] = []

    def sample(tasks: list[str], side: str) -> dict[str, bool]:
        asked.extend(tasks)
        return {t: side == "baseline" for t in tasks}

    assert fisher_greater(3, 3, 0, 3) > 0.05 / 11
    result = confirm(counts, sample, TaskRule(alpha=0.05), cap=3)
    assert not asked, "a task no further trial could settle gets none"
    assert bool(result.classified.set_index("task_id").loc["stuck", "undecided"]), "it stays open: inconclusive"
    # with room for more trials it is sampled until it is confirmed
    result = confirm(counts, sample, TaskRule(alpha=0.05), cap=11)
    assert asked and result.classified.set_index("task_id").loc["stuck", "flip"] == "regression"


def test_balanced_mixed_counts_get_another_look_unless_the_task_is_flaky() -> None:
    from ratchet.gates.confirmation import confirm

    # 1/2 against 1/2 cannot lean either way; a stable pass that broke can hide there
    counts = pd.DataFrame(
        {"task_id": ["hidden", "coin"], "b_pass": [1, 1], "b_n": [2, 2], "c_pass": [1, 1], "c_n": [2, 2]}
    )
    asked: list[str] = []

    def sample(tasks: list[str], side: str) -> dict[str, bool]:
        asked.extend(tasks)
        return {t: side == "baseline" for t in tasks}

    result = confirm(counts, sample, TaskRule(alpha=0.05), cap=11, flaky={"coin"})
    assert "coin" not in asked, "a flaky task's balanced counts are just its noise"
    row = result.classified.set_index("task_id").loc["hidden"]
    assert row["flip"] == "regression" and row["b_n"] < 11


def test_flaky_tasks_stop_at_their_own_cap() -> None:
    from ratchet.gates.confirmation import confirm

    counts = pd.DataFrame(
        {"task_id": ["coin", "broke"], "b_pass": [2, 2], "b_n": [2, 2], "c_pass": [0, 1], "c_n": [2, 2]}
    )
    results = iter([True, False] * 100)

    def sample(tasks: list[str], side: str) -> dict[str, bool]:
        # the baseline passes and the candidate fails, except every other candidate run of "coin"
        return {t: side == "baseline" or (t == "coin" and next(results)) for t in tasks}

    result = confirm(counts, sample, TaskRule(alpha=0.05), cap=11, flaky={"coin"}, flaky_cap=5)
    result = result.classified.set_index("task_id")
    assert max(result.loc["coin", ["b_n", "c_n"]]) <= 5
    assert result.loc["broke", "flip"] == "regression"
