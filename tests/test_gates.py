"""CI gates: each gate passes and fails on crafted results; CLI exit codes 0 / 1 / 2 on a real run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from evaluator.config import Gates
from evaluator.errors import FrugalError
from evaluator.gates import check_gates, parse_ref
from evaluator.pareto import mark_cells as _mark_cells
from evaluator.pareto import suite_points
from evaluator.records import CellResult, RunResult

ROOT = Path(__file__).resolve().parent.parent


def cell(suite: str, task: str, model: str, variant: str, acc: float, j_per_1k: float, n: int = 100,
         status: str = "ok", error: str | None = None) -> CellResult:
    """A hand-built cell."""
    if status != "ok":
        return CellResult(suite, task, model, variant, status, error=error)
    return CellResult(suite, task, model, variant, "ok", n_items=n, n_correct=round(acc * n), accuracy=acc,
                      energy_j=j_per_1k * n / 1000, energy_j_per_1k=j_per_1k, energy_method="estimate")


def make_run(cells: list[CellResult]) -> RunResult:
    """RunResult with frontiers, as the runner builds it."""
    fronts = suite_points(cells)
    return RunResult("r", "", _mark_cells(tuple(cells), fronts), fronts, {}, {}, "finished")


POINTS = {  # (model, variant): (accuracy, J per 1,000 items); C:fp32 is dominated by A:int8
    ("A", "fp32"): (0.80, 1000.0), ("A", "int8"): (0.79, 300.0), ("B", "fp32"): (0.60, 50.0),
    ("C", "fp32"): (0.55, 400.0),
}


@pytest.fixture
def run() -> RunResult:
    """Two suites x two tasks x four (model, variant) points."""
    return make_run([cell(s, t, m, v, acc, e) for s in ("fin", "med") for t in ("t1", "t2")
                     for (m, v), (acc, e) in POINTS.items()])


def test_no_gates_no_failures(run):
    assert check_gates(run, Gates()) == []


def test_max_accuracy_drop(run):
    fails = check_gates(run, Gates(max_accuracy_drop=2, baseline="A:fp32"))
    assert len(fails) == 4  # B and C in both suites; A:int8 is 1 point below: allowed
    b = next(f for f in fails if "fin" in f and "B:fp32" in f)
    assert b.startswith("max_accuracy_drop: suite fin")
    assert "60.0%" in b and "20.0 pts below the baseline A:fp32 (80.0%)" in b and "allowed 2 pts" in b
    assert "missed by 18.0 pts" in b
    assert check_gates(run, Gates(max_accuracy_drop=25, baseline="A:fp32")) == []
    assert check_gates(run, Gates(max_accuracy_drop=1, baseline="A:fp32", require_on_frontier=())) != []
    edge = check_gates(run, Gates(max_accuracy_drop=1.0, baseline="A:fp32"))
    assert not any("A:int8" in f for f in edge)  # exactly at the limit passes


def test_min_accuracy(run):
    fails = check_gates(run, Gates(min_accuracy=0.7))
    assert sorted(f.split(",")[1].split()[0] for f in fails) == ["B:fp32", "B:fp32", "C:fp32", "C:fp32"]
    c = next(f for f in fails if "C:fp32" in f)
    assert "55.0% is below the minimum 70.0% (missed by 15.0 pts)" in c
    assert check_gates(run, Gates(min_accuracy=0.5)) == []


def test_max_energy_per_1k(run):
    fails = check_gates(run, Gates(max_energy_per_1k=500))
    assert len(fails) == 2 and all("A:fp32" in f for f in fails)
    assert "1,000 J per 1,000 items" in fails[0] and "maximum 500 J" in fails[0]
    assert "missed by 500 J, 100%" in fails[0] and "estimate" in fails[0]
    assert check_gates(run, Gates(max_energy_per_1k=2000)) == []


def test_require_on_frontier(run):
    assert check_gates(run, Gates(require_on_frontier=("A:int8", "B:fp32", "A:fp32"))) == []
    fails = check_gates(run, Gates(require_on_frontier=("C:fp32",)))
    assert len(fails) == 2
    assert "require_on_frontier: suite fin, C:fp32" in fails[0] and "not on the Pareto frontier" in fails[0]
    assert "dominated by A:int8" in fails[0] and "24.0 pts less accurate" in fails[0]


def test_all_gates_together_pass(run):
    gates = Gates(max_accuracy_drop=30, baseline="A:fp32", min_accuracy=0.5, max_energy_per_1k=1e4,
                  require_on_frontier=("B:fp32",))
    assert check_gates(run, gates) == []


def test_reference_not_in_run_is_a_configuration_error(run):
    with pytest.raises(FrugalError, match="'Z:fp32', which is not in this run.*A:fp32"):
        check_gates(run, Gates(max_accuracy_drop=2, baseline="Z:fp32"))
    with pytest.raises(FrugalError, match="not in this run"):
        check_gates(run, Gates(require_on_frontier=("A:fp16",)))
    with pytest.raises(FrugalError, match="MODEL:VARIANT"):
        parse_ref("A")


@pytest.mark.parametrize("gates", [Gates(min_accuracy=1.5), Gates(min_accuracy=-0.1), Gates(max_energy_per_1k=0),
                                   Gates(max_accuracy_drop=-1, baseline="A:fp32"), Gates(max_accuracy_drop=2)])
def test_impossible_gate_values_are_configuration_errors(run, gates):
    with pytest.raises(FrugalError):
        check_gates(run, gates)


def test_failed_cells_make_the_point_missing_and_say_so():
    cells = [cell("fin", t, m, v, acc, e) for t in ("t1", "t2") for (m, v), (acc, e) in POINTS.items()
             if not (t == "t2" and (m, v) == ("A", "int8"))]
    cells.append(cell("fin", "t2", "A", "int8", 0, 0, status="failed", error="CUDA out of memory\ntraceback..."))
    run = make_run(cells)
    fails = check_gates(run, Gates(min_accuracy=0.1))
    assert len(fails) == 1
    assert "min_accuracy: suite fin, A:int8 has no suite point" in fails[0]
    assert "t2: failed (CUDA out of memory)" in fails[0] and "traceback" not in fails[0]
    drop = check_gates(run, Gates(max_accuracy_drop=50, baseline="A:int8"))
    assert len(drop) == 1 and "A:int8" in drop[0] and "accuracy drop against this baseline" in drop[0]
    assert any("A:int8" in f for f in check_gates(run, Gates(require_on_frontier=("A:int8",))))
    assert any("A:int8" in f for f in check_gates(run, Gates(max_energy_per_1k=1e6)))


def test_works_from_cells_when_frontiers_are_absent(run):
    bare = SimpleNamespace(cells=run.cells, frontiers={})
    assert check_gates(bare, Gates(min_accuracy=0.7)) == check_gates(run, Gates(min_accuracy=0.7))


# ---------------------------------------------------------------------------------------- CLI
def _run_args(small_run) -> list[str]:
    """Flags that match the small_run fixture, so its stored cells are reused (no model is run again)."""
    return ["run", "--suite", "finance", "--model", "minilm-l6", "--variant", "fp32", "--limit", "6",
            "--repeats", "1", "--batch-size", "8", "--store", small_run.store_path, "--models-file",
            str(ROOT / "models.yaml")]


def test_cli_gate_exit_codes(small_run, capsys):
    from evaluator.cli import main

    assert main([*_run_args(small_run), "--max-energy-per-1k", "1e12"]) == 0
    captured = capsys.readouterr()
    assert "all gates passed" in captured.out and "reused" in captured.out
    assert main([*_run_args(small_run), "--max-energy-per-1k", "0.000001"]) == 1
    assert "GATE FAILED: max_energy_per_1k: suite finance, minilm-l6:fp32" in capsys.readouterr().err
    assert main([*_run_args(small_run), "--max-accuracy-drop", "2", "--baseline", "nope:fp32"]) == 2
    assert "not in this run" in capsys.readouterr().err


def test_cli_bad_config_exit_2(tmp_path, capsys):
    from evaluator.cli import main

    bad = tmp_path / "eval.yaml"
    bad.write_text("suites: [finance]\ngates:\n  max_acuracy_drop: 2\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown gate" in capsys.readouterr().err
    assert main(["run", "--suite", "finance", "--max-accuracy-drop", "2"]) == 2  # no baseline


# ------------------------------------------------------------------ edges (each kills a mutant; docs/testing.md)
def bare(cells: list[CellResult], frontiers: dict | None = None) -> SimpleNamespace:
    """A result as a results.json gives it: cells, and frontiers when the file had them."""
    return SimpleNamespace(cells=tuple(cells), frontiers=frontiers or {})


def test_eps_absorbs_float_noise_at_every_limit():
    """A value within 1e-9 of a limit is at the limit: it passes (the comparisons are strict)."""
    base, cand = cell("s", "t", "B", "fp32", 0.75, 10.0), cell("s", "t", "C", "fp32", 0.50, 500.0)
    run = bare([base, cand])
    assert check_gates(run, Gates(max_accuracy_drop=25.0 - 1e-9, baseline="B:fp32")) == []  # drop 25.0
    assert check_gates(run, Gates(min_accuracy=0.5 + 1e-9)) == []
    assert check_gates(bare([cell("s", "t", "B", "fp32", 0.75, 10.0)]), Gates(min_accuracy=0.750000001)) == []
    assert check_gates(run, Gates(max_energy_per_1k=500.0 - 1e-9)) == []


def test_a_baseline_without_a_drop_limit_checks_nothing(run):
    assert check_gates(run, Gates(baseline="A:fp32")) == []


def test_missing_points_are_explained_gate_by_gate():
    long_error = "x" * 170 + "\nsecond line"
    cells = [cell("s", t, "A", "fp32", 0.8, 100.0) for t in ("t1", "t2", "t3")]
    cells += [cell("s", "t1", "X", "int8", 0.8, 10.0),  # t2 failed without a reason, t3 not run
              CellResult("s", "t2", "X", "int8", "failed")]
    cells += [cell("s", "t1", "Y", "int8", 0.7, 10.0), cell("s", "t2", "Y", "int8", 0.7, 10.0),
              CellResult("s", "t3", "Y", "int8", "ok", n_items=10, accuracy=0.7)]  # no energy recorded
    cells += [cell("s", "t1", "Z", "fp32", 0.8, 10.0), cell("s", "t2", "Z", "fp32", 0.8, 10.0),
              CellResult("s", "t3", "Z", "fp32", "failed", error=long_error)]
    x = "X:int8 has no suite point because a task did not finish (t2: failed (no reason recorded); t3: not run)"
    y = "Y:int8 has no suite point because a task did not finish (t3: no accuracy or energy recorded)"
    z = f"Z:fp32 has no suite point because a task did not finish (t3: failed ({'x' * 160}))"
    gates = Gates(max_accuracy_drop=50, baseline="A:fp32", min_accuracy=0.1, max_energy_per_1k=1e6,
                  require_on_frontier=("X:int8", "Z:fp32"))
    assert check_gates(bare(cells), gates) == [
        f"max_accuracy_drop: suite s, {x}, so its accuracy drop cannot be checked",
        f"max_accuracy_drop: suite s, {y}, so its accuracy drop cannot be checked",
        f"max_accuracy_drop: suite s, {z}, so its accuracy drop cannot be checked",
        f"min_accuracy: suite s, {x}, so its accuracy cannot be checked",
        f"max_energy_per_1k: suite s, {x}, so its energy cannot be checked",
        f"min_accuracy: suite s, {y}, so its accuracy cannot be checked",
        f"max_energy_per_1k: suite s, {y}, so its energy cannot be checked",
        f"min_accuracy: suite s, {z}, so its accuracy cannot be checked",
        f"max_energy_per_1k: suite s, {z}, so its energy cannot be checked",
        f"require_on_frontier: suite s, {x}, so its frontier place cannot be checked",
        f"require_on_frontier: suite s, {z}, so its frontier place cannot be checked",
    ]
    no_base = check_gates(bare(cells), Gates(max_accuracy_drop=50, baseline="X:int8"))
    assert no_base == [f"max_accuracy_drop: suite s, {x}, so the accuracy drop against this baseline cannot be checked"]


def test_a_point_missing_from_recorded_frontiers_is_incomplete():
    cells = [cell("s", "t", "A", "fp32", 0.8, 10.0), cell("s", "t", "B", "fp32", 0.8, 10.0)]
    fronts = {"s": [p for p in suite_points(cells)["s"] if p.model == "A"]}
    assert check_gates(bare(cells, fronts), Gates(min_accuracy=0.5)) == [
        "min_accuracy: suite s, B:fp32 has no suite point because a task did not finish (incomplete), so its "
        "accuracy cannot be checked"]


def test_a_result_without_a_frontiers_attribute_is_recomputed():
    cells = (cell("s", "t", "A", "fp32", 0.4, 10.0),)
    assert check_gates(SimpleNamespace(cells=cells), Gates(min_accuracy=0.5)) == [
        "min_accuracy: suite s, A:fp32 accuracy 40.0% is below the minimum 50.0% (missed by 10.0 pts)"]


def test_gates_use_the_runs_recorded_frontiers():
    cells = [cell("s", "t", "A", "fp32", 0.8, 10.0)]
    (p,) = suite_points(cells)["s"]
    recorded = {"s": [replace(p, accuracy=0.5)]}  # what the run itself wrote is what the gates judge
    assert check_gates(bare(cells, recorded), Gates(min_accuracy=0.6)) == [
        "min_accuracy: suite s, A:fp32 accuracy 50.0% is below the minimum 60.0% (missed by 10.0 pts)"]
    assert check_gates(bare(cells), Gates(min_accuracy=0.6)) == []


def test_a_suite_whose_every_cell_failed_fails_each_gate_with_its_reason():
    cells = [cell("ok", "t", "A", "fp32", 0.8, 10.0), CellResult("bad", "t", "A", "fp32", "failed", error="oom")]
    assert check_gates(bare(cells), Gates(min_accuracy=0.5)) == [
        "min_accuracy: suite bad, A:fp32 has no suite point because a task did not finish (t: failed (oom)), so its "
        "accuracy cannot be checked"]


def test_pairs_are_per_suite():
    cells = [cell("s1", "t", "A", "fp32", 0.8, 10.0), cell("s2", "t", "A", "fp32", 0.8, 10.0),
             cell("s2", "t", "B", "fp32", 0.3, 1.0)]  # cheaper: on the frontier of s2
    assert check_gates(bare(cells), Gates(min_accuracy=0.5)) == [
        "min_accuracy: suite s2, B:fp32 accuracy 30.0% is below the minimum 50.0% (missed by 20.0 pts)"]
    assert check_gates(bare(cells), Gates(require_on_frontier=("B:fp32", "A:fp32"))) == [
        "require_on_frontier: suite s1 has no cells for B:fp32"]
    cells.append(cell("s1", "t", "C", "fp32", 0.7, 20.0, n=10_000))  # dominated by A in s1; absent from s2
    assert check_gates(bare(cells), Gates(require_on_frontier=("B:fp32", "C:fp32"))) == [
        "require_on_frontier: suite s1 has no cells for B:fp32",  # ...and the next reference is still checked
        "require_on_frontier: suite s1, C:fp32 (70.0%, 20 J/1k) is not on the Pareto frontier; dominated by A:fp32 "
        "(80.0%, 10 J/1k); it is 10.0 pts less accurate and uses 2x the energy of the cheapest",
        "require_on_frontier: suite s2 has no cells for C:fp32"]
    assert check_gates(bare(cells), Gates(max_accuracy_drop=1, baseline="B:fp32")) == [
        "max_accuracy_drop: suite s1 has no cells for the baseline B:fp32"]


def test_measured_energy_says_measured():
    c = replace(cell("s", "t", "A", "fp32", 0.8, 600.0), energy_method="nvml", is_estimate=False)
    assert check_gates(bare([c]), Gates(max_energy_per_1k=500)) == [
        "max_energy_per_1k: suite s, A:fp32 uses 600 J per 1,000 items (measured: nvml), above the maximum 500 J "
        "(missed by 100 J, 20%)"]


def test_off_frontier_message_names_every_dominator():
    cells = [cell("s", "t", "A", "fp32", 0.90, 100.0), cell("s", "t", "B", "fp32", 0.80, 0.5),
             cell("s", "t", "P", "fp32", 0.50, 200.0, n=10000)]
    assert check_gates(bare(cells), Gates(require_on_frontier=("P:fp32",))) == [
        "require_on_frontier: suite s, P:fp32 (50.0%, 200 J/1k) is not on the Pareto frontier; dominated by A:fp32 "
        "(90.0%, 100 J/1k), B:fp32 (80.0%, 0.5 J/1k); it is 40.0 pts less accurate and uses 4e+02x the energy of "
        "the cheapest"]
    same_acc = [cell("s", "t", "A", "fp32", 0.5, 0.0), cell("s", "t", "P", "fp32", 0.5, 200.0)]
    assert check_gates(bare(same_acc), Gates(require_on_frontier=("P:fp32",))) == [
        "require_on_frontier: suite s, P:fp32 (50.0%, 200 J/1k) is not on the Pareto frontier (statistically "
        "indistinguishable from the frontier); dominated by A:fp32 (50.0%, 0 J/1k); it is 0.0 pts less accurate"]


def test_off_frontier_in_recorded_frontiers_without_a_dominator():
    cells = [cell("s", "t", "A", "fp32", 0.8, 10.0), cell("s", "t", "B", "fp32", 0.7, 5.0)]
    fronts = {"s": [replace(p, on_frontier=False) if p.model == "A" else p for p in suite_points(cells)["s"]]}
    assert check_gates(bare(cells, fronts), Gates(require_on_frontier=("A:fp32",))) == [
        "require_on_frontier: suite s, A:fp32 (80.0%, 10 J/1k) is not on the Pareto frontier; dominated by ?"]


def test_configuration_errors_say_what_to_write(run):
    with pytest.raises(FrugalError, match=r"^max_accuracy_drop is in points and must be >= 0 \(got -1\)$"):
        check_gates(run, Gates(max_accuracy_drop=-1, baseline="A:fp32"))
    with pytest.raises(FrugalError, match=r"^max_accuracy_drop needs a baseline MODEL:VARIANT \(--baseline\)$"):
        check_gates(run, Gates(max_accuracy_drop=1))
    with pytest.raises(FrugalError, match=r"^min_accuracy is a fraction between 0 and 1 \(got 70; for 70 % write "
                                          r"0\.7\)$"):
        check_gates(run, Gates(min_accuracy=70))
    with pytest.raises(FrugalError, match=r"^max_energy_per_1k is in joules per 1,000 items and must be > 0 "
                                          r"\(got -2\)$"):
        check_gates(run, Gates(max_energy_per_1k=-2))
    assert check_gates(run, Gates(max_energy_per_1k=0.5)) != []  # below 1 J is a valid (strict) cap
    with pytest.raises(FrugalError, match=r"\(model:variant pairs in the run: A:fp32, A:int8, B:fp32, C:fp32\)"):
        check_gates(run, Gates(require_on_frontier=("Z:fp32",)))
    with pytest.raises(FrugalError, match=r"\(model:variant pairs in the run: none\)"):
        check_gates(bare([]), Gates(require_on_frontier=("Z:fp32",)))


def test_parse_ref_splits_at_the_last_colon():
    assert parse_ref("hf:org/model:fp32") == ("hf:org/model", "fp32")
    for bad in ("A:", ":fp32", "A", ""):
        with pytest.raises(FrugalError, match="must be MODEL:VARIANT"):
            parse_ref(bad)
