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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ratchet.gates import GatePolicy
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
    cap: int = 20  # confirmation cap per side (the policy default)
    flaky_cap: int = 11  # the same for tasks flaky in history (the policy default)
    alpha: float = 0.05
    flaky_share: float = 0.2
    margin: float = 0.4  # the policy's regression_margin
    flaky_margin: float = 0.8  # its flaky_regression_margin
    clearing_level: float = 0.1


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


def policy_of(setup: Setup) -> GatePolicy:
    """The policy every Ratchet row is judged with: the defaults, no regression allowed, no fix required."""
    from ratchet.gates import GatePolicy

    return GatePolicy(
        name="bench",
        max_regressions=0,
        min_fixes=0,
        alpha=setup.alpha,
        confirmation_cap=setup.cap,
        flaky_confirmation_cap=setup.flaky_cap,
        regression_margin=setup.margin,
        flaky_regression_margin=setup.flaky_margin,
        clearing_level=setup.clearing_level,
    )


def ratchet_gate(rng: np.random.Generator, base: np.ndarray, cand: np.ndarray, setup: Setup) -> tuple[str, int]:
    from ratchet.gates import JudgedSplit, judge
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

    judged = judge(policy_of(setup), JudgedSplit(counts, flaky=flaky_now, sample=sample))
    verdict = judged.verdict
    cost = setup.trials * cand.size + judged.confirmation_runs
    return verdict.decision, cost


def scenario_rates(job: tuple[int, str, int, int, Setup, int]) -> dict[str, object]:
    """One scenario's repetitions (a process of the pool): each gate's decisions and the Ratchet gate's cost."""
    index, scenario, reps, seed, setup, tolerance = job
    rng = np.random.default_rng(seed + 1000 * index)
    rejects = {"strict": 0, "tolerant": 0}
    decisions = {"promote": 0, "reject": 0, "inconclusive": 0}
    cost = 0
    for _ in range(reps):
        base = draw_suite(rng, setup.tasks, setup.flaky_share)
        cand = candidate_of(rng, base, scenario)
        regressions = single_run_regressions(rng, base, cand)
        rejects["strict"] += regressions > 0
        rejects["tolerant"] += regressions > tolerance
        decision, calls = ratchet_gate(rng, base, cand, setup)
        decisions[decision] += 1
        cost += calls
    good = scenario in ("only fixes", "no change")
    rate = {gate: (count if good else reps - count) / reps for gate, count in rejects.items()}
    return {
        "scenario": scenario,
        "reps": reps,
        "measure": "P(reject)" if good else "P(promote)",
        "single_run": rate["strict"],
        "single_run_tolerant": rate["tolerant"],
        "ratchet": (decisions["reject"] if good else decisions["promote"]) / reps,
        "ratchet_promote": decisions["promote"] / reps,
        "ratchet_reject": decisions["reject"] / reps,
        "ratchet_inconclusive": decisions["inconclusive"] / reps,
        "ratchet_cost_vs_single": cost / (2 * setup.tasks * reps),
    }


def error_rates(reps: int, seed: int, setup: Setup, tolerance: int, workers: int = 1) -> list[dict[str, object]]:
    jobs = [(index, scenario, reps, seed, setup, tolerance) for index, scenario in enumerate(SCENARIOS)]
    if workers <= 1:
        return [scenario_rates(job) for job in jobs]
    with ProcessPoolExecutor(workers, initializer=_worker_setup) as pool:
        return list(pool.map(scenario_rates, jobs))


def _worker_setup() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def files_gate(seed: int, setup: Setup, reps: int) -> list[dict[str, object]]:
    """`ratchet gate` on result files (the judge without a sampler, as the command calls it): for 1, 2,
    3 and 5 trials a side, candidates with 3 deterministic regressions (n/n -> 0/n on stable passes)
    and unchanged ones. No trial can be added, so what the counts cannot settle is inconclusive."""
    from ratchet.gates import JudgedSplit, judge, paired_from_counts

    rows = []
    policy = policy_of(setup)
    for trials in (1, 2, 3, 5):
        rng = np.random.default_rng(seed + 7 * trials)
        tally = {
            "promoted_regressions": 0,
            "planted": 0,
            "broken": dict.fromkeys(("promote", "reject", "inconclusive"), 0),
        }
        same = dict.fromkeys(("promote", "reject", "inconclusive"), 0)
        more: list[int] = []
        for _ in range(reps):
            base = draw_suite(rng, setup.tasks, setup.flaky_share)
            ids = [f"t{i}" for i in range(base.size)]
            b = (rng.random((trials, base.size)) < base).sum(0)
            hit = rng.choice(np.flatnonzero((base >= 0.95) & (b == trials)), 3, replace=False)
            for kind in ("broken", "same"):
                c = (rng.random((trials, base.size)) < base).sum(0)
                if kind == "broken":
                    c[hit] = 0
                verdict = judge(
                    policy,
                    JudgedSplit(
                        paired_from_counts(
                            {t: (int(x), trials) for t, x in zip(ids, b, strict=True)},
                            {t: (int(x), trials) for t, x in zip(ids, c, strict=True)},
                        )
                    ),
                ).verdict
                if kind == "broken":
                    tally["broken"][verdict.decision] += 1
                    tally["planted"] += 3
                    tally["promoted_regressions"] += 3 if verdict.decision == "promote" else 0
                    more += [
                        u.more_trials for u in verdict.undecided if u.task_id in {ids[i] for i in hit} and u.more_trials
                    ]
                else:
                    same[verdict.decision] += 1
        rows.append(
            {
                "trials": trials,
                "reps": reps,
                "deterministic_regressions_planted": tally["planted"],
                "deterministic_regressions_promoted": tally["promoted_regressions"],
                "broken": {k: v / reps for k, v in tally["broken"].items()},
                "unchanged": {k: v / reps for k, v in same.items()},
                "median_more_trials_for_a_planted_task": float(np.median(more)) if more else None,
            }
        )
    return rows


