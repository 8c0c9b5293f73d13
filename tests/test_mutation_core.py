"""The pure core at its edges: tests written to kill mutants that the older tests let through.

Each test pins a boundary a small change in the code would move: a gate "at the limit passes, just
past it fails", the suite interval computed by hand, McNemar's clamp to 1. bench/mutation.py runs the
mutation score over these with test_pareto_stats.py, test_gates.py and test_compare.py (docs/testing.md).
No model, no files: everything here runs in well under a second.
"""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import pytest

from evaluator.config import Gates
from evaluator.gates import check_gates
from evaluator.pareto import suite_points
from evaluator.records import CellResult
from evaluator.stats import mcnemar, mean_ci, t_critical_95, wilson_interval


def cell(model: str, variant: str, acc: float, j_per_1k: float, task: str = "t", suite: str = "s",
         n: int = 1000) -> CellResult:
    """An ok cell; n = 1000 items so that accuracies to 0.1 point are whole counts."""
    return CellResult(suite, task, model, variant, "ok", n_items=n, n_correct=round(acc * n), accuracy=acc,
                      energy_j=j_per_1k * n / 1000, energy_j_per_1k=j_per_1k, energy_method="estimate",
                      is_estimate=True)


def gates_on(cells: list[CellResult], **kw) -> list[str]:
    """check_gates on a bare result (frontiers recomputed from the cells)."""
    return check_gates(SimpleNamespace(cells=tuple(cells), frontiers={}), Gates(**kw))


# ------------------------------------------------------------------------------------------- gates
@pytest.mark.parametrize(("candidate", "limit", "fails"), [
    (0.780, 2.0, False),   # drop 2.0 pts (2.0000000000000018 in floats): at the limit passes
    (0.779, 2.0, True),    # 2.1 pts: just past the limit fails (a limit loosened by 0.5 pts would pass it)
    (0.779, 2.1, False),
    (0.790, 0.0, True),    # a zero limit allows no drop at all
    (0.800, 0.0, False),
    (0.810, 0.0, False),   # better than the baseline is never a drop
])
def test_max_accuracy_drop_at_and_just_past_the_limit(candidate, limit, fails):
    out = gates_on([cell("base", "fp32", 0.80, 100.0), cell("cand", "int8", candidate, 50.0)],
                   max_accuracy_drop=limit, baseline="base:fp32")
    assert bool(out) is fails, out
    if fails:
        drop = (0.80 - candidate) * 100
        assert out == [f"max_accuracy_drop: suite s, cand:int8 accuracy {candidate:.1%} is {drop:.1f} pts below "
                       f"the baseline base:fp32 (80.0%); allowed {limit:g} pts (missed by {drop - limit:.1f} pts)"]


def test_max_accuracy_drop_baseline_is_never_checked_against_itself():
    assert gates_on([cell("base", "fp32", 0.80, 100.0)], max_accuracy_drop=0.0, baseline="base:fp32") == []


@pytest.mark.parametrize(("acc", "minimum", "fails"), [
    (0.700, 0.70, False),  # at the limit passes
    (0.699, 0.70, True),   # 0.1 pt below fails (a minimum loosened by 2 pts would pass it)
    (0.680, 0.70, True),
    (0.701, 0.70, False),
    (1.000, 1.00, False),
    (0.000, 0.00, False),
])
def test_min_accuracy_at_and_just_past_the_limit(acc, minimum, fails):
    out = gates_on([cell("m", "fp32", acc, 10.0)], min_accuracy=minimum)
    assert bool(out) is fails, out
    if fails:
        assert out == [f"min_accuracy: suite s, m:fp32 accuracy {acc:.1%} is below the minimum {minimum:.1%} "
                       f"(missed by {(minimum - acc) * 100:.1f} pts)"]


@pytest.mark.parametrize(("energy", "fails"), [(500.0, False), (500.01, True), (499.99, False), (750.0, True)])
def test_max_energy_per_1k_at_and_just_past_the_limit(energy, fails):
    out = gates_on([cell("m", "fp32", 0.8, energy)], max_energy_per_1k=500.0)
    assert bool(out) is fails, out
    if fails:
        over = energy - 500.0
        assert out == [f"max_energy_per_1k: suite s, m:fp32 uses {energy:,.4g} J per 1,000 items (estimate: "
                       f"estimate), above the maximum 500 J (missed by {over:,.4g} J, {over / 500:.0%})"]


