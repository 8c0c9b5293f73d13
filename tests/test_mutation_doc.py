"""bench/mutation.py's generated section of docs/testing.md: a run of some modules keeps the others' rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("frugal_bench_mutation", ROOT / "bench" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(module, survivors=()):
    return {"module": module, "tests": ["tests/test_x.py"], "mutants": 10, "killed": 10 - len(survivors),
            "survived": len(survivors), "score": 1 - len(survivors) / 10, "seconds": 3.0,
            "survivors": [{"name": n, "status": "survived", "diff": "line 1: - a / + b", "reason": "equal"}
                          for n in survivors]}


def test_a_run_of_one_module_replaces_its_rows_and_keeps_every_other_modules():
    m = _tool()
    full = "\n".join(m._md([_result("evaluator/pareto.py", ["evaluator.pareto.x_f__mutmut_1"]),
                            _result("evaluator/adaptive.py", ["evaluator.adaptive.x_old__mutmut_9"])],
                           "python bench/mutation.py"))
    kept = m.kept_from(full, ["evaluator/adaptive.py"])
    again = "\n".join(m._md([_result("evaluator/adaptive.py", ["evaluator.adaptive.x_new__mutmut_2"])],
                            "python bench/mutation.py evaluator/adaptive.py", kept))
    assert again.count("| `evaluator/pareto.py` |") == 1 and again.count("| `evaluator/adaptive.py` |") == 1
    assert "evaluator.pareto.x_f__mutmut_1" in again  # the other module's survivor stays
    assert "x_old__mutmut_9" not in again and "x_new__mutmut_2" in again  # this module's are replaced
    assert "the rows of the other modules are from the previous run" in again
    assert m.kept_from(full, ["evaluator/pareto.py", "evaluator/adaptive.py"])[:2] == ([], [])
    assert m.kept_from("no section here", ["evaluator/pareto.py"]) == ([], [], "")
