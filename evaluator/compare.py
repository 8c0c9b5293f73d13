"""Compare two runs cell by cell: a paired test on accuracy, interval overlap on energy.

Cells are matched by (suite, task, model, variant). Accuracy: when both runs' per-item predictions
are known (from a store, or from a results.json, which carries them), an exact McNemar test on the
items both scored (paired); otherwise a two-proportion z-test on the counts (unpaired, weaker, and
said so). Energy per 1,000 items is compared with both runs' 95 % intervals. A regression is an
accuracy drop with p < 0.05, an energy rise of more than 5 % whose intervals do not overlap (both
runs need at least two repeats for an interval), or a cell that was ok in A and failed in B or is
missing from B.

>>> from evaluator.records import CellResult
>>> a = CellResult("s", "t", "m", "fp32", "ok", n_items=200, n_correct=160, accuracy=0.8)
>>> b = CellResult("s", "t", "m", "fp32", "ok", n_items=200, n_correct=120, accuracy=0.6)
>>> d = diff_cells(a, b)
>>> d.test, d.p_value < 0.05, d.regression
('two-proportion z (unpaired)', True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.records import CellResult, ItemRecord
from evaluator.stats import mcnemar
from evaluator.units import cell_label, fmt_joules

if TYPE_CHECKING:
    from evaluator.records import RunResult
    from evaluator.store import Store

ALPHA = 0.05
ENERGY_RISE = 0.05  # a rise must exceed 5 % (and the intervals must not overlap)
Key = tuple[str, str, str, str]


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when undefined).

    >>> round(two_proportion_p(80, 100, 60, 100), 3)
    0.002
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def _per_1k(c: CellResult, value: float | None) -> float | None:
    if value is None or not c.n_items:
        return None
    return value / c.n_items * 1000


@dataclass(frozen=True)
class CellDiff:
    """One matched cell: accuracy change with its test, energy change with both intervals, the verdict."""

    suite: str
    task: str
    model: str
    variant: str
    status_a: str
    status_b: str
    accuracy_a: float | None = None
    accuracy_b: float | None = None
    n_a: int = 0
    n_b: int = 0
    accuracy_change_pts: float | None = None
    test: str = "n/a"  # "mcnemar (paired)" | "two-proportion z (unpaired)" | "n/a"
    p_value: float | None = None
    n_paired: int = 0
    a_only_correct: int | None = None
    b_only_correct: int | None = None
    energy_j_per_1k_a: float | None = None
    energy_j_per_1k_b: float | None = None
    energy_ci_a: tuple[float, float] | None = None  # J per 1,000 items
    energy_ci_b: tuple[float, float] | None = None
    energy_change: float | None = None  # fraction: +0.10 = 10 % more energy in B
    intervals_overlap: bool | None = None  # None: an interval is missing (one repeat)
    energy_methods: tuple[str, str] = ("", "")
    notes: tuple[str, ...] = ()
    regression: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def key(self) -> Key:
        """(suite, task, model, variant)."""
        return (self.suite, self.task, self.model, self.variant)


def _why_not(a: CellResult, b: CellResult) -> str:
    """'failed' or 'not applicable', for the side that is not ok."""
    bad = a if a.status != "ok" else b
    return "failed" if bad.status == "failed" else "not applicable"


def _interval(c: CellResult) -> tuple[float, float] | None:
    lo, hi = _per_1k(c, c.energy_ci_low), _per_1k(c, c.energy_ci_high)
    if lo is None or hi is None or c.repeats < 2 or hi <= lo:
        return None
    return (lo, hi)


def diff_cells(a: CellResult, b: CellResult, items_a: list[ItemRecord] | None = None,
               items_b: list[ItemRecord] | None = None) -> CellDiff:
    """Compare one matched cell; per-item records (both) make the accuracy test paired."""
    base = {"suite": a.suite, "task": a.task, "model": a.model, "variant": a.variant, "status_a": a.status,
            "status_b": b.status}
    if a.status != "ok" or b.status != "ok":
        reasons: tuple[str, ...] = ()
        if a.status == "ok":
            reasons = (f"failed in B: {(b.error or 'no reason recorded').splitlines()[0][:200]}",)
        return CellDiff(**base, regression=bool(reasons), reasons=reasons,
                        notes=(f"not compared: {'A' if a.status != 'ok' else 'B'} {_why_not(a, b)}",))
    notes: list[str] = []
    acc_a, acc_b = a.accuracy, b.accuracy
    test, p, n_paired, a_only, b_only = "n/a", None, 0, None, None
    if items_a and items_b:
        gold_a = {r.item_id: r for r in items_a}
        gold_b = {r.item_id: r for r in items_b}
        common = [i for i in gold_a if i in gold_b]
        if common:
            ca = [gold_a[i].correct for i in common]
            cb = [gold_b[i].correct for i in common]
            res = mcnemar(ca, cb)
            test, p, n_paired = "mcnemar (paired)", float(res["p_value"]), len(common)
            a_only, b_only = int(res["a_only"]), int(res["b_only"])
            if len(common) < max(len(gold_a), len(gold_b)):
                notes.append(f"paired on the {len(common)} items both runs scored")
            acc_a, acc_b = sum(ca) / len(ca), sum(cb) / len(cb)
    if test == "n/a" and a.n_items and b.n_items:
        test, p = "two-proportion z (unpaired)", two_proportion_p(a.n_correct, a.n_items, b.n_correct, b.n_items)
        notes.append("unpaired: per-item predictions not available for both runs")
    change = None if acc_a is None or acc_b is None else (acc_b - acc_a) * 100
    e_a, e_b = a.energy_j_per_1k, b.energy_j_per_1k
    ci_a, ci_b = _interval(a), _interval(b)
    e_change = (e_b / e_a - 1) if e_a and e_b is not None and e_a > 0 else None
    overlap = None if ci_a is None or ci_b is None else (ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1])
    if ci_a is None or ci_b is None:
        notes.append("energy not tested: an interval needs at least 2 repeats in both runs")
    if a.energy_method != b.energy_method:
        notes.append(f"energy methods differ ({a.energy_method} vs {b.energy_method}): not comparable")
    reasons_l = []
    if change is not None and change < 0 and p is not None and p < ALPHA:
        reasons_l.append(f"accuracy {change:+.1f} pts (p = {p:.3g}, {test})")
    if (e_change is not None and e_change > ENERGY_RISE and overlap is False
            and a.energy_method == b.energy_method):
        reasons_l.append(f"energy {e_change:+.0%} with non-overlapping 95% intervals")
    return CellDiff(**base, accuracy_a=acc_a, accuracy_b=acc_b, n_a=a.n_items, n_b=b.n_items,
                    accuracy_change_pts=change, test=test, p_value=p, n_paired=n_paired, a_only_correct=a_only,
                    b_only_correct=b_only, energy_j_per_1k_a=e_a, energy_j_per_1k_b=e_b, energy_ci_a=ci_a,
                    energy_ci_b=ci_b, energy_change=e_change, intervals_overlap=overlap,
                    energy_methods=(a.energy_method, b.energy_method), notes=tuple(notes),
                    regression=bool(reasons_l), reasons=tuple(reasons_l))


@dataclass(frozen=True)
class Comparison:
    """The result of comparing run A with run B."""

    run_a: str
    run_b: str
    diffs: list[CellDiff]
    only_a: list[Key] = field(default_factory=list)
    only_b: list[Key] = field(default_factory=list)

    @property
    def regressions(self) -> list[CellDiff]:
        """Cells that got worse (see the module docstring for the rule)."""
        return [d for d in self.diffs if d.regression]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"run_a": self.run_a, "run_b": self.run_b, "alpha": ALPHA, "energy_rise_threshold": ENERGY_RISE,
                "cells": [asdict(d) for d in self.diffs], "regressions": [list(d.key) for d in self.regressions],
                "only_a": [list(k) for k in self.only_a], "only_b": [list(k) for k in self.only_b]}

    def render(self) -> str:
        """A plain-text table, one row per matched cell, then the cells only in A or only in B."""
        head = ("cell", "accuracy A -> B", "change", "test", "p", "J/1k A -> B", "change", "95% CIs", "verdict")
        rows = [head]
        for d in self.diffs:
            rows.append(_render_row(d))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        matched = sum(d.status_b != "missing" for d in self.diffs)
        lines = [f"Comparing A = {self.run_a} with B = {self.run_b}: {matched} matched cell(s), "
                 f"{len(self.regressions)} regression(s)"]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [(d, n) for d in self.diffs for n in d.notes]
        if notes:
            lines.append("")
            lines.append("Notes:")
            seen: set[str] = set()
            for d, n in notes:
                text = n if n.startswith("unpaired") or n.startswith("energy not tested") else f"{_cell(d)}: {n}"
                if text not in seen:
                    seen.add(text)
                    lines.append(f"  {text}")
        for title, keys in (("Only in A", self.only_a), ("Only in B", self.only_b)):
            if keys:
                lines.append("")
                lines.append(f"{title} ({len(keys)}):")
                lines += [f"  {cell_label(s, t, m, v)}" for s, t, m, v in keys]
        if self.regressions:
            lines.append("")
            lines.append("Regressions:")
            lines += [f"  {_cell(d)}: {'; '.join(d.reasons)}" for d in self.regressions]
        return "\n".join(lines)


def _cell(d: CellDiff) -> str:
    return cell_label(d.suite, d.task, d.model, d.variant)


def _render_row(d: CellDiff) -> tuple[str, ...]:
    if d.status_a != "ok" or d.status_b != "ok":
        verdict = "REGRESSION" if d.regression else "-"
        return (_cell(d), f"{d.status_a} -> {d.status_b}", "", "", "", "", "", "", verdict)
    acc = f"{d.accuracy_a:.1%} -> {d.accuracy_b:.1%}" if d.accuracy_a is not None and d.accuracy_b is not None else "-"
    chg = f"{d.accuracy_change_pts:+.1f} pts" if d.accuracy_change_pts is not None else "-"
    test = {"mcnemar (paired)": "McNemar", "two-proportion z (unpaired)": "z unpaired"}.get(d.test, d.test)
    p = f"{d.p_value:.3g}" if d.p_value is not None else "-"
    energy = f"{fmt_joules(d.energy_j_per_1k_a)} -> {fmt_joules(d.energy_j_per_1k_b)}"
    e_chg = f"{d.energy_change:+.0%}" if d.energy_change is not None else "-"
    cis = {None: "n/a (1 repeat)", True: "overlap", False: "disjoint"}[d.intervals_overlap]
    verdict = "REGRESSION" if d.regression else ("better" if _improved(d) else "same")
    return (_cell(d), acc, chg, test, p, energy, e_chg, cis, verdict)


def _improved(d: CellDiff) -> bool:
    # p_value is None when untested; `p or 1` would also turn an underflowed p of 0.0 into 1
    acc_up = (d.accuracy_change_pts is not None and d.accuracy_change_pts > 0 and d.p_value is not None
              and d.p_value < ALPHA)
    e_down = d.energy_change is not None and d.energy_change < -ENERGY_RISE and d.intervals_overlap is False
    return acc_up or e_down


def _store_for(result: RunResult, store: str | None) -> list[Store]:
    """Stores that may hold the run's per-item predictions: its own SQLite file, then ``store``."""
    from evaluator.store import Store, is_store_file

    out, seen = [], set()
    for path in (result.store_path, store):
        if not is_store_file(path):  # a results.json (its items, if any, are in result.items), or nothing
            continue
        p = Path(path)
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        out.append(Store(p))
    return out


