"""The suite-level paired test: a regression spread thinly over many tasks, none of which alone
is confirmed, still moves the mean of the per-task changes.

Over the m tasks run on both sides, d_i = c_i / n_c,i - b_i / n_b,i (each task's change of pass
rate). A one-sided one-sample t-test of mean(d) < 0,

    t = mean(d) / (sd(d) / sqrt(m)),   p = P(T_{m-1} <= t),

pairs every task with itself, so the spread of difficulty between tasks does not blur it. What it
bounds: when nothing changed (E d_i = 0 for every task), a candidate is rejected by it with
probability about `suite_alpha` (the t distribution is an approximation for the discrete d_i;
`benchmarks/gate_error_rates.py` measures the gate's false-reject rate with it).

P(T_v <= t) is Abramowitz & Stegun 26.7.3-4 (exact finite sums in theta = atan(t / sqrt(v))) up
to v = 2000 degrees of freedom, the normal distribution beyond (the difference is below 1e-4).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import pandas as pd

EXACT_UP_TO = 2000  # degrees of freedom


class SuiteChange(NamedTuple):
    """Mean per-task change of pass rate and the one-sided p-value of "it fell"."""

    mean_change: float
    p_value: float
    tasks: int


def suite_change(counts: pd.DataFrame) -> SuiteChange:
    """The paired test over a counts frame (b_pass, b_n, c_pass, c_n per task)."""
    change = (counts["c_pass"] / counts["c_n"] - counts["b_pass"] / counts["b_n"]).to_numpy(dtype="float64")
    m = int(change.size)
    if m < 2:
        return SuiteChange(float(change.mean()) if m else 0.0, 1.0, m)
    mean, spread = float(change.mean()), float(change.std(ddof=1))
    if spread == 0.0:  # every task changed alike: certain, whichever way
        return SuiteChange(mean, 0.0 if mean < 0 else 1.0, m)
    return SuiteChange(mean, student_t_cdf(mean / (spread / math.sqrt(m)), m - 1), m)


def student_t_cdf(t: float, freedom: int) -> float:
    """P(T <= t) for Student's t with `freedom` degrees of freedom."""
    if freedom > EXACT_UP_TO:
        return NormalDist().cdf(t)
    theta = math.atan(abs(t) / math.sqrt(freedom))
    cos2 = math.cos(theta) ** 2
    if freedom % 2:  # A&S 26.7.3
        term, series = math.cos(theta), 0.0
        if freedom > 1:
            series = term
            for k in range(1, (freedom - 3) // 2 + 1):
                term *= cos2 * (2 * k) / (2 * k + 1)
                series += term
        central = 2 / math.pi * (theta + math.sin(theta) * series)
    else:  # A&S 26.7.4
        term = series = 1.0
        for k in range(1, (freedom - 2) // 2 + 1):
            term *= cos2 * (2 * k - 1) / (2 * k)
            series += term
        central = math.sin(theta) * series
    return 0.5 + math.copysign(0.5 * min(1.0, central), t)
