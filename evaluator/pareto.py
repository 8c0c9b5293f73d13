"""Pure Pareto code: suite points from cells, the frontier, indistinguishable points, the recommendation.

>>> pts = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (2.0, 0.7)]
>>> sorted(frontier_indices([e for e, _ in pts], [a for _, a in pts]))
[0, 1, 3]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from evaluator.records import NOT_APPLICABLE, CellResult, ItemRecord, SuitePoint
from evaluator.stats import PairedGap, paired_gap

GRADES = "ABCDE"


def frontier_indices(energy: Sequence[float], accuracy: Sequence[float],
                     higher_is_better: bool = True) -> set[int]:
    """Indices not dominated: no other point has energy <= and accuracy >= with one strictly better."""
    sign = 1 if higher_is_better else -1
    out = set()
    for i, (e, a) in enumerate(zip(energy, accuracy, strict=True)):
        dominated = any(
            e2 <= e and sign * a2 >= sign * a and (e2 < e or sign * a2 > sign * a)
            for j, (e2, a2) in enumerate(zip(energy, accuracy, strict=True)) if j != i)
        if not dominated:
            out.add(i)
    return out


def suite_points(cells: Sequence[CellResult], items: Mapping[tuple[str, str, str, str], Sequence[ItemRecord]]
                 | None = None) -> dict[str, list[SuitePoint]]:
    """Aggregate ok cells into one point per (suite, model, variant) with every task present.

    ``items`` (per (suite, task, model, variant)): each point gets its per-item outcomes, for paired tests.
    """
    core = {suite: frontier_tasks(cells, suite)[0] for suite in dict.fromkeys(c.suite for c in cells)}
    groups: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for c in cells:
        if c.status == "ok" and c.accuracy is not None and c.energy_j is not None and c.task in core[c.suite]:
            groups[(c.suite, c.model, c.variant)].append(c)
    out: dict[str, list[SuitePoint]] = defaultdict(list)
    for (suite, model, variant), cs in sorted(groups.items()):
        if {c.task for c in cs} != core[suite]:
            continue  # a failed task leaves the suite point incomplete: not plotted as if whole
        acc = sum(c.accuracy for c in cs) / len(cs)
        var = sum(c.accuracy * (1 - c.accuracy) / max(1, c.n_items) for c in cs) / len(cs) ** 2
        half = 1.959964 * math.sqrt(var)
        n = sum(c.n_items for c in cs)
        energy = sum(c.energy_j for c in cs)
        methods = sorted({c.energy_method for c in cs})
        chances = [c.chance_accuracy for c in cs]
        chance = sum(chances) / len(chances) if all(x is not None for x in chances) else None
        lo = max(0.0, acc - half)
        recs = {c.task: (items or {}).get((suite, c.task, model, variant)) for c in cs}
        outcomes = {t: {r.item_id: r.correct for r in rs} for t, rs in recs.items() if rs} if all(
            recs.values()) else None
        out[suite].append(SuitePoint(
            suite, model, variant, acc, lo, min(1.0, acc + half),
            energy / n * 1000 if n else float("nan"), "+".join(methods), any(c.is_estimate for c in cs), n, len(cs),
            chance_accuracy=chance, above_chance=None if chance is None or chance <= 0 else lo > chance,
            outcomes=outcomes))
    return {s: mark_frontier(p) for s, p in out.items()}


def frontier_tasks(cells: Sequence[CellResult], suite: str) -> tuple[set[str], set[str]]:
    """(tasks the suite's frontier covers, tasks left out because some model cannot do them).

    A task that is not applicable to a (model, variant) (status "n/a": an encoder and a generation task) is
    left out of the suite's points for *every* model, so that all points average the same tasks; the
    models that can do it keep their cells (task tables, the report's sections). A (model, variant) that
    can do none of the suite's tasks does not narrow the others.

    >>> from evaluator.records import CellResult as C
    >>> cells = [C("s", "t1", "enc", "fp32", "ok"), C("s", "gen", "enc", "fp32", "n/a"),
    ...          C("s", "t1", "lm", "fp32", "ok"), C("s", "gen", "lm", "fp32", "ok")]
    >>> frontier_tasks(cells, "s")
    ({'t1'}, {'gen'})
    """
    mine = [c for c in cells if c.suite == suite]
    tasks = {c.task for c in mine}
    na: dict[tuple[str, str], set[str]] = {}
    for c in mine:
        left_out = na.setdefault((c.model, c.variant), set())
        if c.status == NOT_APPLICABLE:
            left_out.add(c.task)
    core = set(tasks)
    for left_out in na.values():
        if left_out != tasks:
            core -= left_out
    return core, tasks - core


def left_out_note(cells: Sequence[CellResult], suite: str) -> str | None:
    """A sentence on the tasks a suite's frontier leaves out (not applicable to some models), or None."""
    core, left = frontier_tasks(cells, suite)
    if not left:
        return None
    who = sorted({f"{c.model} {c.variant}" for c in cells if c.suite == suite and c.task in left
                  and c.status == NOT_APPLICABLE})
    return (f"The frontier covers {', '.join(sorted(core)) or 'no task'}; {', '.join(sorted(left))} "
            f"{'is' if len(left) == 1 else 'are'} left out of it because {', '.join(who[:4])}"
            f"{' and others' if len(who) > 4 else ''} cannot do {'it' if len(left) == 1 else 'them'} (not "
            "applicable); the models that can have their cells in the task tables.")


def mark_cells(cells: Sequence[CellResult], fronts: dict[str, list[SuitePoint]]) -> tuple[CellResult, ...]:
    """The cells with ``on_frontier`` set from their suite points."""
    on = {(p.suite, p.model, p.variant) for pts in fronts.values() for p in pts if p.on_frontier}
    return tuple(replace(c, on_frontier=(c.suite, c.model, c.variant) in on) for c in cells)


def gradable(point: SuitePoint, accuracy_floor: float | None = None) -> bool:
    """Whether a point may get an energy grade: above chance at 95 % (where known) and at the floor or above.

    A cell that answers no better than guessing earns no grade, however little energy it uses.
    """
    if point.above_chance is False:
        return False
    return accuracy_floor is None or point.accuracy >= accuracy_floor


def mark_frontier(points: list[SuitePoint], accuracy_floor: float | None = None) -> list[SuitePoint]:
    """Set on_frontier, indistinguishable and the energy grade of each point (graded points only)."""
    if not points:
        return points
    idx = frontier_indices([p.energy_j_per_1k for p in points], [p.accuracy for p in points])
    ok = [gradable(p, accuracy_floor) for p in points]
    graded = iter(energy_grades([p.energy_j_per_1k for p, g in zip(points, ok, strict=True) if g]))
    grades = [next(graded) if g else "" for g in ok]
    out = []
    for i, p in enumerate(points):
        dominators = [points[j] for j in idx if points[j].energy_j_per_1k <= p.energy_j_per_1k
                      and points[j].accuracy >= p.accuracy]
        indist = i not in idx and all(p.accuracy_ci_high >= f.accuracy_ci_low for f in dominators)
        out.append(replace(p, on_frontier=i in idx, indistinguishable=indist, grade=grades[i]))
    return out


def energy_grades(energy: Sequence[float]) -> list[str]:
    """A-E by position of each energy on a log scale between the lowest and highest given (the graded points)."""
    vals = [e for e in energy if e and e > 0]
    if not vals:
        return ["" for _ in energy]
    lo, hi = math.log(min(vals)), math.log(max(vals))
    out = []
    for e in energy:
        if not e or e <= 0:
            out.append("")
            continue
        frac = 0.0 if hi == lo else (math.log(e) - lo) / (hi - lo)
        out.append(GRADES[min(4, int(frac * 5))])
    return out


@dataclass(frozen=True)
class Recommendation:
    """The lowest-energy point within ``tolerance_pts`` of the best accuracy, the saving, and how sure it is.

    ``runner_up`` is the point the choice is compared with (the best, when the choice is another point; the
    most accurate cheaper point, when the best is chosen); ``overlaps``: their 95 % intervals overlap, so the
    accuracy difference between them is not statistically supported on these items.
    """

    suite: str
    choice: SuitePoint
    best: SuitePoint
    tolerance_pts: float
    accuracy_drop_pts: float
    energy_ratio: float
    text: str
    runner_up: SuitePoint | None = None
    overlaps: bool | None = None
    #: The paired test of the choice against the runner-up on the items both saw (None without items).
    paired: PairedGap | None = None

    @property
    def distinguishable(self) -> bool | None:
        """Whether the choice and the runner-up differ beyond chance: a paired test at 95 %, else the intervals.

        None with no runner-up.
        """
        if self.runner_up is None:
            return None
        if self.paired is not None:
            return self.paired.p_value < 0.05
        return None if self.overlaps is None else not self.overlaps


def _paired_sentence(a: SuitePoint, b: SuitePoint, gap: PairedGap) -> str:
    """Whether ``a`` and ``b`` differ beyond chance on the items both saw, and if not, what would settle it."""
    head = (f"A paired test on the {gap.n_items} items both saw puts the difference at "
            f"{abs(gap.diff) * 100:.1f} points (p = {gap.p_value:.2g}): ")
    if gap.p_value < 0.05:
        return head + "the two are distinguishable at 95%."
    need = gap.items_to_settle()
    if need is None:
        return head + ("the two are not distinguishable, and they score alike, so more items are unlikely to tell "
                       "them apart.")
    more = max(0, need - gap.n_items)
    return head + (f"the two are not distinguishable at 95%; about {need} paired items ({more} more) would likely "
                   "settle it, if the difference holds." if more else
                   "the two are not distinguishable at 95%, though this many items would usually detect a "
                   "difference of this size: it may be smaller than it looks.")


def _pair(a: SuitePoint, b: SuitePoint) -> PairedGap | None:
    return paired_gap(a.outcomes, b.outcomes) if a.outcomes and b.outcomes else None


def _overlap(a: SuitePoint, b: SuitePoint) -> bool:
    return a.accuracy_ci_low <= b.accuracy_ci_high and b.accuracy_ci_low <= a.accuracy_ci_high


def _ci(p: SuitePoint) -> str:
    return f"95% CI {p.accuracy_ci_low:.0%}-{p.accuracy_ci_high:.0%}"


P = TypeVar("P")


def choose(points: Sequence[P], tolerance_pts: float, accuracy: Callable[[P], float],
           energy: Callable[[P], float], above_chance: Callable[[P], bool | None]) -> tuple[list[P], P, P]:
    """The recommendation rule, on any kind of point: (eligible, best, choice).

    Eligible: the points not known to be at chance, or all of them when every point is. Best: the most
    accurate eligible point (the cheaper of equals). Choice: the cheapest eligible point within
    ``tolerance_pts`` points of the best (the more accurate of equals; then the first in ``points``).
    The final verdict (:func:`recommend`) and the adaptive race's leader both use it, so the race
    follows the rule the run's verdict will apply.

    >>> eligible, best, choice = choose([(0.80, 9.0, True), (0.79, 2.0, True), (0.90, 1.0, False)], 2.0,
    ...                                 lambda p: p[0], lambda p: p[1], lambda p: p[2])
    >>> len(eligible), best, choice
    (2, (0.8, 9.0, True), (0.79, 2.0, True))
    """
    if not points:
        raise ValueError("choose() needs at least one point")
    eligible = [p for p in points if above_chance(p) is not False] or list(points)
    best = max(eligible, key=lambda p: (accuracy(p), -energy(p)))
    ok = [p for p in eligible if (accuracy(best) - accuracy(p)) * 100 <= tolerance_pts + 1e-9]
    choice = min(ok, key=lambda p: (energy(p), -accuracy(p)))
    return eligible, best, choice


def recommend(points: Sequence[SuitePoint], tolerance_pts: float = 2.0) -> Recommendation | None:
    """Name the lowest-energy point within a tolerance of the best accuracy, in plain sentences.

    They say whether the difference to the runner-up is statistically supported (95 % interval overlap).
    Points not better than chance are never chosen while any point is.
    """
    if not points:
        return None
    eligible, best, choice = choose(points, tolerance_pts, lambda p: p.accuracy, lambda p: p.energy_j_per_1k,
                                    lambda p: p.above_chance)
    drop = (best.accuracy - choice.accuracy) * 100
    ratio = best.energy_j_per_1k / choice.energy_j_per_1k if choice.energy_j_per_1k > 0 else float("inf")
    est = " (estimated energy)" if choice.is_estimate or best.is_estimate else ""
    runner_up, overlaps, gap = None, None, None
    if choice is best:
        cheaper = [p for p in eligible if p.energy_j_per_1k < best.energy_j_per_1k]
        guessing = [p for p in points if p not in eligible and p.energy_j_per_1k < best.energy_j_per_1k]
        if len(points) == 1:
            text = f"{best.label} is the only point."
        elif not cheaper and guessing:
            text = (f"{best.label} is the most accurate ({best.accuracy:.1%}) of the points better than chance, "
                    f"and the cheapest of them{est}; {len(guessing)} cheaper point(s) "
                    f"({', '.join(p.label for p in guessing[:3])}) are not better than chance at 95%.")
        elif not cheaper:
            text = f"{best.label} is the most accurate ({best.accuracy:.1%}) and uses the least energy{est}."
        else:
            runner_up = max(cheaper, key=lambda p: (p.accuracy, -p.energy_j_per_1k))
            overlaps = _overlap(best, runner_up)
            gap = _pair(runner_up, best)
            saving = best.energy_j_per_1k / runner_up.energy_j_per_1k if runner_up.energy_j_per_1k > 0 else float("inf")
            text = (f"{best.label} is the most accurate ({best.accuracy:.1%}, {_ci(best)}); every point that uses "
                    f"less energy is more than {tolerance_pts:g} points less accurate: the closest, "
                    f"{runner_up.label}, has {runner_up.accuracy:.1%} ({_ci(runner_up)}) and uses {saving:.1f}x "
                    f"less energy{est}.")
            if gap is not None:
                text += " " + _paired_sentence(best, runner_up, gap)
            elif overlaps:
                text += (" Their intervals overlap, so on these items the gap is not statistically supported: "
                         "more items would tell whether the cheaper point is as good.")
    else:
        runner_up, overlaps = best, _overlap(best, choice)
        gap = _pair(choice, best)
        text = (f"{choice.label} is within {drop:.1f} points of the best ({best.label}, {best.accuracy:.1%}) "
                f"and uses {ratio:.1f}x less energy{est}.")
        if gap is not None:
            text += " " + _paired_sentence(choice, best, gap)
        else:
            text += (" The two are statistically indistinguishable on these items (their 95% intervals overlap)."
                     if overlaps else " The best is more accurate beyond chance variation (the 95% intervals do "
                     "not overlap), by less than the tolerance.")
    if choice.above_chance is False:
        text += " Warning: no point is better than chance at 95% on this suite."
    return Recommendation(choice.suite, choice, best, tolerance_pts, drop, ratio, text, runner_up, overlaps,
                          gap if runner_up is not None else None)
