"""CI gates: a pure check of a finished run against :class:`~evaluator.config.Gates`.

``check_gates`` returns one plain sentence per failure (empty list: every gate passed). Each
sentence names the gate, the suite and the (model, variant), the value, the threshold and by how
much it was missed. Gates work on suite points (mean accuracy over a suite's tasks, energy per
1,000 items); a (model, variant) whose suite point is missing because a task failed fails every gate
that needs it, with the failed tasks named. A gate that names a (model, variant) which is not in
the run at all is a configuration error: :class:`~evaluator.errors.FrugalError` (exit code 2).

>>> from evaluator.config import Gates
>>> from evaluator.records import CellResult
>>> cells = (CellResult("s", "t", "m", "fp32", "ok", n_items=10, accuracy=0.8, energy_j=1.0,
...                     energy_j_per_1k=100.0),)
>>> from types import SimpleNamespace
>>> check_gates(SimpleNamespace(cells=cells, frontiers={}), Gates(min_accuracy=0.9))
['min_accuracy: suite s, m:fp32 accuracy 80.0% is below the minimum 90.0% (missed by 10.0 pts)']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evaluator.config import Gates
from evaluator.errors import FrugalError
from evaluator.pareto import suite_points
from evaluator.records import CellResult, SuitePoint

if TYPE_CHECKING:
    from evaluator.records import RunResult

EPS = 1e-9


def parse_ref(ref: str) -> tuple[str, str]:
    """'MODEL:VARIANT' -> (model, variant); the last ':' splits (variant names hold no ':')."""
    model, sep, variant = ref.rpartition(":")
    if not sep or not model or not variant:
        raise FrugalError(f"gate reference {ref!r} must be MODEL:VARIANT, e.g. minilm-l6:fp32")
    return model, variant


def _points(result: RunResult | Any) -> dict[str, dict[tuple[str, str], SuitePoint]]:
    """Suite points by suite and (model, variant): the run's frontiers, else recomputed from its cells."""
    fronts = dict(getattr(result, "frontiers", None) or {})
    suites_in_cells = {c.suite for c in result.cells}
    if not suites_in_cells <= set(fronts):
        computed = suite_points(result.cells)
        for s in suites_in_cells - set(fronts):
            fronts[s] = computed.get(s, [])
    return {s: {(p.model, p.variant): p for p in pts} for s, pts in fronts.items()}


def _pairs(cells: Sequence[CellResult], suite: str | None = None) -> list[tuple[str, str]]:
    return list(dict.fromkeys((c.model, c.variant) for c in cells if suite is None or c.suite == suite))


def _label(model: str, variant: str) -> str:
    return f"{model}:{variant}"


def _why_missing(cells: Sequence[CellResult], suite: str, model: str, variant: str) -> str:
    """Why a (model, variant) has no suite point: its failed or absent tasks."""
    tasks = list(dict.fromkeys(c.task for c in cells if c.suite == suite))
    mine = {c.task: c for c in cells if c.suite == suite and c.model == model and c.variant == variant}
    reasons = []
    for t in tasks:
        c = mine.get(t)
        if c is None:
            reasons.append(f"{t}: not run")
        elif c.status != "ok":
            reasons.append(f"{t}: {'failed' if c.status == 'failed' else c.status} "
                           f"({(c.error or 'no reason recorded').splitlines()[0][:160]})")
        elif c.accuracy is None or c.energy_j is None:
            reasons.append(f"{t}: no accuracy or energy recorded")
    return "; ".join(reasons) or "incomplete"


def _missing(gate: str, cells: Sequence[CellResult], suite: str, model: str, variant: str, what: str) -> str:
    return (f"{gate}: suite {suite}, {_label(model, variant)} has no suite point because a task did not finish "
            f"({_why_missing(cells, suite, model, variant)}), so {what} cannot be checked")


def _check_refs_exist(cells: Sequence[CellResult], gates: Gates) -> None:
    present = _pairs(cells)
    refs = ([gates.baseline] if gates.baseline else []) + list(gates.require_on_frontier)
    for ref in refs:
        if parse_ref(ref) not in present:
            known = ", ".join(_label(m, v) for m, v in present) or "none"
            raise FrugalError(f"gate names {ref!r}, which is not in this run (model:variant pairs in the run: "
                              f"{known}); add it to the run or fix the gate")


def _check_values(gates: Gates) -> None:
    if gates.max_accuracy_drop is not None:
        if gates.max_accuracy_drop < 0:
            raise FrugalError(f"max_accuracy_drop is in points and must be >= 0 (got {gates.max_accuracy_drop:g})")
        if not gates.baseline:
            raise FrugalError("max_accuracy_drop needs a baseline MODEL:VARIANT (--baseline)")
    if gates.min_accuracy is not None and not 0 <= gates.min_accuracy <= 1:
        raise FrugalError(f"min_accuracy is a fraction between 0 and 1 (got {gates.min_accuracy:g}; "
                          f"for {gates.min_accuracy:g} % write {gates.min_accuracy / 100:g})")
    if gates.max_energy_per_1k is not None and gates.max_energy_per_1k <= 0:
        raise FrugalError(f"max_energy_per_1k is in joules per 1,000 items and must be > 0 "
                          f"(got {gates.max_energy_per_1k:g})")


