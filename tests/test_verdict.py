"""What a reader is told: below-chance cells marked, grades that never reward guessing, badges that name
their cell, and a recommendation that cannot be misread (pure functions on hand-made records)."""

from __future__ import annotations

from evaluator.pareto import gradable, mark_frontier, recommend, suite_points
from evaluator.records import CellResult, SuitePoint
from evaluator.report.badge import point_badge_svg
from evaluator.report.plots import hover_text
from evaluator.stats import wilson_interval


def _cell(model: str, variant: str, correct: int, n: int, energy: float, chance: float = 0.25) -> CellResult:
    lo, hi = wilson_interval(correct, n)
    return CellResult("s", "t", model, variant, "ok", n_items=n, n_correct=correct, accuracy=correct / n,
                      accuracy_ci_low=lo, accuracy_ci_high=hi, energy_j=energy, energy_method="estimate",
                      chance_accuracy=chance, above_chance=lo > chance)


def _pt(model: str, acc: float, lo: float, hi: float, energy: float, above: bool | None = True) -> SuitePoint:
    return SuitePoint("s", model, "fp32", acc, lo, hi, energy, "estimate", True, 40, 1, chance_accuracy=0.25,
                      above_chance=above)


def test_a_cell_below_chance_is_marked_and_gets_no_grade_however_cheap():
    cells = [_cell("guesser", "fp32", 2, 20, 0.1), _cell("small", "fp32", 14, 20, 1.0),
             _cell("big", "fp32", 17, 20, 10.0)]
    assert [c.above_chance for c in cells] == [False, True, True]
    pts = {p.model: p for p in suite_points(cells)["s"]}
    assert pts["guesser"].above_chance is False and pts["guesser"].grade == ""
    assert pts["small"].grade == "A" and pts["big"].grade == "E"  # graded among the points that clear chance
    assert "NOT above chance" in hover_text(pts["guesser"])
    assert "not above chance" in point_badge_svg(pts["guesser"])


def test_an_accuracy_floor_withholds_grades():
    pts = [_pt("a", 0.5, 0.4, 0.6, 1.0), _pt("b", 0.9, 0.8, 0.95, 5.0)]
    assert not gradable(pts[0], accuracy_floor=0.6) and gradable(pts[1], accuracy_floor=0.6)
    marked = mark_frontier(pts, accuracy_floor=0.6)
    assert [p.grade for p in marked] == ["", "A"]


def test_a_badge_names_the_cell_it_grades():
    p = mark_frontier([_pt("smollm2-135m", 0.62, 0.5, 0.7, 1234.0), _pt("x", 0.7, 0.6, 0.8, 9000.0)])[0]
    svg = point_badge_svg(p)
    for part in ("smollm2-135m fp32 | s", "energy A", "62% acc", "1,234 J/1k items", "est."):
        assert part in svg, part
    assert "estimate: estimate" not in svg and "estimate: estimate" not in hover_text(p)


def test_the_best_chosen_over_cheaper_overlapping_points_says_the_gap_is_not_supported():
    best = _pt("big", 0.45, 0.23, 0.67, 9000.0)
    cheap = _pt("small", 0.30, 0.10, 0.50, 2000.0)
    rec = recommend([best, cheap], 2.0)
    assert rec.choice is best and rec.runner_up is cheap and rec.overlaps is True
    assert "both the most accurate" not in rec.text and "lowest-energy" not in rec.text
    assert "every point that uses less energy is more than 2 points less accurate" in rec.text
    assert "small fp32, has 30.0%" in rec.text and "4.5x less energy" in rec.text
    assert "not statistically supported" in rec.text


def test_a_clear_gap_is_not_called_unsupported():
    best = _pt("big", 0.90, 0.85, 0.94, 9000.0)
    cheap = _pt("small", 0.40, 0.30, 0.50, 2000.0)
    rec = recommend([best, cheap], 2.0)
    assert rec.overlaps is False and "not statistically supported" not in rec.text


