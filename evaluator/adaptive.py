"""Adaptive evaluation: spend items only where the recommendation still depends on them (pure code).

Items are scored in rounds, in one seeded order per task shared by every (model, variant), so that the
points of a suite stay paired: after round r, every point still in the race has seen the same first
items of every task. After each round, per suite, a point stops when it is **confidently off the
frontier at the tolerance**: some point that uses no more energy per item is more accurate by more than
``tolerance_pts``, by a one-sided paired test at 95 % with a Bonferroni correction over every test the
race of that suite can make (points x rounds). Such a point can be neither the recommendation nor the
best nor the runner-up (the cheaper, more accurate point beats it in each role), so stopping it never
changes the verdict, up to the test's error rate.

The paired statistic is that of the suite's accuracy, the mean over its tasks
(:func:`evaluator.stats.paired_gap`). A race ends when one point is left or the items run out.

>>> order_items(["a", "b", "c", "d"], seed=0) == order_items(["a", "b", "c", "d"], seed=0)
True
>>> round_bounds(100, 4)
[25, 50, 75, 100]
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

from evaluator.stats import Outcomes, PairedGap, paired_gap

T = TypeVar("T")

#: No point stops before it has seen this many items of its suite (the normal approximation needs them).
MIN_ITEMS = 30

def order_items(items: Sequence[T], seed: int, key: str = "") -> list[T]:
    """The race's order of a task's items: a seeded shuffle (same seed and task, same order, every cell)."""
    out = list(items)
    random.Random(f"{seed}:{key}").shuffle(out)
    return out


def round_bounds(n: int, rounds: int, first: int = 0) -> list[int]:
    """Items scored after each of ``rounds`` rounds: equal steps, the first at least ``first`` items.

    The list has one entry per round and never falls; a task whose count does not grow in a round sits
    that round out.

    >>> round_bounds(80, 4, first=32)
    [32, 40, 60, 80]
    >>> round_bounds(20, 4, first=32)
    [20, 20, 20, 20]
    """
    return [min(n, max(first, math.ceil(n * r / rounds))) for r in range(1, rounds + 1)] if n > 0 else []


@dataclass(frozen=True)
class RacePoint:
    """A (model, variant) point of one suite in the race."""

    model: str
    variant: str
    energy_j_per_item: float
    outcomes: Outcomes
    active: bool = True

    @property
    def label(self) -> str:
        """'model variant'."""
        return f"{self.model} {self.variant}"


def z_for(tests: int, alpha: float = 0.05) -> float:
    """One-sided critical z at ``alpha`` shared by ``tests`` tests (Bonferroni).

    >>> round(z_for(1), 3), round(z_for(10), 3)
    (1.645, 2.576)
    """
    return NormalDist().inv_cdf(1 - alpha / max(1, tests))


@dataclass(frozen=True)
class Stop:
    """Why a point left the race."""

    reason: str
    by: str = ""  # the dominating point's label


def race_round(points: Sequence[RacePoint], tolerance_pts: float, tests: int, alpha: float = 0.05,
               min_items: int = MIN_ITEMS) -> dict[str, Stop]:
    """Which active points stop after this round, by label.

    ``tests``: the number of tests the Bonferroni correction spreads ``alpha`` over (points x rounds).
    A point is tested against every point (active or stopped) that uses no more energy per item; it stops
    when the strongest of those comparisons clears the corrected bar.
    """
    crit = z_for(tests, alpha)
    margin = tolerance_pts / 100.0
    out: dict[str, Stop] = {}
    for a in points:
        if not a.active:
            continue
        best: tuple[float, RacePoint, PairedGap] | None = None
        for b in points:
            if b is a or b.energy_j_per_item > a.energy_j_per_item:
                continue
            if b.energy_j_per_item == a.energy_j_per_item and b.label > a.label:
                continue  # of two equal-energy points only one may stop the other
            gap = paired_gap(a.outcomes, b.outcomes)
            if gap is None or gap.n_items < min_items:
                continue
            z = gap.z(margin)
            if best is None or z > best[0]:
                best = (z, b, gap)
        if best is not None and best[0] > crit:
            z, b, gap = best
            out[a.label] = Stop(
                f"off the frontier: {b.label} uses no more energy per item and is {gap.diff * 100:.1f} points "
                f"more accurate on the {gap.n_items} items both saw (paired z {z:.2f} beyond the tolerance "
                f"of {tolerance_pts:g} points > {crit:.2f}, 95 % with a correction for {tests} tests)", b.label)
    active_left = [p for p in points if p.active and p.label not in out]
    if len(active_left) == 1 and len(points) > 1:
        out[active_left[0].label] = Stop("decided: every other point of the suite is out of contention")
    return out