def test_require_on_frontier_tie_passes_and_a_hair_behind_fails():
    tie = [cell("a", "fp32", 0.80, 100.0), cell("b", "fp32", 0.80, 100.0)]
    assert gates_on(tie, require_on_frontier=("b:fp32",)) == []  # identical points: neither dominates
    behind = [cell("a", "fp32", 0.80, 100.0), cell("b", "fp32", 0.799, 100.0)]
    out = gates_on(behind, require_on_frontier=("b:fp32",))
    assert out == ["require_on_frontier: suite s, b:fp32 (79.9%, 100 J/1k) is not on the Pareto frontier "
                   "(statistically indistinguishable from the frontier); dominated by a:fp32 (80.0%, 100 J/1k); "
                   "it is 0.1 pts less accurate and uses 1x the energy of the cheapest"]
    costlier = [cell("a", "fp32", 0.80, 100.0), cell("b", "fp32", 0.80, 100.01)]
    assert len(gates_on(costlier, require_on_frontier=("b:fp32",))) == 1


def test_every_gate_is_checked_in_every_suite():
    cells = [cell("a", "fp32", 0.9, 10.0, suite="s1"), cell("a", "fp32", 0.5, 10.0, suite="s2")]
    assert gates_on(cells, min_accuracy=0.6) == [
        "min_accuracy: suite s2, a:fp32 accuracy 50.0% is below the minimum 60.0% (missed by 10.0 pts)"]


# ------------------------------------------------------------------------------------- suite interval
def test_suite_interval_divides_the_variance_by_k_squared():
    """Mean of k task accuracies: Var = sum(p(1-p)/n) / k^2, computed here by hand."""
    cells = [cell("m", "fp32", 0.8, 10.0, task="t1", n=100), cell("m", "fp32", 0.6, 10.0, task="t2", n=50)]
    (p,) = suite_points(cells)["s"]
    var = (0.8 * 0.2 / 100 + 0.6 * 0.4 / 50) / 2**2  # = 0.0016, sd 0.04
    half = 1.959964 * math.sqrt(var)
    assert p.accuracy == pytest.approx(0.7)
    assert (p.accuracy_ci_low, p.accuracy_ci_high) == pytest.approx((0.7 - half, 0.7 + half), rel=1e-9)
    assert half == pytest.approx(0.0784, abs=1e-4)  # dividing by k would give 0.1109 (sqrt(2) wider)
    assert (p.n_items, p.tasks, p.energy_j_per_1k) == (150, 2, pytest.approx(10.0))


def test_suite_interval_clamps_to_zero_and_one():
    (hi,) = suite_points([cell("m", "fp32", 1.0, 10.0, n=5)])["s"]
    assert (hi.accuracy_ci_low, hi.accuracy_ci_high) == (1.0, 1.0)  # p(1-p) = 0: no width
    (lo,) = suite_points([cell("m", "fp32", 0.02, 10.0, n=10)])["s"]
    assert lo.accuracy_ci_low == 0.0 and lo.accuracy_ci_high == pytest.approx(0.02 + 1.959964 * math.sqrt(
        0.02 * 0.98 / 10))


def test_indistinguishable_follows_the_k_squared_interval():
    """Two tasks of 400 items: 0.05 below the frontier is distinguishable with Var/k^2, not with Var/k."""
    cells = [cell(m, "fp32", acc, e, task=t, n=400) for t in ("t1", "t2")
             for m, acc, e in (("big", 0.90, 100.0), ("mid", 0.85, 100.0), ("near", 0.88, 100.0))]
    pts = {p.model: p for p in suite_points(cells)["s"]}
    assert pts["big"].on_frontier and not pts["mid"].on_frontier and not pts["near"].on_frontier
    half = 1.959964 * math.sqrt(2 * (0.85 * 0.15 / 400) / 4)
    assert pts["mid"].accuracy_ci_high == pytest.approx(0.85 + half)
    assert pts["big"].accuracy_ci_low == pytest.approx(0.90 - 1.959964 * math.sqrt(2 * (0.9 * 0.1 / 400) / 4))
    assert not pts["mid"].indistinguishable  # 0.8747 < 0.8792
    assert pts["near"].indistinguishable