def test_a_cheaper_choice_within_tolerance_says_whether_it_is_distinguishable():
    best = _pt("big", 0.80, 0.70, 0.88, 9000.0)
    near = _pt("small", 0.79, 0.69, 0.87, 1000.0)
    rec = recommend([best, near], 2.0)
    assert rec.choice is near and rec.overlaps is True
    assert rec.text.startswith("small fp32 is within 1.0 points of the best (big fp32, 80.0%) and uses 9.0x less")
    assert "statistically indistinguishable" in rec.text


def test_a_below_chance_point_is_never_recommended_while_another_clears_chance():
    guess = _pt("guess", 0.30, 0.10, 0.50, 1.0, above=False)
    real = _pt("real", 0.28, 0.27, 0.29, 100.0)
    rec = recommend([guess, real], 5.0)
    assert rec.choice is real
    all_guess = recommend([guess], 5.0)
    assert all_guess.choice is guess and "no point is better than chance" in all_guess.text


def test_a_cheaper_point_below_chance_is_named_not_hidden_behind_least_energy():
    real = _pt("qwen", 0.9, 0.8, 0.95, 3000.0)
    guess = _pt("smol", 0.1, 0.0, 0.3, 1000.0, above=False)
    rec = recommend([real, guess], 2.0)
    assert rec.choice is real and "uses the least energy" not in rec.text
    assert "of the points better than chance" in rec.text and "smol fp32" in rec.text


def test_a_task_without_guessing_has_no_chance_line():
    lo, hi = wilson_interval(1, 10)
    c = CellResult("s", "t", "m", "v", "ok", n_items=10, n_correct=1, accuracy=0.1, accuracy_ci_low=lo,
                   accuracy_ci_high=hi, energy_j=1.0, energy_method="estimate", chance_accuracy=0.0,
                   above_chance=None)
    (p,) = suite_points([c])["s"]
    assert p.above_chance is None and p.grade == "A" and gradable(p)


def _gap(diff: float, se: float, n: int, discordant: float):
    from evaluator.stats import PairedGap
    return PairedGap(diff, se, n, discordant)


def test_the_paired_sentence_is_exact_in_each_of_its_four_cases():
    from evaluator.pareto import _paired_sentence
    a, b = _pt("a", 0.5, 0.4, 0.6, 1.0), _pt("b", 0.6, 0.5, 0.7, 2.0)
    head = "A paired test on the 200 items both saw puts the difference at 10.0 points (p = "
    assert _paired_sentence(a, b, _gap(0.1, 0.04, 200, 0.3)) == head + "0.012): the two are distinguishable at 95%."
    assert _paired_sentence(a, b, _gap(0.1, 0.06, 200, 0.3)) == head + (
        "0.096): the two are not distinguishable at 95%; about 234 paired items (34 more) would likely settle "
        "it, if the difference holds.")
    assert _paired_sentence(a, b, _gap(0.1, 0.06, 300, 0.3)).endswith(
        "the two are not distinguishable at 95%, though this many items would usually detect a difference of "
        "this size: it may be smaller than it looks.")
    assert _paired_sentence(a, b, _gap(0.0, 0.06, 200, 0.3)) == (
        "A paired test on the 200 items both saw puts the difference at 0.0 points (p = 1): the two are not "
        "distinguishable, and they score alike, so more items are unlikely to tell them apart.")


def test_the_recommendation_names_the_only_point_the_cheapest_best_and_cheaper_guessers_exactly():
    only = recommend([_pt("solo", 0.7, 0.6, 0.8, 5.0)], 2.0)
    assert only.text == "solo fp32 is the only point."
    cheapest = recommend([_pt("big", 0.9, 0.8, 0.95, 1.0), _pt("small", 0.6, 0.5, 0.7, 2.0)], 2.0)
    assert cheapest.text == "big fp32 is the most accurate (90.0%) and uses the least energy (estimated energy)."
    guessers = [_pt(f"g{i}", 0.2, 0.1, 0.3, 0.5 + i, above=False) for i in range(4)]
    rec = recommend([_pt("real", 0.8, 0.7, 0.9, 10.0), *guessers], 2.0)
    assert rec.text == ("real fp32 is the most accurate (80.0%) of the points better than chance, and the "
                        "cheapest of them (estimated energy); 4 cheaper point(s) (g0 fp32, g1 fp32, g2 fp32) are "
                        "not better than chance at 95%.")
