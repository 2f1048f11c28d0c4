"""Clearing a task: a test of no regression, so that a task whose counts lean towards a regression
can leave the gate's doubt without being confirmed.

A task is *cleared* when the data exclude a regression of concern: a fall of its pass probability
by at least the margin delta (the policy's `regression_margin`, 0.3; `flaky_regression_margin`,
0.7, for a task known to be flaky, whose baseline rate is itself uncertain). The test is the
one-sided upper confidence bound of the fall d = p_b - p_c by Newcombe's hybrid score method
(Newcombe 1998, method 10), from the Wilson score intervals [l_b, u_b] and [l_c, u_c] of each side
at z = Phi^-1(1 - gamma), gamma being the policy's `clearing_level` (0.1):

    upper(d) = (b/n_b - c/n_c) + sqrt((u_b - b/n_b)^2 + (c/n_c - l_c)^2)

and the task is cleared when upper(d) < delta. What it bounds: a task whose pass probability really
fell by delta or more is cleared with probability about gamma or less at each look (the
confirmation loop looks after every trial, `benchmarks/gate_error_rates.py` measures the whole).

The bound shrinks like 1/sqrt(n), so any task clears with enough trials unless it really fell;
`more_trials_needed` says how many, assuming the observed rates hold: the smallest number of
trials per side at which the task would be confirmed as a regression or cleared.
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

from ratchet.gates.fisher import fisher_greater

MAX_TRIALS = 100  # `more_trials_needed` looks this far (per side)


def z_for(level: float) -> float:
    """The one-sided normal quantile for a clearing level gamma."""
    return NormalDist().inv_cdf(1.0 - level)


def wilson_bounds(passes: np.ndarray, runs: np.ndarray, z: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lower, upper) of passes / runs at normal quantile z, element-wise."""
    n = runs.astype("float64")
    p = passes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def drop_upper_bound(
    b_pass: np.ndarray, b_n: np.ndarray, c_pass: np.ndarray, c_n: np.ndarray, z: float | np.ndarray
) -> np.ndarray:
    """Newcombe's hybrid score upper bound of p_b - p_c (the module's formula), element-wise."""
    b_rate, c_rate = b_pass / b_n, c_pass / c_n
    _, b_upper = wilson_bounds(b_pass, b_n, z)
    c_lower, _ = wilson_bounds(c_pass, c_n, z)
    return (b_rate - c_rate) + np.sqrt((b_upper - b_rate) ** 2 + (c_rate - c_lower) ** 2)


@lru_cache(maxsize=65536)
def drop_bound_of(b_pass: int, b_n: int, c_pass: int, c_n: int, z: float) -> float:
    """`drop_upper_bound` of one task."""
    return float(drop_upper_bound(np.array([b_pass]), np.array([b_n]), np.array([c_pass]), np.array([c_n]), z)[0])


@lru_cache(maxsize=65536)
def more_trials_needed(
    b_pass: int, b_n: int, c_pass: int, c_n: int, level: float, margin: float, z: float
) -> int | None:
    """Trials per side (beyond the larger side's count) after which, if the observed pass rates hold,
    the task would be confirmed as a regression at `level` or cleared at `margin`; None: not within
    MAX_TRIALS a side."""
    b_rate, c_rate = b_pass / b_n, c_pass / c_n
    start = max(b_n, c_n)
    for n in range(start + 1, MAX_TRIALS + 1):
        b, c = round(b_rate * n), round(c_rate * n)
        if drop_bound_of(b, n, c, n, z) < margin or (c < b and fisher_greater(b, n, c, n) <= level):
            return n - start
    return None