def test_incomplete_and_failed_cells_make_no_suite_point():
    failed = CellResult("s", "t2", "m", "fp32", "failed", error="boom")
    no_energy = CellResult("s", "t2", "n", "fp32", "ok", n_items=10, accuracy=0.5)
    out = suite_points([cell("m", "fp32", 0.8, 10.0, task="t1"), failed,
                        cell("n", "fp32", 0.8, 10.0, task="t1"), no_energy])
    assert out == {}


# ------------------------------------------------------------------------------------------ McNemar
@pytest.mark.parametrize("k", [1, 2, 5, 30])
def test_mcnemar_p_value_is_clamped_to_one(k):
    """Equal discordant counts: twice the lower tail is above 1 (1.5 for 1 vs 1); p must be exactly 1."""
    a = [True] * k + [False] * k + [True] * 3
    b = [False] * k + [True] * k + [True] * 3
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"]) == (k, k)
    assert r["p_value"] == 1.0
    tail = sum(math.comb(2 * k, i) for i in range(k + 1)) / 2 ** (2 * k)
    assert 2 * tail > 1  # what the clamp is there for


def test_mcnemar_exact_tail_both_ways():
    r = mcnemar([True, True, True, False], [False, False, True, True])  # a_only 2, b_only 1
    assert (r["a_only"], r["b_only"]) == (2, 1)
    assert r["p_value"] == pytest.approx(2 * (1 + 3) / 8)  # = 1.0 exactly: still <= 1
    r = mcnemar([False] * 6, [True] * 6)
    assert (r["a_only"], r["b_only"], r["p_value"]) == (0, 6, pytest.approx(2 / 64))
    assert mcnemar([True] * 6, [False] * 6) == {"a_only": 6, "b_only": 0, "p_value": pytest.approx(2 / 64)}
    assert mcnemar([], []) == {"a_only": 0, "b_only": 0, "p_value": 1.0}


# ---------------------------------------------------------------------------------- intervals (stats)
#: two-sided 95 % Student-t quantiles, scipy.stats.t.ppf(0.975, df) to 3 decimals (scipy 1.17)
T_PPF = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 35: 2.030, 40: 2.021, 50: 2.009, 60: 2.000, 100: 1.984, 120: 1.980, 1000: 1.962}


@pytest.mark.parametrize("df", sorted(T_PPF))
def test_t_critical_matches_the_t_quantile_and_is_never_too_narrow(df):
    t = t_critical_95(df)
    assert t >= T_PPF[df] - 5e-4  # a smaller critical value would make the interval too narrow
    assert t == pytest.approx(T_PPF[df], abs=0.02)  # and at most 1 % wider than the exact one
    if df <= 30:
        assert t == T_PPF[df]


def test_t_critical_without_degrees_of_freedom_is_nan():
    assert math.isnan(t_critical_95(0)) and math.isnan(t_critical_95(-3))


def test_mean_ci_by_hand():
    assert mean_ci([4.0]) == (4.0, 4.0, 4.0)
    m, lo, hi = mean_ci([1.0, 3.0])  # sd sqrt(2), df 1
    assert m == 2.0 and (lo, hi) == pytest.approx((2 - 12.706 * math.sqrt(2) / math.sqrt(2),
                                                   2 + 12.706 * math.sqrt(2) / math.sqrt(2)))
    vals = [float(v) for v in range(12)]  # df 11: t = 2.201
    m, lo, hi = mean_ci(vals)
    half = 2.201 * statistics.stdev(vals) / math.sqrt(12)
    assert (m, lo, hi) == pytest.approx((5.5, 5.5 - half, 5.5 + half), rel=1e-12)


