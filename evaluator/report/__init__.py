"""The Report seam: results.json (versioned schema), results.csv, and the richer writers.

``write_outputs`` writes everything a run's ``--out DIR`` holds. Units are converted here only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.pareto import recommend, suite_points
from evaluator.records import SCHEMA_VERSION, CellResult, ItemRecord, SuitePoint

if TYPE_CHECKING:
    from evaluator.config import RunConfig
    from evaluator.runner import RunResult

CSV_COLUMNS = (
    "suite", "task", "model", "variant", "status", "error", "n_items", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "scoring_method", "energy_j", "active_energy_j", "energy_ci_low", "energy_ci_high",
    "energy_j_per_item", "energy_j_per_1k", "energy_j_per_correct", "energy_method", "is_estimate", "gco2e",
    "duration_s", "cpu_time_s", "repeats", "deterministic", "params", "nonzero_params", "size_mb", "peak_rss_mb",
    "weight_dtype", "reused", "on_frontier",
)


def results_dict(result: RunResult, tolerance_pts: float = 2.0) -> dict[str, Any]:
    """The results.json document."""
    fronts = {}
    for suite, pts in result.frontiers.items():
        rec = recommend(pts, tolerance_pts)
        fronts[suite] = {
            "points": [asdict(p) for p in pts],
            "energy_methods": sorted({p.energy_method for p in pts}),
            "energy_is_estimate": any(p.is_estimate for p in pts),
            "recommendation": None if rec is None else {
                "text": rec.text, "model": rec.choice.model, "variant": rec.choice.variant,
                "best_model": rec.best.model, "best_variant": rec.best.variant,
                "accuracy_drop_pts": rec.accuracy_drop_pts, "energy_ratio": rec.energy_ratio,
                "tolerance_pts": rec.tolerance_pts},
        }
    per_item = cell_items(result)
    cells = []
    for cell in result.cells:
        c = cell.to_dict()
        c.pop("cell_key", None)
        recs = per_item.get((cell.suite, cell.task, cell.model, cell.variant))
        if recs:  # per-item answers: `frugal compare` runs a paired test on results.json files too
            c["items"] = {"id": [r.item_id for r in recs], "gold": [r.gold for r in recs],
                          "pred": [r.pred for r in recs], "pred_norm": [r.pred_norm for r in recs]}
        cells.append(c)
    return {
        "schema": "frugal.results", "schema_version": SCHEMA_VERSION, "run_id": result.run_id,
        "status": result.status, "environment": result.environment, "meter": result.meter,
        "units": {"energy": "J", "duration": "s", "size": "MB",
                  "carbon": "gCO2e (derived: kWh x grid intensity x PUE)"},
        "cells": cells, "frontiers": fronts,
    }


def cell_items(result: RunResult) -> dict[tuple[str, str, str, str], list[ItemRecord]]:
    """Per-item predictions of the run's ok cells: those read from its results.json, else from its store.

    Empty when neither has them (a results.json written before items were included, or a deleted store).
    """
    if result.items is not None:
        return result.items
    from evaluator.store import Store, is_store_file

    if not is_store_file(result.store_path):
        return {}
    store = Store(result.store_path)
    out = {}
    for c in result.cells:
        if c.status == "ok":
            try:
                recs = store.items(result.run_id, c.suite, c.task, c.model, c.variant)
            except Exception:  # noqa: BLE001 - a store without this run: no items, never a failed report
                return {}
            if recs:
                out[(c.suite, c.task, c.model, c.variant)] = recs
    return out


def _items_from_json(raw: Any, path: Path, where: str) -> list[ItemRecord]:
    from evaluator.errors import ValidationError

    def bad(msg: str) -> ValidationError:
        return ValidationError(f"{where}.items: {msg}", file=str(path), field=f"{where}.items")

    if not isinstance(raw, dict):
        raise bad("expected an object with lists id, gold, pred, pred_norm")
    cols = {k: raw.get(k) for k in ("id", "gold", "pred")}
    cols["pred_norm"] = raw.get("pred_norm", cols["pred"])
    if not all(isinstance(v, list) for v in cols.values()):
        raise bad("id, gold, pred (and pred_norm) must be lists")
    if len({len(v) for v in cols.values()}) != 1:
        raise bad("id, gold, pred and pred_norm must have the same length")
    ints = [v for k in ("gold", "pred", "pred_norm") for v in cols[k]]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        raise bad("gold, pred and pred_norm must hold integers (choice indices)")
    if not all(isinstance(v, str) for v in cols["id"]) or len(set(cols["id"])) != len(cols["id"]):
        raise bad("id must hold distinct strings")
    return [ItemRecord(i, g, p, n, ()) for i, g, p, n in
            zip(cols["id"], cols["gold"], cols["pred"], cols["pred_norm"], strict=True)]


def write_json(result: RunResult, path: Path, tolerance_pts: float = 2.0) -> Path:
    """Write results.json."""
    path.write_text(json.dumps(results_dict(result, tolerance_pts), indent=2, default=str))
    return path


def write_csv(result: RunResult, path: Path) -> Path:
    """Write results.csv: one row per cell."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for c in result.cells:
            w.writerow(c.to_dict())
    return path


def read_results_json(path: Path) -> RunResult:
    """Load a results.json back into a RunResult (frontiers recomputed from cells)."""
    from evaluator.errors import ValidationError
    from evaluator.runner import RunResult, _mark_cells

    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"not a results.json: {exc}", file=str(path)) from None
    if not isinstance(doc, dict) or doc.get("schema") != "frugal.results":
        raise ValidationError("not a Frugal results.json (missing schema: frugal.results)", file=str(path))
    if doc.get("schema_version", 0) > SCHEMA_VERSION:
        raise ValidationError(f"schema_version {doc['schema_version']} is newer than this Frugal understands",
                              file=str(path), field="schema_version")
    raw_cells = doc.get("cells", [])
    if not isinstance(raw_cells, list) or not all(isinstance(c, dict) for c in raw_cells):
        raise ValidationError("cells must be a list of objects", file=str(path), field="cells")
    cells = tuple(CellResult.from_dict(c) for c in raw_cells)
    items = {(c.suite, c.task, c.model, c.variant): _items_from_json(raw["items"], Path(path), f"cells[{i}]")
             for i, (c, raw) in enumerate(zip(cells, raw_cells, strict=True)) if raw.get("items") is not None}
    fronts = suite_points(cells)
    return RunResult(doc.get("run_id", Path(path).stem), str(path), _mark_cells(cells, fronts), fronts,
                     doc.get("environment", {}), doc.get("meter", {}), doc.get("status", "finished"), items)


def write_outputs(result: RunResult, out: Path, config: RunConfig | None = None) -> list[Path]:
    """Everything `--out DIR` holds: results.json, results.csv, and the reports when available."""
    out.mkdir(parents=True, exist_ok=True)
    tol = config.tolerance_pts if config else 2.0
    paths = [write_json(result, out / "results.json", tol), write_csv(result, out / "results.csv")]
    try:
        from evaluator.report.writers import write_reports
    except ImportError:
        return paths
    return paths + write_reports(result, out, tol)


__all__ = ["CSV_COLUMNS", "SuitePoint", "cell_items", "read_results_json", "results_dict", "write_outputs"]
