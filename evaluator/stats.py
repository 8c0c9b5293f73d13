"""Pure statistics: intervals and paired tests. No I/O, no models.

>>> lo, hi = wilson_interval(8, 10); round(lo, 3), round(hi, 3)
(0.49, 0.943)
>>> mcnemar([True, True, False], [True, True, False])["p_value"]
1.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp so rounding never puts p outside its own interval (e.g. 0 successes -> low exactly 0)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


#: two-sided 95 % Student-t quantiles (3 decimals) for df 1-30, 40, 60, 120
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
       29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_critical_95(df: int) -> float:
    """Two-sided 95 % Student-t critical value; between table rows the smaller df's (never too narrow).

    >>> t_critical_95(2), t_critical_95(45), t_critical_95(10_000)
    (4.303, 2.021, 1.98)
    """
    if df <= 0:
        return float("nan")
    return T95[max(k for k in T95 if k <= df)]


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval; with one value the interval is the value itself."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    half = t_critical_95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float | int]:
    """Exact (binomial) McNemar test on paired per-item correctness.

    Returns b_only (A wrong, B right), a_only (A right, B wrong) and the two-sided p-value.
    """
    if len(a) != len(b):
        raise ValueError("paired test needs the same items in both")
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}
