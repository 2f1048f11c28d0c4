"""Gate error rates against ground truth: how often each gate promotes a regression or rejects a good RC.

Simulated suites with known per-task pass probabilities (no model involved, so thousands of
seeded repetitions are cheap). Each repetition draws a suite of T tasks as the issue asks:
80% stable, 20% flaky:

    68% stable passes  p ~ U(0.95, 1.00)
    12% stable fails   p ~ U(0.00, 0.05)
    20% flaky          p ~ U(0.20, 0.80)

and a candidate of one kind: hard regression of k tasks (a stable pass drops to p <= 0.1),
soft regression of k tasks (a stable pass drops by 0.5), only fixes (3 stable fails rise to
p >= 0.9), or no change. The gates judge it, all with "no regression allowed, no fix required":

    single-run strict      AgentDevel-style: baseline and candidate run once per task; any P->F
                           rejects.
    single-run tolerant    the same runs, but up to `tolerance` P->F flips are let through; the
                           tolerance is the smallest that keeps P(reject | no change) <= 5% on this
                           harness (calibrated on separate seeds before the measured runs), i.e.
                           the strict gate made usable on a suite with flaky tasks.
    ratchet                the baseline's last gate evaluation is reused from history (H trials per
                           task, as the previous cycle left them in the run store); the candidate
                           runs `trials` per task; tasks in doubt get adaptive confirmation up to
                           `confirmation_cap` per side, `flaky_confirmation_cap` for flaky tasks
                           (gates.confirmation, with curtailment); flaky tasks are found by
                           gates.flakiness in the suite's history (5 earlier releases x 2 runs per
                           task, in release order, plus the reused runs); a regression counts only
                           when the one-sided Fisher test confirms it at the task's share of alpha
                           (gates.statistics: alpha is shared among the tasks that lean either way,
                           a flaky task weighing 1 / FLAKY_DIVISOR), as in the cycle.

Cost is model calls relative to the single-run gate (one trial per task on each side, 2T);
the reused baseline history is free because it really is reused (it is the previous cycle's
candidate evaluation), and every confirmation run is counted, on both sides.

Also times the judge (classify + decide) over 1,000,000 outcome rows.

    PYTHONPATH=. python benchmarks/gate_error_rates.py                 # 2,000 repetitions per scenario
    PYTHONPATH=. python benchmarks/gate_error_rates.py --reps 200      # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from results_json import write_results  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results"
SCENARIOS = (
    "hard regression k=1",
    "hard regression k=3",
    "soft regression k=1",
    "soft regression k=3",
    "only fixes",
    "no change",
)


@dataclass(frozen=True)
class Setup:
    tasks: int = 100
    history: int = 2  # baseline trials per task reused from the previous cycle
    older_releases: int = 5  # earlier releases whose runs (2 per task each) only inform flakiness
    trials: int = 2  # candidate trials per task
    cap: int = 11  # confirmation cap per side (the policy default)
    flaky_cap: int = 7  # the same for tasks flaky in history (the policy default)
    alpha: float = 0.05
    flaky_share: float = 0.2


def draw_suite(rng: np.random.Generator, n: int, flaky_share: float) -> np.ndarray:
    stable = 1.0 - flaky_share
    kind = rng.choice(3, size=n, p=[stable * 0.85, stable * 0.15, flaky_share])
    return np.where(
        kind == 0, rng.uniform(0.95, 1.0, n), np.where(kind == 1, rng.uniform(0.0, 0.05, n), rng.uniform(0.2, 0.8, n))
    )


def candidate_of(rng: np.random.Generator, base: np.ndarray, scenario: str) -> np.ndarray:
    cand = base.copy()
    stable_pass, stable_fail = np.flatnonzero(base >= 0.95), np.flatnonzero(base <= 0.05)
    if scenario.startswith("hard regression"):
        k = int(scenario[-1])
        hit = rng.choice(stable_pass, k, replace=False)
        cand[hit] = rng.uniform(0.0, 0.1, k)
    elif scenario.startswith("soft regression"):
        k = int(scenario[-1])
        hit = rng.choice(stable_pass, k, replace=False)
        cand[hit] = base[hit] - 0.5
    elif scenario == "only fixes":
        hit = rng.choice(stable_fail, min(3, stable_fail.size), replace=False)
        cand[hit] = rng.uniform(0.9, 1.0, hit.size)
    return cand


def single_run_regressions(rng: np.random.Generator, base: np.ndarray, cand: np.ndarray) -> int:
    """P->F flips of one run a side: what both single-run gates look at (cost 2T)."""
    b = rng.random(base.size) < base
    c = rng.random(cand.size) < cand
    return int(np.sum(b & ~c))


def calibrate_tolerance(seed: int, setup: Setup, reps: int = 4000, target: float = 0.05) -> int:
    """Smallest number of P->F flips a single-run gate must let through to reject <= `target` of
    unchanged candidates (measured on seeds the error-rate runs never use)."""
    rng = np.random.default_rng(seed + 99_999)
    counts = np.array(
        [
            single_run_regressions(rng, base, base)
            for base in (draw_suite(rng, setup.tasks, setup.flaky_share) for _ in range(reps))
        ]
    )
    tolerance = 0
    while np.mean(counts > tolerance) > target:
        tolerance += 1
    return tolerance


def ratchet_gate(rng: np.random.Generator, base: np.ndarray, cand: np.ndarray, setup: Setup) -> tuple[bool, int]:
    from ratchet.gates import GatePolicy, JudgedSplit, judge
    from ratchet.gates.flakiness import flakiness_of_runs, flaky

    ids = [f"t{i}" for i in range(base.size)]
    history = rng.random((setup.history, base.size)) < base
    runs = rng.random((setup.trials, cand.size)) < cand
    counts = pd.DataFrame(
        {"task_id": ids, "b_pass": history.sum(0), "b_n": setup.history, "c_pass": runs.sum(0), "c_n": setup.trials}
    )
    older = rng.random((setup.older_releases * 2, base.size)) < base
    seen = np.vstack([older, history])  # 2 runs per release: earlier releases, then the baseline
    release = np.repeat(np.arange(seen.shape[0] // 2), 2)
    flaky_now = flaky(
        flakiness_of_runs(
            pd.DataFrame(
                {
                    "task_id": np.tile(ids, seen.shape[0]),
                    "artifact": np.repeat(release, base.size),
                    "passed": seen.ravel(),
                }
            )
        )
    )
    probability = {"baseline": dict(zip(ids, base, strict=True)), "candidate": dict(zip(ids, cand, strict=True))}

    def sample(tasks: list[str], side: str) -> dict[str, bool]:
        return {t: bool(rng.random() < probability[side][t]) for t in tasks}

    policy = GatePolicy(
        name="bench",
        max_regressions=0,
        min_fixes=0,
        alpha=setup.alpha,
        confirmation_cap=setup.cap,
        flaky_confirmation_cap=setup.flaky_cap,
    )
    judged = judge(policy, JudgedSplit(counts, flaky=flaky_now, sample=sample))
    verdict = judged.verdict
    cost = setup.trials * cand.size + judged.confirmation_runs
    return verdict.decision == "reject", cost


def error_rates(reps: int, seed: int, setup: Setup, tolerance: int) -> list[dict[str, object]]:
    rows = []
    for index, scenario in enumerate(SCENARIOS):
        rng = np.random.default_rng(seed + 1000 * index)
        rejects = {"strict": 0, "tolerant": 0, "ratchet": 0}
        cost = 0
        for _ in range(reps):
            base = draw_suite(rng, setup.tasks, setup.flaky_share)
            cand = candidate_of(rng, base, scenario)
            regressions = single_run_regressions(rng, base, cand)
            rejects["strict"] += regressions > 0
            rejects["tolerant"] += regressions > tolerance
            rejected, calls = ratchet_gate(rng, base, cand, setup)
            rejects["ratchet"] += rejected
            cost += calls
        good = scenario in ("only fixes", "no change")
        rate = {gate: (count if good else reps - count) / reps for gate, count in rejects.items()}
        rows.append(
            {
                "scenario": scenario,
                "reps": reps,
                "measure": "P(reject)" if good else "P(promote)",
                "single_run": rate["strict"],
                "single_run_tolerant": rate["tolerant"],
                "ratchet": rate["ratchet"],
                "ratchet_cost_vs_single": cost / (2 * setup.tasks * reps),
            }
        )
    return rows


def million_rows(seed: int) -> dict[str, float]:
    """Time classify + decide over 1,000,000 outcome rows (100,000 tasks x 5 trials x 2 sides)."""
    from ratchet.gates import GatePolicy, JudgedSplit, judge, paired_counts

    rng = np.random.default_rng(seed)
    tasks, trials = 100_000, 5
    ids = np.repeat(np.array([f"task-{i}" for i in range(tasks)], dtype=object), trials)
    p = rng.uniform(0, 1, tasks).repeat(trials)
    baseline = pd.DataFrame({"task_id": ids, "passed": rng.random(p.size) < p})
    candidate = pd.DataFrame({"task_id": ids, "passed": rng.random(p.size) < p})
    started = time.perf_counter()
    verdict = judge(GatePolicy(min_fixes=0), JudgedSplit(paired_counts(baseline, candidate))).verdict
    seconds = time.perf_counter() - started
    return {
        "rows": int(len(baseline) + len(candidate)),
        "seconds": round(seconds, 3),
        "regressions": verdict.regressions,
        "fixes": verdict.fixes,
    }


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="repetitions per scenario (default 2,000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    setup = Setup()
    started = datetime.now(UTC)
    clock = time.perf_counter()
    tolerance = calibrate_tolerance(args.seed, setup)
    rows = error_rates(args.reps, args.seed, setup, tolerance)
    scale = million_rows(args.seed)
    result = {
        "version": 1,
        "benchmark": "gate_error_rates",
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - clock, 1),
        "seed": args.seed,
        "setup": setup.__dict__,
        "single_run_tolerance": tolerance,
        "rows": rows,
        "million_rows": scale,
        "host": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    write_results("gate_error_rates", result, args.out_dir, started)

    table = Table(
        title=f"Gate error rates: {args.reps} seeded repetitions per scenario, {setup.tasks} tasks, "
        f"{setup.flaky_share:.0%} flaky"
    )
    columns = (
        "scenario",
        "measure",
        "single-run strict",
        f"single-run tolerant (<= {tolerance} P->F)",
        "ratchet gate",
        "ratchet cost / single-run",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("scenario", "measure") else "right")
    for row in rows:
        table.add_row(
            str(row["scenario"]),
            str(row["measure"]),
            f"{row['single_run']:.1%}",
            f"{row['single_run_tolerant']:.1%}",
            f"{row['ratchet']:.1%}",
            f"{row['ratchet_cost_vs_single']:.3f}x",
        )
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(f"classify + decide over {scale['rows']:,} outcome rows: {scale['seconds']:.3f} s")
    console.print(f"results: {args.out_dir / 'gate_error_rates.json'} (+ timestamped copy); wall {result['wall_s']} s")


if __name__ == "__main__":
    main()
