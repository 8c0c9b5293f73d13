"""CI gates: each gate passes and fails on crafted results; CLI exit codes 0 / 1 / 2 on a real run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from evaluator.config import Gates
from evaluator.errors import FrugalError
from evaluator.gates import check_gates, parse_ref
from evaluator.pareto import suite_points
from evaluator.records import CellResult
from evaluator.runner import RunResult, _mark_cells

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
