"""Pure core: frontier (ties, equal energies), suite aggregation, recommendation, grades, statistics."""

from __future__ import annotations

import math
from dataclasses import replace

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


# ------------------------------------------------------------------ edges (each kills a mutant; docs/testing.md)
def _pt(model, acc, energy, lo=None, hi=None, est=True, n=100, suite="s"):
    from evaluator.records import SuitePoint

    return SuitePoint(suite, model, "fp32", acc, acc if lo is None else lo, acc if hi is None else hi, energy,
                      "estimate" if est else "nvml", est, n, 1)


def test_frontier_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError):
        frontier_indices([1.0, 2.0], [0.5])


def test_energy_grades_off_origin_and_without_energy():
    assert energy_grades([10, 100, 1000]) == ["A", "C", "E"]  # log scale from the lowest, not from 1
    assert energy_grades([0, 10, None, 1000, -5]) == ["", "A", "", "E", ""]  # no energy, no grade; never stops
    assert energy_grades([0, None]) == ["", ""]
    assert energy_grades([]) == []


def test_mark_frontier_sets_grades_and_compares_only_with_dominators():
    from evaluator.pareto import mark_frontier

    cheap = _pt("cheap", 0.80, 10.0, 0.75, 0.85)
    costly = _pt("costly", 0.99, 1000.0, 0.985, 0.995)  # on the frontier but does not dominate p
    p = _pt("p", 0.79, 100.0, 0.74, 0.84)
    out = {q.model: q for q in mark_frontier([cheap, costly, p])}
    assert [out[m].grade for m in ("cheap", "p", "costly")] == ["A", "C", "E"]
    assert out["cheap"].on_frontier and out["costly"].on_frontier and not out["p"].on_frontier
    assert out["p"].indistinguishable  # overlaps cheap, its only dominator (costly's interval is far above)
    assert not out["cheap"].indistinguishable  # a frontier point is never "indistinguishable"
    assert mark_frontier([]) == []


def test_touching_intervals_are_indistinguishable():
    from evaluator.pareto import mark_frontier

    top = _pt("top", 1.0, 10.0, 1.0, 1.0)
    p = _pt("p", 0.99, 20.0, 0.9, 1.0)
    assert mark_frontier([top, p])[1].indistinguishable  # 1.0 >= 1.0


def test_recommend_edges():
    one = recommend([_pt("only", 0.8, 10.0)])
    assert one.choice is one.best and one.suite == "s" and "only fp32" in one.text and "XX" not in one.text
    assert recommend([]) is None
    # same accuracy: the cheaper is the best and the choice
    same = recommend([_pt("pricey", 0.8, 100.0, est=False), _pt("cheap", 0.8, 10.0, est=False)])
    assert same.best.model == same.choice.model == "cheap"
    assert same.text.startswith("cheap fp32 is") and "most accurate (80.0%)" in same.text
    assert "estimated" not in same.text
    # same energy within the tolerance: the more accurate is chosen
    tie = recommend([_pt("a", 0.80, 10.0), _pt("b", 0.79, 10.0), _pt("c", 0.70, 100.0)])
    assert tie.choice.model == "a" and "(estimated energy)" in tie.text


def test_recommend_tolerance_boundary_and_figures():
    pts = [_pt("best", 0.75, 100.0, est=False), _pt("cand", 0.50, 0.5, est=False)]
    rec = recommend(pts, tolerance_pts=25.0)  # exactly 25 points below: within
    assert rec.choice.model == "cand" and rec.accuracy_drop_pts == 25.0 and rec.tolerance_pts == 25.0
    assert rec.energy_ratio == 200.0 and rec.suite == "s"
    assert rec.text.startswith("cand fp32 is within 25.0 points of the best (best fp32, 75.0%) and uses 200.0x less "
                               "energy")
    assert recommend(pts, tolerance_pts=25.0 - 1e-9).choice.model == "cand"  # 1e-9 absorbs float noise
    assert recommend(pts, tolerance_pts=24.99).choice.model == "best"
    assert recommend([_pt("best", 0.80, 100.0), _pt("cand", 0.775, 1.0)]).choice.model == "best"  # default 2 pts
    assert recommend([_pt("best", 0.80, 100.0), _pt("cand", 0.785, 1.0)]).choice.model == "cand"
    free = recommend([_pt("best", 0.8, 100.0), _pt("free", 0.8, 0.0)])
    assert free.energy_ratio == float("inf") and free.choice.model == "free"