def _items(result: RunResult, stores: list[Store], c: CellResult) -> list[ItemRecord]:
    if result.items:
        found = result.items.get((c.suite, c.task, c.model, c.variant))
        if found:
            return found
    run_id = result.run_id
    for st in stores:
        try:
            items = st.items(run_id, c.suite, c.task, c.model, c.variant)
        except Exception:  # noqa: BLE001 - a store without this run simply has no items
            items = []
        if items:
            return items
    return []


def compare(a: RunResult, b: RunResult, store: str | None = None) -> Comparison:
    """Match cells of A and B by (suite, task, model, variant) and compare each."""
    cells_a = {(c.suite, c.task, c.model, c.variant): c for c in a.cells}
    cells_b = {(c.suite, c.task, c.model, c.variant): c for c in b.cells}
    stores_a, stores_b = _store_for(a, store), _store_for(b, store)
    diffs = []
    for key, ca in cells_a.items():
        cb = cells_b.get(key)
        if cb is None:
            if ca.status == "ok":  # a candidate that silently dropped out of B must not pass a CI gate
                diffs.append(CellDiff(*key, status_a="ok", status_b="missing", accuracy_a=ca.accuracy,
                                      n_a=ca.n_items, energy_j_per_1k_a=ca.energy_j_per_1k, regression=True,
                                      reasons=("ok in A, missing from B",), notes=("not compared: missing in B",)))
            continue
        items_a = _items(a, stores_a, ca) if ca.status == "ok" else []
        items_b = _items(b, stores_b, cb) if cb.status == "ok" and items_a else []
        diffs.append(diff_cells(ca, cb, items_a, items_b))
    return Comparison(a.run_id, b.run_id, diffs, [k for k in cells_a if k not in cells_b],
                      [k for k in cells_b if k not in cells_a])


__all__ = ["CellDiff", "Comparison", "compare", "diff_cells", "two_proportion_p"]
