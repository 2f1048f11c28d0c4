"""The gate error-rate benchmark's functions on a few repetitions: every scenario, both gates, costs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import gate_error_rates as bench


def test_scenarios_change_what_they_say() -> None:
    rng = np.random.default_rng(1)
    base = bench.draw_suite(rng, 200, 0.2)
    hard = bench.candidate_of(rng, base, "hard regression k=3")
    changed = np.flatnonzero(hard != base)
    assert len(changed) == 3 and (base[changed] >= 0.95).all() and (hard[changed] <= 0.1).all()
    fixes = bench.candidate_of(rng, base, "only fixes")
    assert ((fixes != base) <= (base <= 0.05)).all() and (fixes >= base).all()
    assert (bench.candidate_of(rng, base, "no change") == base).all()


def test_error_rates_rows_and_costs() -> None:
    setup = bench.Setup(tasks=40)
    tolerance = bench.calibrate_tolerance(3, setup, reps=200)
    assert tolerance >= 1, "with 20% flaky tasks a single run always shows some P->F flips"
    rows = {r["scenario"]: r for r in bench.error_rates(reps=6, seed=3, setup=setup, tolerance=tolerance)}
    assert set(rows) == set(bench.SCENARIOS)
    for row in rows.values():
        for gate in ("single_run", "single_run_tolerant", "ratchet"):
            assert 0.0 <= row[gate] <= 1.0
        assert row["ratchet_cost_vs_single"] >= 1.0, "two candidate trials already cost one single-run gate"
        outcomes = row["ratchet_promote"] + row["ratchet_reject"] + row["ratchet_inconclusive"]
        assert abs(outcomes - 1.0) < 1e-9, "every gate gives one of three verdicts"
    assert rows["hard regression k=3"]["ratchet"] == 0.0, "three hard regressions never pass the gate"


def test_files_and_scale_never_promote_a_deterministic_regression() -> None:
    setup = bench.Setup(tasks=40)
    for row in bench.files_gate(seed=3, setup=setup, reps=4):
        assert row["deterministic_regressions_promoted"] == 0 and row["deterministic_regressions_planted"] == 12
    scale = bench.scale_scenario(seed=3, setup=setup, tasks=4_000, planted=20)
    assert scale["files"]["planted_promoted"] == 0 and scale["files"]["decision"] != "promote"
    assert scale["cycle"]["planted_confirmed"] == 20 and scale["cycle"]["decision"] == "reject"
