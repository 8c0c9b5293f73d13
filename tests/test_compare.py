"""Comparing runs: paired McNemar from a real store, unpaired fallback, energy intervals, planted regressions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluator.compare import compare, diff_cells, two_proportion_p
from evaluator.pareto import mark_cells as _mark_cells
from evaluator.pareto import suite_points
from evaluator.records import CellResult, ItemRecord, RunResult
from evaluator.runner import load_result
from evaluator.store import Store


def cell(task: str, acc: float, j: float, model: str = "m", variant: str = "fp32", n: int = 100,
         spread: float = 0.02, repeats: int = 3, status: str = "ok", method: str = "estimate") -> CellResult:
    """A cell whose energy (per pass, J) has a 95 % interval of +/- ``spread``."""
    if status != "ok":
        return CellResult("s", task, model, variant, status, error="load failed: boom")
    k = round(acc * n)
    return CellResult("s", task, model, variant, "ok", n_items=n, n_correct=k, accuracy=k / n, energy_j=j,
                      energy_ci_low=j * (1 - spread), energy_ci_high=j * (1 + spread), energy_j_per_1k=j / n * 1000,
                      energy_method=method, repeats=repeats)


def make_run(run_id: str, cells: list[CellResult], store_path: str = "") -> RunResult:
    """RunResult as the runner builds it."""
    fronts = suite_points(cells)
    return RunResult(run_id, store_path, _mark_cells(tuple(cells), fronts), fronts, {}, {}, "finished")


def test_planted_regressions_and_noise_unpaired():
    a = make_run("A", [cell("acc-drop", 0.80, 10.0), cell("energy-up", 0.8, 10.0), cell("noise", 0.80, 10.0),
                       cell("overlap", 0.8, 10.0, spread=0.08), cell("one-repeat", 0.8, 10.0, repeats=1),
                       cell("breaks", 0.8, 10.0), cell("gone", 0.8, 10.0), cell("was-broken", 0, 0, status="failed")])
    b = make_run("B", [cell("acc-drop", 0.62, 10.0), cell("energy-up", 0.8, 13.0), cell("noise", 0.78, 10.3),
                       cell("overlap", 0.8, 11.0, spread=0.08), cell("one-repeat", 0.8, 15.0, repeats=1),
                       cell("breaks", 0, 0, status="failed"), cell("new", 0.8, 10.0)])
    cmp = compare(a, b)
    by = {d.task: d for d in cmp.diffs}
    # "gone" was ok in A and is missing from B: a dropped candidate must not pass a CI gate;
    # "was-broken" failed in A and is missing from B: nothing was lost
    assert {d.task for d in cmp.regressions} == {"acc-drop", "energy-up", "breaks", "gone"}
    assert by["gone"].status_b == "missing" and by["gone"].reasons == ("ok in A, missing from B",)
    assert "was-broken" not in by
    assert by["acc-drop"].test == "two-proportion z (unpaired)" and by["acc-drop"].p_value < 0.01
    assert by["acc-drop"].accuracy_change_pts == pytest.approx(-18.0)
    assert by["energy-up"].intervals_overlap is False and by["energy-up"].energy_change == pytest.approx(0.3)
    assert not by["noise"].regression and by["noise"].p_value > 0.5 and by["noise"].intervals_overlap
    assert not by["overlap"].regression and by["overlap"].intervals_overlap  # +10 % but the intervals overlap
    assert not by["one-repeat"].regression and by["one-repeat"].intervals_overlap is None
    assert "failed in B" in by["breaks"].reasons[0]
    assert cmp.only_a == [("s", "gone", "m", "fp32"), ("s", "was-broken", "m", "fp32")]
    assert cmp.only_b == [("s", "new", "m", "fp32")]
    text = cmp.render()
    for part in ("REGRESSION", "z unpaired", "Only in A (2)", "Only in B (1)", "s/gone m [fp32]", "disjoint",
                 "unpaired: per-item predictions not available", "4 regression(s)", "6 matched cell(s)",
                 "ok -> missing", "ok in A, missing from B"):
        assert part in text, part
    json.dumps(cmp.to_dict())


def test_energy_rise_below_five_percent_is_not_a_regression():
    d = diff_cells(cell("t", 0.8, 10.0, spread=0.001), cell("t", 0.8, 10.4, spread=0.001))
    assert d.intervals_overlap is False and not d.regression


def test_different_energy_methods_are_not_compared():
    d = diff_cells(cell("t", 0.8, 10.0, spread=0.01), cell("t", 0.8, 20.0, spread=0.01, method="rapl"))
    assert not d.regression and any("methods differ" in n for n in d.notes)


def test_two_proportion_p_edges():
    assert two_proportion_p(0, 0, 1, 1) == 1.0
    assert two_proportion_p(10, 10, 10, 10) == 1.0
    assert two_proportion_p(50, 100, 50, 100) == pytest.approx(1.0)


def _items(correct: list[bool]) -> list[ItemRecord]:
    return [ItemRecord(f"i{i}", 1, 1 if c else 0, 1 if c else 0, (0.0, 1.0)) for i, c in enumerate(correct)]


def _stored_run(store: Store, cells_items: list[tuple[CellResult, list[ItemRecord]]]) -> str:
    run_id = store.create_run({}, len(cells_items), {}, {})
    for c, items in cells_items:
        store.add_cell(run_id, c, items)
    store.update_run(run_id, status="finished")
    return run_id


def test_paired_mcnemar_from_a_real_store(tmp_path):
    """B loses 8 items A got right and gains none: McNemar sees it, an unpaired test would not."""
    store = Store(tmp_path / "st.sqlite")
    base = [True] * 80 + [False] * 20
    worse = [False] * 8 + [True] * 72 + [False] * 20  # 8 right -> wrong, 0 wrong -> right
    noisy = [False] * 3 + [True] * 77 + [True] * 2 + [False] * 18  # 3 lost, 2 gained
    run_a = _stored_run(store, [(cell("drop", 0.80, 10.0), _items(base)), (cell("noise", 0.80, 10.0), _items(base))])
    run_b = _stored_run(store, [(cell("drop", 0.72, 10.0), _items(worse)), (cell("noise", 0.79, 10.1), _items(noisy))])
    a, b = load_result(run_a, str(store.path)), load_result(run_b, str(store.path))
    cmp = compare(a, b, store=str(store.path))
    by = {d.task: d for d in cmp.diffs}
    drop = by["drop"]
    assert drop.test == "mcnemar (paired)" and drop.n_paired == 100
    assert (drop.a_only_correct, drop.b_only_correct) == (8, 0)
    assert drop.p_value == pytest.approx(2 * 0.5**8)
    assert drop.regression
    assert two_proportion_p(80, 100, 72, 100) > 0.05  # the unpaired test misses this drop
    assert by["noise"].test == "mcnemar (paired)" and not by["noise"].regression
    assert [d.task for d in cmp.regressions] == ["drop"]
    assert "McNemar" in cmp.render()


def test_results_json_carries_items_so_compare_is_paired_without_the_store(tmp_path):
    from evaluator.report import write_json

    store = Store(tmp_path / "st.sqlite")
    base = [True] * 80 + [False] * 20
    worse = [False] * 8 + [True] * 72 + [False] * 20
    run_a = _stored_run(store, [(cell("t", 0.8, 10.0), _items(base))])
    run_b = _stored_run(store, [(cell("t", 0.72, 10.0), _items(worse))])
    a_json = write_json(load_result(run_a, str(store.path)), tmp_path / "a.json")
    b_json = write_json(load_result(run_b, str(store.path)), tmp_path / "b.json")
    doc = json.loads(a_json.read_text())
    assert doc["cells"][0]["items"]["id"][:2] == ["i0", "i1"] and len(doc["cells"][0]["items"]["pred"]) == 100
    store.path.unlink()  # the JSON files alone, as a CI job downloads them as artifacts
    a, b = load_result(str(a_json)), load_result(str(b_json))
    d = compare(a, b).diffs[0]
    assert d.test == "mcnemar (paired)" and (d.a_only_correct, d.b_only_correct) == (8, 0) and d.regression
    assert two_proportion_p(80, 100, 72, 100) > 0.05  # what the unpaired fallback would have said
    assert not (tmp_path / "a.json").read_bytes().startswith(b"SQLite")  # never opened as a store


def test_results_json_without_items_falls_back_to_unpaired_or_the_store(tmp_path):
    from evaluator.report import write_json

    store = Store(tmp_path / "st.sqlite")
    base = [True] * 80 + [False] * 20
    run_a = _stored_run(store, [(cell("t", 0.8, 10.0), _items(base))])
    run_b = _stored_run(store, [(cell("t", 0.8, 10.0), _items(base))])
    paths = []
    for rid, name in ((run_a, "a.json"), (run_b, "b.json")):
        path = write_json(load_result(rid, str(store.path)), tmp_path / name)
        doc = json.loads(path.read_text())
        for c in doc["cells"]:
            del c["items"]  # as written by an older Frugal
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    a, b = load_result(paths[0]), load_result(paths[1])
    assert compare(a, b).diffs[0].test == "two-proportion z (unpaired)"
    assert compare(a, b, store=str(store.path)).diffs[0].test == "mcnemar (paired)"


@pytest.mark.parametrize("items, why", [
    ([1, 2], "expected an object"),
    ({"id": ["a"], "gold": [0], "pred": [0, 1]}, "same length"),
    ({"id": ["a", "a"], "gold": [0, 0], "pred": [0, 1]}, "distinct strings"),
    ({"id": ["a"], "gold": ["0"], "pred": [0]}, "integers"),
    ({"id": ["a"], "gold": [0]}, "must be lists"),
])
def test_malformed_items_in_results_json_name_the_field(tmp_path, items, why):
    from evaluator.errors import ValidationError
    from evaluator.report import write_json

    path = write_json(make_run("A", [cell("t", 0.8, 10.0), cell("u", 0.8, 10.0)]), tmp_path / "r.json")
    doc = json.loads(path.read_text())
    doc["cells"][1]["items"] = items
    path.write_text(json.dumps(doc))
    with pytest.raises(ValidationError) as err:
        load_result(str(path))
    assert why in str(err.value) and "cells[1].items" in str(err.value) and "r.json" in str(err.value)


def test_cli_compare_exit_codes(tmp_path, capsys):
    from evaluator.cli import main
    from evaluator.report import write_json

    a = make_run("A", [cell("t", 0.80, 10.0, n=300)])
    b = make_run("B", [cell("t", 0.60, 10.0, n=300)])
    pa, pb = write_json(a, tmp_path / "a.json"), write_json(b, tmp_path / "b.json")
    assert main(["compare", str(pa), str(pa), "--fail-on-regression"]) == 0
    assert main(["compare", str(pa), str(pb)]) == 0  # reported, but not failing without the flag
    assert main(["compare", str(pa), str(pb), "--fail-on-regression"]) == 1
    out = capsys.readouterr()
    assert "REGRESSION" in out.out and "1 regression(s)" in out.err
    assert main(["compare", "nope", str(pb), "--store", str(Path(tmp_path) / "empty.sqlite")]) == 2


# ------------------------------------------------------------------ edges (each kills a mutant; docs/testing.md)
def _grid() -> tuple[RunResult, RunResult]:
    """Every kind of cell a comparison meets, in an order where a skipped cell comes first."""
    from dataclasses import replace

    base = [True] * 80 + [False] * 20
    worse = [False] * 8 + [True] * 72 + [False] * 20
    better = [True] * 90 + [False] * 10
    long_error = "e" * 250 + "\nsecond line"
    no_energy = CellResult("s", "no-energy", "m", "fp32", "ok", n_items=100, n_correct=80, accuracy=0.8)
    empty = CellResult("s", "empty", "m", "fp32", "ok", energy_method="estimate")  # no items: nothing to test
    a = make_run("A", [
        CellResult("s", "was-broken", "m", "fp32", "failed", error="oom"),  # failed and missing from B
        cell("paired", 0.80, 10.0), cell("subset", 0.80, 10.0), cell("cheaper", 0.8, 20.0, spread=0.01),
        cell("big", 0.8, 250.0, n=2), cell("methods", 0.8, 10.0), cell("small", 0.8, 1.25), no_energy,
        cell("none-b", 0.8, 10.0), CellResult("s", "broken-a", "m", "fp32", "failed", error="oom"),
        cell("long", 0.8, 10.0), cell("both-worse", 0.8, 10.0, n=300), empty, cell("gone", 0.7, 5.0)])
    b = make_run("B", [
        cell("paired", 0.72, 10.0), cell("subset", 0.90, 10.0), cell("cheaper", 0.8, 10.0, spread=0.01),
        cell("big", 0.8, 260.0, n=2, repeats=1), cell("methods", 0.8, 30.0, method="rapl"), cell("small", 0.8, 1.3),
        no_energy, CellResult("s", "none-b", "m", "fp32", "failed"), cell("broken-a", 0.8, 10.0),
        CellResult("s", "long", "m", "fp32", "failed", error=long_error), cell("both-worse", 0.6, 20.0, n=300),
        empty, cell("new", 0.8, 10.0)])
    key = ("s", "{}", "m", "fp32")
    items_a = {tuple(k.format(t) for k in key): _items(base) for t in ("paired", "subset")}
    items_b = {tuple(k.format("paired") for k in key): _items(worse),
               tuple(k.format("subset") for k in key): _items(better)[:90]}  # B scored 90 of the 100 items
    return replace(a, items=items_a), replace(b, items=items_b)


GOLDEN = """\
Comparing A = A with B = B: 12 matched cell(s), 5 regression(s)
cell                   accuracy A -> B   change     test        p         J/1k A -> B         change  95% CIs         verdict
---------------------  ----------------  ---------  ----------  --------  ------------------  ------  --------------  ----------
s/paired m [fp32]      80.0% -> 72.0%    -8.0 pts   McNemar     0.00781   100 -> 100          +0%     overlap         REGRESSION
s/subset m [fp32]      88.9% -> 100.0%   +11.1 pts  McNemar     0.00195   100 -> 100          +0%     overlap         better
s/cheaper m [fp32]     80.0% -> 80.0%    +0.0 pts   z unpaired  1         200 -> 100          -50%    disjoint        better
s/big m [fp32]         100.0% -> 100.0%  +0.0 pts   z unpaired  1         125,000 -> 130,000  +4%     n/a (1 repeat)  same
s/methods m [fp32]     80.0% -> 80.0%    +0.0 pts   z unpaired  1         100 -> 300          +200%   disjoint        same
s/small m [fp32]       80.0% -> 80.0%    +0.0 pts   z unpaired  1         12.50 -> 13.00      +4%     overlap         same
s/no-energy m [fp32]   80.0% -> 80.0%    +0.0 pts   z unpaired  1         – -> –              -       n/a (1 repeat)  same
s/none-b m [fp32]      ok -> failed                                                                                   REGRESSION
s/broken-a m [fp32]    failed -> ok                                                                                   -
s/long m [fp32]        ok -> failed                                                                                   REGRESSION
s/both-worse m [fp32]  80.0% -> 60.0%    -20.0 pts  z unpaired  9.03e-08  33.33 -> 66.67      +100%   disjoint        REGRESSION
s/empty m [fp32]       -                 -          n/a         -         – -> –              -       n/a (1 repeat)  same
s/gone m [fp32]        ok -> missing                                                                                  REGRESSION

