"""One-sided Fisher exact tests on a task's 2x2 table of passes and fails (gates.statistics explains them)."""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=65536)
def fisher_greater(b_pass: int, b_n: int, c_pass: int, c_n: int) -> float:
    """One-sided Fisher exact p-value for "the baseline passes more often than the candidate"."""
    total, passes = b_n + c_n, b_pass + c_pass
    denominator = math.comb(total, b_n)
    top = min(b_n, passes)
    tail = sum(math.comb(passes, i) * math.comb(total - passes, b_n - i) for i in range(b_pass, top + 1))
    return min(1.0, tail / denominator)


def fisher_less(b_pass: int, b_n: int, c_pass: int, c_n: int) -> float:
    """One-sided Fisher exact p-value for "the candidate passes more often than the baseline"."""
    return fisher_greater(c_pass, c_n, b_pass, b_n)