@pytest.mark.parametrize(("est_best", "est_choice", "said"), [(True, False, True), (False, True, True),
                                                              (False, False, False), (True, True, True)])
def test_recommend_says_when_energy_is_estimated(est_best, est_choice, said):
    rec = recommend([_pt("best", 0.80, 100.0, est=est_best), _pt("cand", 0.79, 10.0, est=est_choice)])
    assert (" (estimated energy)" in rec.text) is said and "XX" not in rec.text and "ESTIMATED" not in rec.text


def test_suite_points_keep_going_after_an_incomplete_point():
    cells = [_cell("s", "a", "a-first", "fp32", 0.9, 10.0), _cell("s", "b", "a-first", "fp32", 0.0, 0, status="failed"),
             _cell("s", "a", "b-second", "fp32", 0.8, 10.0), _cell("s", "b", "b-second", "fp32", 0.7, 10.0)]
    pts = suite_points(cells)["s"]
    assert [(p.suite, p.model) for p in pts] == [("s", "b-second")]


def test_suite_points_methods_clamp_and_mean_valued_scores():
    cells = [_cell("s", "a", "m", "fp32", 0.95, 10.0, n=10), _cell("s", "b", "m", "fp32", 0.95, 10.0, n=10)]
    cells[1] = replace(cells[1], energy_method="rapl", is_estimate=False)
    (p,) = suite_points(cells)["s"]
    assert p.energy_method == "estimate+rapl" and p.is_estimate and p.accuracy_ci_high == 1.0
    # a mean-valued score (token F1) on one item: its variance counts with n = 1
    f1 = [_cell("s", "a", "m", "fp32", 0.5, 10.0, n=1), _cell("s", "b", "m", "fp32", 0.5, 10.0, n=1000)]
    (q,) = suite_points(f1)["s"]
    half = 1.959964 * math.sqrt((0.25 / 1 + 0.25 / 1000) / 4)
    assert (q.accuracy_ci_low, q.accuracy_ci_high) == pytest.approx((0.5 - half, 0.5 + half))


def test_suite_points_without_items_have_no_energy_per_1k():
    (p,) = suite_points([_cell("s", "a", "m", "fp32", 0.5, 10.0, n=0)])["s"]
    assert math.isnan(p.energy_j_per_1k) and p.n_items == 0


def test_mark_cells_sets_on_frontier_per_cell():
    from evaluator.pareto import mark_cells

    cells = [_cell("s", t, m, "fp32", acc, e) for t in ("a", "b") for m, acc, e in (("big", 0.9, 100.0),
                                                                                     ("worse", 0.5, 200.0))]
    marked = mark_cells(cells, suite_points(cells))
    assert [(c.task, c.model, c.on_frontier) for c in marked] == [
        ("a", "big", True), ("a", "worse", False), ("b", "big", True), ("b", "worse", False)]
    assert [replace(c, on_frontier=False) for c in marked] == [replace(c, on_frontier=False) for c in cells]
    assert mark_cells(cells, {}) == tuple(replace(c, on_frontier=False) for c in cells)


def test_points_not_better_than_chance_get_no_grade_and_are_not_recommended():
    from evaluator.pareto import mark_frontier

    guess = replace(_pt("guess", 0.9, 1.0), above_chance=False)
    pts = mark_frontier([guess, _pt("a", 0.8, 10.0), _pt("b", 0.7, 1000.0)])
    assert [p.grade for p in pts] == ["", "A", "E"]  # graded among the points above chance only
    assert [p.grade for p in mark_frontier([_pt("a", 0.8, 10.0), _pt("b", 0.7, 1000.0)], accuracy_floor=0.75)] == [
        "A", ""]
    assert [p.grade for p in mark_frontier([_pt("a", 0.75, 10.0)], accuracy_floor=0.75)] == ["A"]  # at the floor
    rec = recommend([guess, _pt("a", 0.8, 10.0)])
    assert rec.best.model == rec.choice.model == "a" and "Warning" not in rec.text
    only_guesses = recommend([guess, replace(_pt("g2", 0.895, 0.5), above_chance=False)])
    assert only_guesses.choice.model == "g2" and only_guesses.text.endswith(
        " Warning: no point is better than chance at 95% on this suite.")
    assert only_guesses.text.startswith("g2 fp32 is within 0.5 points of the best")  # the warning is added