Notes:
  s/subset m [fp32]: paired on the 90 items both runs scored
  unpaired: per-item predictions not available for both runs
  energy not tested: an interval needs at least 2 repeats in both runs
  s/methods m [fp32]: energy methods differ (estimate vs rapl): not comparable
  s/none-b m [fp32]: not compared: B failed
  s/broken-a m [fp32]: not compared: A failed
  s/long m [fp32]: not compared: B failed
  s/gone m [fp32]: not compared: missing in B

Only in A (2):
  s/was-broken m [fp32]
  s/gone m [fp32]

Only in B (1):
  s/new m [fp32]

Regressions:
  s/paired m [fp32]: accuracy -8.0 pts (p = 0.00781, mcnemar (paired))
  s/none-b m [fp32]: failed in B: no reason recorded
  s/long m [fp32]: failed in B: {long}
  s/both-worse m [fp32]: accuracy -20.0 pts (p = 9.03e-08, two-proportion z (unpaired)); energy +100% with non-overlapping 95% intervals
  s/gone m [fp32]: ok in A, missing from B""".replace("{long}", "e" * 200)  # noqa: E501 (a table as printed)


def test_render_of_every_kind_of_cell_is_exact():
    """The whole table, checked once by hand against the rules in the module docstring."""
    a, b = _grid()
    assert compare(a, b).render() == GOLDEN


def test_to_dict_carries_every_field_of_every_cell():
    from dataclasses import fields

    from evaluator.compare import CellDiff

    a, b = _grid()
    doc = compare(a, b).to_dict()
    assert list(doc) == ["run_a", "run_b", "alpha", "energy_rise_threshold", "cells", "regressions", "only_a",
                         "only_b"]
    assert (doc["run_a"], doc["run_b"], doc["alpha"], doc["energy_rise_threshold"]) == ("A", "B", 0.05, 0.05)
    assert doc["regressions"] == [["s", t, "m", "fp32"] for t in ("paired", "none-b", "long", "both-worse", "gone")]
    assert doc["only_a"] == [["s", "was-broken", "m", "fp32"], ["s", "gone", "m", "fp32"]]
    assert doc["only_b"] == [["s", "new", "m", "fp32"]]
    assert all(list(c) == [f.name for f in fields(CellDiff)] for c in doc["cells"])
    by = {c["task"]: c for c in doc["cells"]}
    assert by["paired"] == {
        "suite": "s", "task": "paired", "model": "m", "variant": "fp32", "status_a": "ok", "status_b": "ok",
        "accuracy_a": 0.8, "accuracy_b": 0.72, "n_a": 100, "n_b": 100, "accuracy_change_pts": pytest.approx(-8.0),
        "test": "mcnemar (paired)", "p_value": 2 / 2**8, "n_paired": 100, "a_only_correct": 8, "b_only_correct": 0,
        "energy_j_per_1k_a": 100.0, "energy_j_per_1k_b": 100.0, "energy_ci_a": pytest.approx((98.0, 102.0)),
        "energy_ci_b": pytest.approx((98.0, 102.0)), "energy_change": 0.0, "intervals_overlap": True,
        "energy_methods": ("estimate", "estimate"), "notes": (), "regression": True,
        "reasons": ("accuracy -8.0 pts (p = 0.00781, mcnemar (paired))",)}
    assert by["cheaper"]["energy_ci_a"] == pytest.approx((198.0, 202.0)) and by["cheaper"]["n_paired"] == 0
    assert (by["cheaper"]["a_only_correct"], by["cheaper"]["b_only_correct"]) == (None, None)
    assert by["big"]["energy_ci_b"] is None and by["big"]["intervals_overlap"] is None
    assert by["gone"] == {
        "suite": "s", "task": "gone", "model": "m", "variant": "fp32", "status_a": "ok", "status_b": "missing",
        "accuracy_a": 0.7, "accuracy_b": None, "n_a": 100, "n_b": 0, "accuracy_change_pts": None, "test": "n/a",
        "p_value": None, "n_paired": 0, "a_only_correct": None, "b_only_correct": None, "energy_j_per_1k_a": 50.0,
        "energy_j_per_1k_b": None, "energy_ci_a": None, "energy_ci_b": None, "energy_change": None,
        "intervals_overlap": None, "energy_methods": ("", ""), "notes": ("not compared: missing in B",),
        "regression": True, "reasons": ("ok in A, missing from B",)}


def test_both_failed_is_not_compared_and_not_a_regression():
    f = CellResult("s", "t", "m", "fp32", "failed", error="x")
    d = diff_cells(f, f)
    assert (d.regression, d.reasons, d.notes) == (False, (), ("not compared: A failed",))


def _ci(j: float, lo: float | None, hi: float | None, n: int = 100, repeats: int = 3) -> CellResult:
    return CellResult("s", "t", "m", "fp32", "ok", n_items=n, n_correct=n // 2, accuracy=0.5, energy_j=j,
                      energy_ci_low=lo, energy_ci_high=hi, energy_j_per_1k=j / n * 1000 if n else None,
                      energy_method="estimate", repeats=repeats)


@pytest.mark.parametrize(("a", "b", "overlap"), [
    (_ci(11, 10, 12), _ci(13, 12, 14), True),        # touching intervals overlap
    (_ci(13, 12, 14), _ci(11, 10, 12), True),
    (_ci(11, 10, 12), _ci(13, 12.5, 14), False),
    (_ci(11, 10, 12, repeats=2), _ci(13, 12.5, 14, repeats=2), False),  # two repeats are enough
    (_ci(11, 10, None), _ci(13, 12.5, 14), None),   # half an interval is no interval
    (_ci(11, None, 12), _ci(13, 12.5, 14), None),
    (_ci(11, 10, 12), _ci(13, 12.5, None), None),
    (_ci(11, 11, 11), _ci(13, 12.5, 14), None),     # zero width: the repeats did not vary, nothing to test
    (_ci(11, 10, 12, n=0), _ci(13, 12.5, 14), None),
])
def test_energy_intervals_and_their_overlap(a, b, overlap):
    d = diff_cells(a, b)
    assert d.intervals_overlap is overlap
    assert ("energy not tested: an interval needs at least 2 repeats in both runs" in d.notes) is (overlap is None)
    lo, hi = a.energy_ci_low, a.energy_ci_high
    if a.n_items and lo is not None and hi is not None and hi > lo:
        assert d.energy_ci_a == pytest.approx((lo * 10, hi * 10))  # J per 1,000 items


@pytest.mark.parametrize(("e_a", "e_b", "change"), [(0.5, 0.6, 0.2), (0.0, 5.0, None), (None, 5.0, None),
                                                    (5.0, None, None), (2.0, 0.0, -1.0)])
def test_energy_change_needs_both_energies_and_a_positive_a(e_a, e_b, change):
    a = replace_energy(cell("t", 0.8, 10.0), e_a)
    b = replace_energy(cell("t", 0.8, 10.0), e_b)
    d = diff_cells(a, b)
    assert d.energy_change == (None if change is None else pytest.approx(change))


def replace_energy(c: CellResult, per_1k: float | None) -> CellResult:
    from dataclasses import replace

    return replace(c, energy_j_per_1k=per_1k)


def test_accuracy_change_needs_both_accuracies():
    from dataclasses import replace

    a, b = cell("t", 0.8, 10.0), cell("t", 0.7, 10.0)
    for x, y in ((replace(a, accuracy=None), b), (a, replace(b, accuracy=None))):
        d = diff_cells(x, y)
        assert d.accuracy_change_pts is None and not d.regression


def test_a_small_significant_gain_is_better_not_a_regression():
    n = 100_000
    a, b = cell("t", 0.800, 10.0, n=n), cell("t", 0.805, 10.0, n=n)
    d = diff_cells(a, b)
    assert d.p_value < 0.05 and d.accuracy_change_pts == pytest.approx(0.5) and not d.regression
    assert "better" in compare(make_run("A", [a]), make_run("B", [b])).render()


def test_a_gain_so_large_its_p_value_underflows_is_still_better():
    """two_proportion_p(0, 1000, 1000, 1000) is exactly 0.0; the verdict must still be 'better'."""
    a, b = cell("t", 0.0, 10.0, n=1000), cell("t", 1.0, 10.0, n=1000)
    assert diff_cells(a, b).p_value == 0.0
    assert compare(make_run("A", [a]), make_run("B", [b])).render().splitlines()[3].endswith("better")


@pytest.mark.parametrize(("a", "b", "verdict"), [
    (cell("t", 0.80, 10.0, n=100), cell("t", 0.85, 10.0, n=100), "same"),  # +5 pts, p = 0.35: not shown better
    (cell("t", 0.8, 10.0, spread=0.15), cell("t", 0.8, 8.0, spread=0.15), "same"),  # -20 %, intervals overlap
    (cell("t", 0.8, 10.0, spread=0.001), cell("t", 0.8, 9.6, spread=0.001), "same"),  # -4 %: under 5 %
    (cell("t", 0.8, 10.0, spread=0.001), cell("t", 0.8, 9.0, spread=0.001), "better"),
])
def test_better_needs_significance_or_a_clear_energy_fall(a, b, verdict):
    assert compare(make_run("A", [a]), make_run("B", [b])).render().splitlines()[3].split()[-1] == verdict


def test_two_proportion_p_needs_items_on_both_sides():
    assert two_proportion_p(0, 1, 1, 1) == pytest.approx(math.erfc(math.sqrt(2) / math.sqrt(2)))
    assert two_proportion_p(1, 1, 0, 1) == two_proportion_p(0, 1, 1, 1)
    assert two_proportion_p(1, 0, 1, 1) == 1.0 and two_proportion_p(1, 1, 1, 0) == 1.0


def test_a_row_with_one_accuracy_missing_shows_a_dash():
    from dataclasses import replace

    from evaluator.compare import _render_row

    a, b = cell("t", 0.8, 10.0), cell("t", 0.7, 10.0)
    for x, y in ((replace(a, accuracy=None), b), (a, replace(b, accuracy=None))):
        row = _render_row(diff_cells(x, y))
        assert row[1:3] == ("-", "-"), row