def scale_scenario(
    seed: int, setup: Setup, tasks: int = 200_000, trials: int = 5, planted: int = 100
) -> dict[str, object]:
    """200,000 tasks x 5 trials, 20% flaky, 100 planted n/n -> 0/n regressions: on files (no sampler)
    and in the cycle (confirmation trials from the true probabilities). Nothing is known from history."""
    from ratchet.gates import JudgedSplit, judge

    rng = np.random.default_rng(seed + 31)
    base = draw_suite(rng, tasks, setup.flaky_share)
    b = (rng.random((trials, tasks)) < base).sum(0)
    c = (rng.random((trials, tasks)) < base).sum(0)
    hit = rng.choice(np.flatnonzero((base >= 0.95) & (b == trials)), planted, replace=False)
    cand = base.copy()
    cand[hit] = 0.0
    c[hit] = 0
    ids = np.array([f"task-{i}" for i in range(tasks)], dtype=object)
    counts = pd.DataFrame({"task_id": ids, "b_pass": b, "b_n": trials, "c_pass": c, "c_n": trials})
    planted_ids = set(ids[hit])
    out: dict[str, object] = {"tasks": tasks, "trials": trials, "planted": planted}
    probability = {"baseline": dict(zip(ids, base, strict=True)), "candidate": dict(zip(ids, cand, strict=True))}

    def sample(chosen: list[str], side: str) -> dict[str, bool]:
        return {t: bool(rng.random() < probability[side][t]) for t in chosen}

    for mode in ("files", "cycle"):
        started = time.perf_counter()
        judged = judge(policy_of(setup), JudgedSplit(counts, sample=sample if mode == "cycle" else None))
        frame = judged.gate.frame
        confirmed = set(frame.loc[frame["flip"] == "regression", "task_id"])
        out[mode] = {
            "decision": judged.verdict.decision,
            "planted_promoted": planted if judged.verdict.decision == "promote" else 0,
            "planted_confirmed": len(confirmed & planted_ids),
            "confirmed_regressions": judged.verdict.regressions,
            "undecided": judged.verdict.undecided_count,
            "confirmation_runs": judged.confirmation_runs,
            "cost_vs_single": (trials * tasks + judged.confirmation_runs) / (2 * tasks),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return out


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
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the scenarios")
    parser.add_argument("--files-reps", type=int, default=500, help="repetitions per trial count on files")
    parser.add_argument("--skip-scale", action="store_true", help="skip the 200,000-task scenario")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    setup = Setup()
    started = datetime.now(UTC)
    clock = time.perf_counter()
    tolerance = calibrate_tolerance(args.seed, setup)
    rows = error_rates(args.reps, args.seed, setup, tolerance, args.workers)
    files = files_gate(args.seed, setup, args.files_reps)
    at_scale = None if args.skip_scale else scale_scenario(args.seed, setup)
    scale = million_rows(args.seed)
    result = {
        "version": 2,
        "benchmark": "gate_error_rates",
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - clock, 1),
        "seed": args.seed,
        "setup": setup.__dict__,
        "single_run_tolerance": tolerance,
        "rows": rows,
        "files": files,
        "scale": at_scale,
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
        "ratchet promote / reject / inconclusive",
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
            f"{row['ratchet_promote']:.1%} / {row['ratchet_reject']:.1%} / {row['ratchet_inconclusive']:.1%}",
            f"{row['ratchet_cost_vs_single']:.3f}x",
        )
    console = Console(width=max(Console().width, 110))
    console.print(table)
    files_table = Table(title=f"`ratchet gate` on files (no extra trials), {args.files_reps} repetitions per row")
    for column in (
        "trials a side",
        "planted n/n -> 0/n promoted",
        "3 broken: P / R / I",
        "unchanged: P / R / I",
        "median more trials",
    ):
        files_table.add_column(column, justify="right")
    for row in files:
        broken, same = row["broken"], row["unchanged"]
        files_table.add_row(
            str(row["trials"]),
            f"{row['deterministic_regressions_promoted']} of {row['deterministic_regressions_planted']}",
            " / ".join(f"{broken[k]:.1%}" for k in ("promote", "reject", "inconclusive")),
            " / ".join(f"{same[k]:.1%}" for k in ("promote", "reject", "inconclusive")),
            str(row["median_more_trials_for_a_planted_task"]),
        )
    console.print(files_table)
    if at_scale is not None:
        for mode in ("files", "cycle"):
            r = at_scale[mode]
            console.print(
                f"scale ({mode}): 200,000 tasks x 5 trials, 100 planted -> {r['decision']}, planted promoted "
                f"{r['planted_promoted']}, confirmed {r['planted_confirmed']}, undecided {r['undecided']}, cost "
                f"{r['cost_vs_single']:.2f}x, {r['seconds']} s"
            )
    console.print(f"classify + decide over {scale['rows']:,} outcome rows: {scale['seconds']:.3f} s")
    console.print(f"results: {args.out_dir / 'gate_error_rates.json'} (+ timestamped copy); wall {result['wall_s']} s")


if __name__ == "__main__":
    main()
