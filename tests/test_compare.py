"""Comparing runs: paired McNemar from a real store, unpaired fallback, energy intervals, planted regressions."""

from __future__ import annotations

import json
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