def test_recommendation_names_its_runner_up_and_whether_intervals_overlap():
    best = _pt("best", 0.80, 100.0, 0.75, 0.85)
    near = _pt("near", 0.79, 10.0, 0.74, 0.84)
    far = _pt("far", 0.60, 5.0, 0.55, 0.65)
    rec = recommend([best, near, far])
    assert (rec.choice.model, rec.runner_up.model, rec.overlaps) == ("near", "best", True)
    apart = recommend([replace(best, accuracy_ci_low=0.7995, accuracy_ci_high=0.8005),
                   replace(near, accuracy_ci_low=0.7895, accuracy_ci_high=0.7905)])
    assert (apart.choice.model, apart.overlaps) == ("near", False)
    kept = recommend([best, far, _pt("mid", 0.70, 50.0, 0.66, 0.74)])  # every cheaper point is > 2 pts worse
    assert (kept.choice.model, kept.runner_up.model, kept.overlaps) == ("best", "mid", False)
    close = recommend([best, _pt("mid", 0.77, 50.0, 0.70, 0.84)])
    assert (close.choice.model, close.runner_up.model, close.overlaps) == ("best", "mid", True)
    alone = recommend([best, _pt("pricey", 0.70, 200.0)])
    assert (alone.choice.model, alone.runner_up, alone.overlaps) == ("best", None, None)


def test_suite_chance_is_the_mean_of_its_tasks_and_above_chance_is_strict():
    cells = [replace(_cell("s", "a", "m", "fp32", 0.9, 10.0), chance_accuracy=0.25),
             replace(_cell("s", "b", "m", "fp32", 0.7, 10.0), chance_accuracy=0.5)]
    (p,) = suite_points(cells)["s"]
    assert p.chance_accuracy == pytest.approx(0.375) and p.above_chance is True
    (q,) = suite_points([cells[0], replace(cells[1], chance_accuracy=None)])["s"]
    assert (q.chance_accuracy, q.above_chance) == (None, None)  # one task without a chance level: unknown
    at = [replace(c, chance_accuracy=p.accuracy_ci_low) for c in cells]  # the lower bound exactly at chance
    (r,) = suite_points(at)["s"]
    assert r.chance_accuracy == pytest.approx(p.accuracy_ci_low) and r.above_chance is False


def test_recommendation_sentences_say_how_sure_they_are():
    best = _pt("best", 0.80, 100.0, 0.75, 0.85)
    near = _pt("near", 0.79, 10.0, 0.74, 0.84)
    assert recommend([best, near]).text.endswith(
        " The two are statistically indistinguishable on these items (their 95% intervals overlap).")
    apart = recommend([replace(best, accuracy_ci_low=0.7995, accuracy_ci_high=0.8005),
                       replace(near, accuracy_ci_low=0.7895, accuracy_ci_high=0.7905)])
    assert apart.text.endswith(" The best is more accurate beyond chance variation (the 95% intervals do not "
                               "overlap), by less than the tolerance.")
    close = recommend([best, _pt("mid", 0.77, 0.5, 0.70, 0.84), _pt("same-acc", 0.77, 1.0, 0.70, 0.84)])
    assert close.runner_up.model == "mid"  # equal accuracy: the cheaper is the runner-up
    assert "the closest, mid fp32, has 77.0% (95% CI 70%-84%) and uses 200.0x less energy (estimated energy)." \
        in close.text
    assert close.text.endswith(" Their intervals overlap, so on these items the gap is not statistically "
                               "supported: more items would tell whether the cheaper point is as good.")
    free = recommend([best, _pt("free", 0.70, 0.0, 0.60, 0.74)])
    assert "uses infx less energy" in free.text and not free.overlaps
    assert "Warning" not in recommend([best]).text


@pytest.mark.parametrize(("a", "b", "overlap"), [((0.5, 0.6), (0.6, 0.7), True), ((0.6, 0.7), (0.5, 0.6), True),
                                                ((0.5, 0.6), (0.61, 0.7), False), ((0.61, 0.7), (0.5, 0.6), False)])
def test_interval_overlap_includes_touching_intervals(a, b, overlap):
    from evaluator.pareto import _overlap

    assert _overlap(_pt("a", sum(a) / 2, 1.0, *a), _pt("b", sum(b) / 2, 2.0, *b)) is overlap
