"""Real RunResult objects built from records (no model): inputs for the writers, readers and the CLI.

The writers under test are the real ones; only the numbers are made up, so a test of an output file costs
milliseconds instead of a model run.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.pareto import mark_cells, suite_points
from evaluator.records import CellResult, RunResult

#: The built-in suites' classification and multiple-choice tasks (not their generative ones), by suite: what
#: the demos and the tests that are not about generation run, so that they stay as fast as before the suites
#: grew. ``choice_tasks("finance", "health")`` gives the selectors of a run on those suites.
CHOICE = {"finance": ("headline-sentiment", "numeracy"), "health": ("triage", "yes-no-maybe"),
          "climate": ("claim-evidence", "report-relevance")}


def choice_tasks(*suites: str) -> tuple[str, ...]:
    """The choice tasks of these built-in suites, as task selectors (a suite not built in adds none)."""
    return tuple(f"{s}/{t}" for s in suites for t in CHOICE.get(s, ()))


def cell(model: str = "minilm-l6", variant: str = "fp32", suite: str = "finance", task: str = "t1",
         accuracy: float = 0.75, energy_j: float = 2.0, **kw) -> CellResult:
    """An ok cell with plausible fields."""
    return CellResult(suite=suite, task=task, model=model, variant=variant, status="ok", n_items=8,
                      n_correct=round(8 * accuracy), accuracy=accuracy, accuracy_ci_low=max(0.0, accuracy - 0.2),
                      accuracy_ci_high=min(1.0, accuracy + 0.2), energy_j=energy_j, energy_j_per_item=energy_j / 8,
                      energy_j_per_1k=energy_j / 8 * 1000, energy_method="estimate", is_estimate=True,
                      duration_s=0.5, repeats=1, **kw)


def result(cells: list[CellResult], run_id: str = "20260101-000000-abcdef") -> RunResult:
    """A RunResult with frontiers computed by the real Pareto code."""
    fronts = suite_points(cells)
    return RunResult(run_id, "", mark_cells(cells, fronts), fronts, {"frugal": "test"},
                     {"name": "estimate", "carbon": {"g_per_kwh": 400, "source": "test", "pue": 1.0}}, "finished",
                     items={})


def two_models(run_id: str = "20260101-000000-abcdef", energy: float = 2.0) -> RunResult:
    """A run of two models on one suite of two tasks."""
    return result([cell("minilm-l6", task="t1", energy_j=energy), cell("minilm-l6", task="t2", energy_j=energy),
                   cell("smollm2-135m", task="t1", accuracy=0.5, energy_j=3 * energy),
                   cell("smollm2-135m", task="t2", accuracy=0.5, energy_j=3 * energy)], run_id)


def results_json(path: Path, res: RunResult) -> Path:
    """Write ``res`` as a results.json with the real writer; return the path."""
    from evaluator.report import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(res, path)


def edit_json(path: Path, fn) -> Path:
    """Load a JSON file, let ``fn(doc)`` edit it, write it back (a hand edit)."""
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path
