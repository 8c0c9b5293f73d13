"""Adaptive evaluation: spend items only where the recommendation still depends on them (pure code).

Items are scored in rounds, in one seeded order per task shared by every (model, variant), so that the
points of a suite stay paired: after round r, every point still in the race has seen the same first
items of every task. After each round, per suite, the **leader** is the recommendation on the items seen
so far (the cheapest point within ``tolerance_pts`` of the most accurate one, as
:func:`evaluator.pareto.recommend` picks it), and a point still racing stops when it is out of contention,
by a one-sided paired test at 95 % with a Bonferroni-Holm correction over every comparison the race of
that suite can make (:func:`race_tests`: each racing point against each other point, every round; the
share of a point that stops passes to those still racing):

- **off the frontier at the tolerance**: a point that uses no more energy per item is more accurate by
  more than the tolerance;
- **below the best**: some costlier point is more accurate by more than the tolerance, so this one can
  never be within the tolerance of the best: it can be neither the recommendation nor the best;
- **no better than the leader**: it costs more than the leader, and it is not more than the tolerance more
  accurate than the leader or than any cheaper point still racing (upper bounds of the paired gaps), so
  it can neither be the recommendation (a cheaper point within the tolerance is) nor push a contender out
  of the tolerance of the best.

Stopping such a point never changes the recommendation, up to the tests' error rate (at most 5 % per suite
that any stop is wrong, by the union bound, up to the normal approximation of each test). A suite is
**decided** when the leader is the only point left racing: then it stops too, and the suite's
recommendation is settled before the items run out. (Points off the frontier can be neither the
recommendation nor the best nor the runner-up; points stopped for the other two reasons may still be the
best or the runner-up on the items they saw, measured less precisely.)

The paired statistic is that of the suite's accuracy, the mean over its tasks
(:func:`evaluator.stats.paired_gap`), and its question is what scoring every item of the suite would
say (the exhaustive run the race stands in for): the items seen are a sample drawn without replacement
from each task's items (:attr:`RacePoint.sizes`), so the test's variance takes the finite-population
factor and a task seen whole is known exactly. A point cheap enough (:func:`whole_points`) is scored on
every item of its suite in round 2, so its accuracy is exact and a dearer point's estimate can take it as
control variate (the regression estimate of :func:`evaluator.stats.paired_gap`).

>>> order_items(["a", "b", "c", "d"], seed=0) == order_items(["a", "b", "c", "d"], seed=0)
True
>>> round_bounds(100, 4)
[25, 50, 75, 100]
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

from evaluator.pareto import choose
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


#: A point whose whole suite costs at most this share of one round of the suite's dearest point is scored on
#: every item of the suite as soon as its cost is known (round 2): its accuracy there is then exact, the
#: comparisons among such points need no test, and a dearer point's estimate takes it as control variate
#: (:func:`evaluator.stats.paired_gap`). Replayed on the exhaustive runs of docs/benchmarks.md §12: 0.5 (the
#: four encoder points there) cuts the race's cost most; 0.25 less, 1 (the smallest causal LM too) less.
WHOLE_SHARE = 0.5


def whole_points(seconds_per_item: Mapping[T, float], n_items: int, rounds: int,
                 share: float = WHOLE_SHARE) -> set[T]:
    """The points to score on every item: whole-suite cost at most ``share`` of a round of the dearest one.

    ``seconds_per_item``: each point's measured time per item on the suite (every point measured so far,
    stopped ones too); ``n_items``: the suite's items over its tasks; ``rounds``: the race's rounds.

    >>> sorted(whole_points({"enc": 0.01, "lm": 1.0, "mid": 0.2}, 240, 8))
    ['enc']
    >>> whole_points({"a": 1.0}, 240, 8), whole_points({}, 240, 8)
    (set(), set())
    """
    if not seconds_per_item or n_items <= 0 or rounds <= 0:
        return set()
    dear_round = max(seconds_per_item.values()) * n_items / rounds
    return {p for p, c in seconds_per_item.items() if c * n_items <= share * dear_round}


def race_bounds(n: int, rounds: int, batch_size: int) -> list[int]:
    """A task's round bounds in the race: equal steps, the first at least one batch.

    A first round of one batch is measured in two windows of half a batch each (evaluator/measure.py), so
    that a point stopped after it has an energy interval without scoring an item twice.

    >>> race_bounds(152, 8, 16), race_bounds(100, 8, 16)
    ([19, 38, 57, 76, 95, 114, 133, 152], [16, 25, 38, 50, 63, 75, 88, 100])
    """
    return round_bounds(n, rounds, first=batch_size)


@dataclass(frozen=True)
class RacePoint:
    """A (model, variant) point of one suite in the race."""

    model: str
    variant: str
    energy_j_per_item: float
    outcomes: Outcomes
    active: bool = True
    #: Whether its accuracy is above chance at 95 % (None: unknown); the leader is chosen, as the
    #: recommendation is, among the points above chance while any is.
    above_chance: bool | None = None
    #: task -> how many items it has (None: unknown). The race's comparisons are of accuracy on all of
    #: them, with the finite-population correction (:func:`evaluator.stats.paired_gap`).
    sizes: Mapping[str, int] | None = None

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


def race_tests(n_points: int, rounds: int, active: int | None = None) -> int:
    """The tests one round of a suite's race shares alpha over, times the rounds: a Bonferroni-Holm count.

    Each round, each of the ``active`` points still racing is compared with each of the suite's other
    ``n_points - 1`` points from below (is one of them more accurate by more than the tolerance?) and
    once from above (is it no more than the tolerance better than the contenders?: an intersection-union
    test, one test however many contenders), so ``n_points`` tests a point; alpha is spread evenly over
    the ``rounds``. A point that stops gives its share to the points still racing (Holm's step-down,
    applied per round): until the first wrong stop, every point that should race is still racing, so
    each of its tests is held at no more than ``alpha / (rounds * n_points * that many points)``, and the
    union bound over them gives a chance of at most ``alpha`` per suite that any stop is wrong, whatever
    comparisons the data pick.

    >>> race_tests(12, 8), race_tests(12, 8, active=7)
    (1152, 672)
    """
    n = max(1, n_points)
    return max(1, n if active is None else active) * n * max(1, rounds)


def accuracy(outcomes: Outcomes) -> float | None:
    """The suite's accuracy on the items seen: the mean over tasks of each task's share correct.

    >>> accuracy({"a": {"1": True, "2": False}, "b": {"1": True}})
    0.75
    """
    shares = [sum(o.values()) / len(o) for o in outcomes.values() if o]
    return sum(shares) / len(shares) if shares else None


def leader(points: Sequence[RacePoint], tolerance_pts: float) -> RacePoint | None:
    """The recommendation on the items seen: the cheapest point within the tolerance of the most accurate.

    Every point counts, stopped ones on the items they saw (as the run's verdict will count them), and
    points not better than chance only when no point is.
    """
    scored = sorted(((p, a) for p in points if (a := accuracy(p.outcomes)) is not None),
                    key=lambda pa: pa[0].label)  # ties between equal points go to the first label
    if not scored:
        return None
    return choose(scored, tolerance_pts, lambda pa: pa[1], lambda pa: pa[0].energy_j_per_item,
                  lambda pa: pa[0].above_chance)[2][0]


def race_round(points: Sequence[RacePoint], tolerance_pts: float, tests: int, alpha: float = 0.05,
               min_items: int = MIN_ITEMS) -> dict[str, Stop]:
    """Which active points stop after this round, by label (the module's rules, in its order).

    ``tests``: the number of tests the correction spreads ``alpha`` over this round (:func:`race_tests`,
    with the points still racing).
    Comparisons use the items both points saw, and need ``min_items`` of them.
    """
    crit = z_for(tests, alpha)
    margin = tolerance_pts / 100.0
    bar = f"95 % with a correction for {tests} tests"
    out: dict[str, Stop] = {}
    for a in points:
        if not a.active:
            continue
        # the strongest comparison against a point that uses no more energy, and against any point
        strongest: dict[bool, tuple[float, RacePoint, PairedGap]] = {}
        for b in points:
            if b is a:
                continue  # (two points cannot stop each other: each would be more accurate than the other)
            gap = paired_gap(a.outcomes, b.outcomes, a.sizes)
            if gap is None or gap.n_items < min_items:
                continue
            z = gap.z(margin)
            cheaper = b.energy_j_per_item <= a.energy_j_per_item
            if cheaper not in strongest or z > strongest[cheaper][0]:
                strongest[cheaper] = (z, b, gap)
        cleared = [strongest[k] for k in (True, False) if k in strongest and strongest[k][0] > crit]
        best = cleared[0] if cleared else None  # off the frontier first, when both hold
        if best is not None and best[0] > crit:
            z, b, gap = best
            what = ("off the frontier: {b} uses no more energy per item and is" if b.energy_j_per_item
                    <= a.energy_j_per_item else "below the best: {b} uses more energy but is")
            out[a.label] = Stop(
                f"{what.format(b=b.label)} {gap.diff * 100:.1f} points more accurate on the {gap.n_items} items "
                f"both saw (paired z {z:.2f} beyond the tolerance of {tolerance_pts:g} points > {crit:.2f}, "
                f"{bar})", b.label)
    lead = leader(points, tolerance_pts)
    if lead is not None:
        contenders = [p for p in points if (p.active and p.label not in out
                                            and p.energy_j_per_item <= lead.energy_j_per_item) or p is lead]
        for a in points:
            if not a.active or a.label in out or a.energy_j_per_item <= lead.energy_j_per_item:
                continue
            gaps = [paired_gap(a.outcomes, k.outcomes, a.sizes) for k in contenders]  # k - a
            if not gaps or any(g is None or g.n_items < min_items for g in gaps):
                continue
            zs = [g.z(-margin) for g in gaps if g is not None]  # (k - a + tolerance) / se
            if min(zs) > crit:
                worst = max((g for g in gaps if g is not None), key=lambda g: -g.diff)
                out[a.label] = Stop(
                    f"no better than the leader: costs more than {lead.label} and is at most {tolerance_pts:g} "
                    f"points more accurate than it or any cheaper point still racing (at most "
                    f"{-worst.diff * 100:+.1f} points observed; paired z {min(zs):.2f} > {crit:.2f}, {bar})",
                    lead.label)
    active_left = [p for p in points if p.active and p.label not in out]
    if len(active_left) == 1 and len(points) > 1:
        last = active_left[0]
        out[last.label] = Stop(
            f"decided: {last.label} is the suite's recommendation on these items, and every other point is out "
            "of contention" if last is lead else "decided: every other point of the suite is out of contention")
    return out