@pytest.mark.parametrize(("k", "n", "low", "high"), [  # Wilson 95 % (Newcombe 1998, Table I; R binom.confint)
    (8, 10, 0.4902, 0.9433), (50, 100, 0.4038, 0.5962), (1, 10, 0.0179, 0.4042), (1, 1, 0.2065, 1.0),
    (0, 1, 0.0, 0.7935), (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
])
def test_wilson_interval_reference_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(3, -1) == (0.0, 1.0)
    for n in (16, 40, 21, 37):  # where centre +/- half lands a rounding error outside [0, 1]
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0
        assert wilson_interval(n, n)[0] > 0.7 and wilson_interval(0, n)[1] < 0.2
    # z is used: by hand with z = 1, p = 0.3, n = 100: centre 0.305 / 1.01, half sqrt(0.0021 + 0.000025) / 1.01
    centre, half = 0.305 / 1.01, math.sqrt(0.0021 + 0.000025) / 1.01
    assert wilson_interval(30, 100, z=1.0) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_mcnemar_one_discordant_pair_and_unequal_lengths():
    assert mcnemar([True, True], [False, True]) == {"a_only": 1, "b_only": 0, "p_value": 1.0}
    with pytest.raises(ValueError, match="^paired test needs the same items in both$"):
        mcnemar([True, False], [True])


# ------------------------------------------------------------------- tasks a suite's frontier leaves out
def _na_cells(enc: int, left: tuple[str, ...]) -> list[CellResult]:
    """Suite "s": tasks t1, t2 and ``left``; ``enc`` encoders that cannot do ``left``; one LM that does all."""
    cells = [CellResult("s", t, "lm", "fp32", "ok") for t in ("t1", "t2", *left)]
    for i in range(1, enc + 1):
        cells += [CellResult("s", t, f"e{i}", "fp32", "ok") for t in ("t1", "t2")]
        cells += [CellResult("s", t, f"e{i}", "fp32", "n/a") for t in left]
    return cells + [CellResult("other", "t1", "e1", "fp32", "n/a"), CellResult("other", "t9", "lm", "fp32", "ok")]


def test_frontier_tasks_leave_out_what_some_model_cannot_do():
    from evaluator.pareto import frontier_tasks

    assert frontier_tasks(_na_cells(1, ("gen",)), "s") == ({"t1", "t2"}, {"gen"})
    assert frontier_tasks(_na_cells(0, ()), "s") == ({"t1", "t2"}, set())
    assert frontier_tasks(_na_cells(2, ("g1", "g2")), "other") == ({"t9"}, {"t1"})  # only its own suite's cells
    # a model that can do none of the suite's tasks does not narrow the others; two that cannot do
    # different tasks leave both out
    none = [CellResult("s", t, "x", "fp32", "n/a") for t in ("t1", "t2")] + _na_cells(0, ())
    assert frontier_tasks(none, "s") == ({"t1", "t2"}, set())
    both = _na_cells(1, ("gen",)) + [CellResult("s", "t1", "lm2", "fp32", "n/a"),
                                     CellResult("s", "t2", "lm2", "fp32", "ok"),
                                     CellResult("s", "gen", "lm2", "fp32", "ok")]
    assert frontier_tasks(both, "s") == ({"t2"}, {"gen", "t1"})


def test_left_out_note_names_the_tasks_and_the_models_exactly():
    from evaluator.pareto import left_out_note

    assert left_out_note(_na_cells(3, ()), "s") is None
    assert left_out_note(_na_cells(1, ("gen",)), "s") == (
        "The frontier covers t1, t2; gen is left out of it because e1 fp32 cannot do it (not applicable); "
        "the models that can have their cells in the task tables.")
    assert left_out_note(_na_cells(5, ("gen2", "gen")), "s") == (
        "The frontier covers t1, t2; gen, gen2 are left out of it because e1 fp32, e2 fp32, e3 fp32, e4 fp32 "
        "and others cannot do them (not applicable); the models that can have their cells in the task tables.")
    assert left_out_note(_na_cells(4, ("gen",)), "s").count(" and others") == 0
    cells = [CellResult("s", "t1", "enc", "fp32", "ok"), CellResult("s", "gen", "enc", "fp32", "n/a"),
             CellResult("s", "t1", "lm", "int8", "n/a"), CellResult("s", "gen", "lm", "int8", "ok")]
    assert left_out_note(cells, "s") == (
        "The frontier covers no task; gen, t1 are left out of it because enc fp32, lm int8 cannot do them (not "
        "applicable); the models that can have their cells in the task tables.")
