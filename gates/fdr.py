"""False discovery rate control for the gate's per-task tests: weighted Benjamini-Hochberg over
every task of the split.

Each task has a one-sided Fisher p-value p_i (gates.statistics) and a weight w_i: 1, or
1 / FLAKY_DIVISOR for a task known to be flaky. The weights are normalised to average 1 over the m
tasks (w'_i = w_i m / sum w), and s_i = p_i / w'_i go through Benjamini-Hochberg (Genovese, Roeder
& Wasserman 2006 for the weights): with s_(1) <= ... <= s_(m), the k* smallest are confirmed, k*
the largest k with s_(k) <= alpha k / m.

The family is every task, not only those that lean or got more trials: the confirmation loop
chooses which tasks to run again from their counts, so a family read from the counts would be a
family chosen by the data, and it shrinks as tasks settle, which inflated false confirmations in
the benchmark to 15%. Every task had its chance to lean.

What it bounds: the expected share of false discoveries among the confirmed tasks is <= alpha
(under independence or positive dependence between tasks). When nothing changed at all every
discovery is false, so then the chance of confirming any task is <= alpha: a clean candidate is
rejected for a confirmed regression at most about alpha of the time (the loop looks after every
trial, which `benchmarks/gate_error_rates.py` measures). Unlike a Bonferroni split, the threshold
grows with the number of discoveries (alpha k / m): 100 broken tasks among 200,000 need p <=
2.5e-5 each, reached by 9 passes of 9 against 0 of 9, where Bonferroni would ask for 2.5e-7.

A task's *level* is the largest p-value at which it would be confirmed now: w'_i alpha k* / m for
a confirmed task, w'_i alpha (k* + 1) / m for one that is not (it would be the next).

The step-up is a sort and a running minimum: written out here rather than importing scipy.stats,
whose import alone costs more than `ratchet gate`'s whole budget on a million rows.
"""

from __future__ import annotations

import numpy as np

SCREEN = 0.5  # a task whose p-value is above it leans the other way (or not at all)


def benjamini_hochberg(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Which of `p_values` the Benjamini-Hochberg step-up procedure confirms at `alpha`."""
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    passing = np.flatnonzero(p_values[order] <= alpha * np.arange(1, m + 1) / m)
    confirmed = np.zeros(m, dtype=bool)
    if passing.size:
        confirmed[order[: passing[-1] + 1]] = True
    return confirmed


def fdr_levels(p_values: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(level, confirmed) per task: weighted Benjamini-Hochberg at `alpha` over all tasks."""
    m = p_values.size
    if m == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    normalised = weights * (m / float(weights.sum()))
    confirmed = benjamini_hochberg(p_values / normalised, alpha)
    discoveries = int(confirmed.sum())
    rank = np.where(confirmed, discoveries, discoveries + 1)
    return normalised * alpha * rank / m, confirmed
