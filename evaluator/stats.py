"""Pure statistics: intervals and paired tests. No I/O, no models.

>>> lo, hi = wilson_interval(8, 10); round(lo, 3), round(hi, 3)
(0.49, 0.943)
>>> mcnemar([True, True, False], [True, True, False])["p_value"]
1.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

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


# ------------------------------------------------------------------------------------ power analysis
def items_needed(diff_pts: float, accuracy: float = 0.7, *, paired: bool = True, discordant: float | None = None,
                 alpha: float = 0.05, power: float = 0.8) -> int:
    """Items per cell needed to detect an accuracy difference of ``diff_pts`` points (two-sided).

    Unpaired (two independent samples, normal approximation for two proportions at ``accuracy`` and
    ``accuracy - diff``): ``n = (z_a sqrt(2 p(1-p)) + z_b sqrt(p1 q1 + p2 q2))^2 / d^2``, per cell.
    Paired (the same items scored by both cells, McNemar; Connor 1987):
    ``n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2``, where ``psi`` (``discordant``) is the share of
    items on which exactly one of the two is right; by default ``2 d`` (a variant that changes few answers
    besides those that make the difference), at least ``d``.

    >>> items_needed(10, paired=False)
    356
    >>> items_needed(5, paired=True)
    312
    """
    d = abs(diff_pts) / 100.0
    if not 0 < d < 1:
        raise ValueError("the difference must be between 0 and 100 points (exclusive)")
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    if paired:
        psi = min(1.0, 2 * d) if discordant is None else discordant
        psi = max(psi, d + 1e-9)
        n = (z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - d * d, 0.0))) ** 2 / (d * d)
    else:
        p1 = min(max(accuracy, d), 1.0)
        p2 = p1 - d
        p = (p1 + p2) / 2
        n = (z_a * math.sqrt(2 * p * (1 - p)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (d * d)
    return math.ceil(n)


# ------------------------------------------------------------------------------ paired suite accuracy
#: task -> item id -> correct
Outcomes = Mapping[str, Mapping[str, bool]]


@dataclass(frozen=True)
class PairedGap:
    """Accuracy of ``b`` minus accuracy of ``a`` (the suite's mean over tasks) on the items both saw."""

    diff: float
    se: float
    n_items: int
    discordant: float  # share of common items on which exactly one of the two is right

    def z(self, margin: float = 0.0) -> float:
        """(diff - margin) / se."""
        if self.se <= 0:
            return math.inf if self.diff > margin else -math.inf
        return (self.diff - margin) / self.se

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "no difference" (normal approximation)."""
        z = abs(self.z())
        return 0.0 if math.isinf(z) else min(1.0, 2 * (1 - NormalDist().cdf(z)))

    def items_to_settle(self) -> int | None:
        """Items (per point, over the suite) a paired test needs to detect this difference at 95 %/80 %.

        None when the observed difference is 0 (no number of items is likely to settle it).
        """
        pts = abs(self.diff) * 100
        if not 0 < pts < 100:
            return None
        return items_needed(pts, paired=True, discordant=max(self.discordant, abs(self.diff)))


def paired_gap(a: Outcomes, b: Outcomes, sizes: Mapping[str, int] | None = None) -> PairedGap | None:
    """The paired difference b - a over the tasks both have items in; None with no common item.

    Per task, the mean difference in correctness on the common items and its variance (sample variance
    / n, floored at 1/n^2 so that a perfect split of a few items is not infinitely sure); over tasks, the
    mean (the suite's accuracy is the mean over its tasks) and the variance of that mean.

    ``sizes`` (task -> how many items the task has): the common items are a random sample, drawn without
    replacement, of the task's items (the adaptive race's seeded order), and the gap estimates the
    difference **on all of those items** (what scoring every item would measure), not on the domain the
    items were drawn from: each task's variance takes the finite-population factor 1 - n/N, so that a task
    seen whole contributes none (Cochran, *Sampling Techniques*, 2.4). Where one of the two has seen the
    task whole and the other only a sample, the whole one's accuracy is known exactly and the other's is
    the **regression estimate** on the sample with the whole one as control variate (Cochran 7.1):
    ``y_n + beta (X_N - x_n)``, variance ``(1 - n/N) s_e^2 / n`` with ``s_e^2`` the residual variance of y on
    x (n - 2 degrees of freedom), never more than the paired variance by more than the estimate of beta
    costs. Without ``sizes``: the usual standard error, of the difference on new items of the domain.

    >>> half = {"t": {str(i): i % 2 == 0 for i in range(40)}}
    >>> right = {"t": {str(i): True for i in range(40)}}
    >>> round(paired_gap(half, right).se, 4), round(paired_gap(half, right, {"t": 160}).se, 4)
    (0.0801, 0.0693)
    >>> paired_gap(half, right, {"t": 40}).se
    0.0

    >>> a = {"t": {str(i): i % 2 == 0 for i in range(40)}}
    >>> b = {"t": {str(i): True for i in range(40)}}
    >>> g = paired_gap(a, b); round(g.diff, 2), g.n_items, round(g.discordant, 2)
    (0.5, 40, 0.5)
    """
    diffs, variances, n_all, disc = [], [], 0, 0
    for task in sorted(set(a) & set(b)):
        common = sorted(set(a[task]) & set(b[task]))
        if not common:
            continue
        xa, xb = [int(a[task][i]) for i in common], [int(b[task][i]) for i in common]
        n = len(common)
        n_whole = sizes.get(task) if sizes else None
        left = max(0.0, 1.0 - n / n_whole) if n_whole else 1.0  # finite population
        whole_a, whole_b = (n_whole is not None and n_whole > 0 and len(x[task]) >= n_whole for x in (a, b))
        if whole_a != whole_b and n > 2:
            diff, var = _regression_diff(a[task] if whole_a else b[task], xa if whole_a else xb,
                                         xb if whole_a else xa)
            diffs.append(diff if whole_a else -diff)
        else:
            d = [y - x for x, y in zip(xa, xb, strict=True)]
            diffs.append(sum(d) / n)
            var = sum((x - diffs[-1]) ** 2 for x in d) / (n - 1) if n > 1 else 1.0
        variances.append(max(var, 1.0 / n) / n * left)
        n_all += n
        disc += sum(x != y for x, y in zip(xa, xb, strict=True))
    if not diffs:
        return None
    k = len(diffs)
    return PairedGap(sum(diffs) / k, math.sqrt(sum(variances)) / k, n_all, disc / n_all)


def _regression_diff(whole: Mapping[str, bool], x: Sequence[int], y: Sequence[int]) -> tuple[float, float]:
    """(estimated mean of y over the task - mean of x over it, residual variance of y on x) by regression.

    ``whole``: x's outcomes on every item of the task; ``x``, ``y``: both on the sample (len > 2).

    >>> _regression_diff({"1": True, "2": False, "3": True, "4": False}, [1, 0, 1], [1, 1, 1])
    (0.5, 0.0)
    """
    n = len(x)
    mean_whole = sum(whole.values()) / len(whole)
    xm, ym = sum(x) / n, sum(y) / n
    sxx = sum((u - xm) ** 2 for u in x)
    beta = sum((u - xm) * (v - ym) for u, v in zip(x, y, strict=True)) / sxx if sxx > 0 else 0.0
    resid = sum(((v - ym) - beta * (u - xm)) ** 2 for u, v in zip(x, y, strict=True))
    return ym + beta * (mean_whole - xm) - mean_whole, resid / (n - 2)