def check_gates(result: RunResult | Any, gates: Gates) -> list[str]:
    """Every gate failure as a sentence; [] when all pass. Raises FrugalError on a misconfigured gate."""
    _check_values(gates)
    cells = tuple(result.cells)
    _check_refs_exist(cells, gates)
    points = _points(result)
    failures: list[str] = []
    for suite in dict.fromkeys(c.suite for c in cells):
        pts = points.get(suite, {})
        pairs = _pairs(cells, suite)
        failures += _accuracy_drop(gates, cells, suite, pts, pairs)
        for model, variant in pairs:
            p = pts.get((model, variant))
            ref = _label(model, variant)
            if gates.min_accuracy is not None:
                if p is None:
                    failures.append(_missing("min_accuracy", cells, suite, model, variant, "its accuracy"))
                elif p.accuracy < gates.min_accuracy - EPS:
                    failures.append(f"min_accuracy: suite {suite}, {ref} accuracy {p.accuracy:.1%} is below the "
                                    f"minimum {gates.min_accuracy:.1%} (missed by "
                                    f"{(gates.min_accuracy - p.accuracy) * 100:.1f} pts)")
            if gates.max_energy_per_1k is not None:
                if p is None:
                    failures.append(_missing("max_energy_per_1k", cells, suite, model, variant, "its energy"))
                elif p.energy_j_per_1k > gates.max_energy_per_1k + EPS:
                    over = p.energy_j_per_1k - gates.max_energy_per_1k
                    failures.append(
                        f"max_energy_per_1k: suite {suite}, {ref} uses {p.energy_j_per_1k:,.4g} J per 1,000 items "
                        f"({'estimate' if p.is_estimate else 'measured'}: {p.energy_method}), above the maximum "
                        f"{gates.max_energy_per_1k:,.4g} J (missed by {over:,.4g} J, "
                        f"{over / gates.max_energy_per_1k:.0%})")
        for ref in gates.require_on_frontier:
            model, variant = parse_ref(ref)
            if (model, variant) not in pairs:
                failures.append(f"require_on_frontier: suite {suite} has no cells for {ref}")
                continue
            p = pts.get((model, variant))
            if p is None:
                failures.append(_missing("require_on_frontier", cells, suite, model, variant, "its frontier place"))
            elif not p.on_frontier:
                failures.append(_off_frontier(suite, p, list(pts.values())))
    return failures


def _accuracy_drop(gates: Gates, cells: Sequence[CellResult], suite: str, pts: dict[tuple[str, str], SuitePoint],
                   pairs: list[tuple[str, str]]) -> list[str]:
    if gates.max_accuracy_drop is None or not gates.baseline:
        return []
    bm, bv = parse_ref(gates.baseline)
    gate = "max_accuracy_drop"
    if (bm, bv) not in pairs:
        return [f"{gate}: suite {suite} has no cells for the baseline {gates.baseline}"]
    base = pts.get((bm, bv))
    if base is None:
        return [_missing(gate, cells, suite, bm, bv, "the accuracy drop against this baseline")]
    out = []
    for model, variant in pairs:
        if (model, variant) == (bm, bv):
            continue
        p = pts.get((model, variant))
        if p is None:
            out.append(_missing(gate, cells, suite, model, variant, "its accuracy drop"))
            continue
        drop = (base.accuracy - p.accuracy) * 100
        if drop > gates.max_accuracy_drop + EPS:
            out.append(f"{gate}: suite {suite}, {_label(model, variant)} accuracy {p.accuracy:.1%} is {drop:.1f} pts "
                       f"below the baseline {gates.baseline} ({base.accuracy:.1%}); allowed "
                       f"{gates.max_accuracy_drop:g} pts (missed by {drop - gates.max_accuracy_drop:.1f} pts)")
    return out


def _off_frontier(suite: str, p: SuitePoint, points: list[SuitePoint]) -> str:
    doms = [q for q in points if q.on_frontier and q.energy_j_per_1k <= p.energy_j_per_1k
            and q.accuracy >= p.accuracy]
    by = ", ".join(f"{_label(q.model, q.variant)} ({q.accuracy:.1%}, {q.energy_j_per_1k:,.4g} J/1k)" for q in doms)
    best = max(doms, key=lambda q: q.accuracy, default=None)
    gap = f"; it is {(best.accuracy - p.accuracy) * 100:.1f} pts less accurate" if best else ""
    cheaper = min(doms, key=lambda q: q.energy_j_per_1k, default=None)
    ratio = (f" and uses {p.energy_j_per_1k / cheaper.energy_j_per_1k:.2g}x the energy of the cheapest"
             if cheaper and cheaper.energy_j_per_1k > 0 else "")
    ind = " (statistically indistinguishable from the frontier)" if p.indistinguishable else ""
    return (f"require_on_frontier: suite {suite}, {_label(p.model, p.variant)} ({p.accuracy:.1%}, "
            f"{p.energy_j_per_1k:,.4g} J/1k) is not on the Pareto frontier{ind}; dominated by {by or '?'}{gap}{ratio}")


__all__ = ["check_gates", "parse_ref"]
