"""Pure core: frontier (ties, equal energies), suite aggregation, recommendation, grades, statistics."""

from __future__ import annotations

import math

import pytest

from evaluator.pareto import energy_grades, frontier_indices, recommend, suite_points
from evaluator.records import CellResult
from evaluator.stats import mcnemar, mean_ci, wilson_interval


@pytest.mark.parametrize(("pts", "expected"), [
    ([(1, 0.5)], {0}),
    ([(1, 0.5), (2, 0.7), (3, 0.6)], {0, 1}),
    ([(1, 0.5), (1, 0.7)], {1}),                      # equal energy: the more accurate dominates
    ([(1, 0.7), (2, 0.7)], {0}),                      # equal accuracy: the cheaper dominates
    ([(2, 0.7), (2, 0.7)], {0, 1}),                   # identical points: neither strictly better
    ([(1, 0.9), (2, 0.5), (3, 0.1)], {0}),
    ([(3, 0.9), (2, 0.8), (1, 0.7)], {0, 1, 2}),       # a staircase
])
def test_frontier(pts, expected):
    assert frontier_indices([e for e, _ in pts], [a for _, a in pts]) == expected


def test_frontier_lower_is_better_metric():
    assert frontier_indices([1, 2], [0.3, 0.1], higher_is_better=False) == {0, 1}


def _cell(suite, task, model, variant, acc, energy, n=100, status="ok"):
    return CellResult(suite=suite, task=task, model=model, variant=variant, status=status, n_items=n,
                      accuracy=acc if status == "ok" else None, energy_j=energy if status == "ok" else None,
                      energy_method="estimate", is_estimate=True)


def test_suite_points_average_tasks_and_skip_incomplete():
    cells = [_cell("s", "a", "big", "fp32", 0.9, 100.0), _cell("s", "b", "big", "fp32", 0.7, 100.0),
             _cell("s", "a", "small", "fp32", 0.8, 10.0), _cell("s", "b", "small", "fp32", 0.0, 0, status="failed")]
    pts = suite_points(cells)["s"]
    assert [(p.model, round(p.accuracy, 3)) for p in pts] == [("big", 0.8)]
    assert pts[0].energy_j_per_1k == pytest.approx(200.0 / 200 * 1000)


def test_recommendation_names_saving_and_indistinguishable_points():
    cells = [_cell("s", "a", "big", "fp32", 0.90, 120.0, n=50), _cell("s", "a", "small", "bf16", 0.885, 10.0, n=50),
             _cell("s", "a", "mid", "fp32", 0.80, 50.0, n=50)]
    pts = suite_points(cells)["s"]
    rec = recommend(pts, tolerance_pts=2.0)
    assert (rec.choice.model, rec.best.model) == ("small", "big")
    assert rec.energy_ratio == pytest.approx(12.0)
    assert "small bf16 is within 1.5 points of the best" in rec.text and "12.0x less energy" in rec.text
    mid = next(p for p in pts if p.model == "mid")
    assert not mid.on_frontier and mid.indistinguishable  # n=50: intervals overlap the frontier
    assert recommend(pts, tolerance_pts=0.5).choice.model == "big"


def test_energy_grades_span_a_to_e():
    assert energy_grades([1, 10, 100, 1000, 10000]) == ["A", "B", "C", "D", "E"]
    assert energy_grades([5, 5]) == ["A", "A"]


def test_wilson_and_mean_ci_and_mcnemar():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.27 < hi < 0.31
    assert wilson_interval(6, 6)[1] == 1.0 and wilson_interval(0, 6)[0] == 0.0
    assert wilson_interval(5, 10)[0] == pytest.approx(1 - wilson_interval(5, 10)[1])
    m, lo, hi = mean_ci([10.0, 12.0, 11.0])
    assert m == 11.0 and lo < 11 < hi and hi - lo == pytest.approx(2 * 4.303 * 1 / math.sqrt(3), rel=1e-3)
    r = mcnemar([True] * 10 + [False] * 10, [True] * 10 + [True] * 10)
    assert r["b_only"] == 10 and r["a_only"] == 0 and r["p_value"] == pytest.approx(2 / 1024)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])
