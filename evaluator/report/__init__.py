"""The Report seam: results.json (versioned schema), results.csv, and the richer writers.

``write_outputs`` writes everything a run's ``--out DIR`` holds. Units are converted here only. Every
file is written atomically (evaluator/safeio.py): a kill or a full disk leaves the previous file intact.
``read_results_json`` checks a results.json field by field against the record types, so a hand-edited file
is a ValidationError naming the file and the field, never a traceback.
"""

from __future__ import annotations

import csv
import json
import math
import os
import types
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.errors import OutputError, ValidationError
from evaluator.pareto import recommend, suite_points
from evaluator.records import SCHEMA_VERSION, CellResult, ItemRecord, SuitePoint
from evaluator.safeio import atomic_write, atomic_writer
from evaluator.textsafe import csv_cell

if TYPE_CHECKING:
    from evaluator.config import RunConfig
    from evaluator.records import RunResult

CSV_COLUMNS = (
    "suite", "task", "model", "variant", "status", "error", "n_items", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "chance_accuracy", "above_chance", "scoring_method", "task_type", "backend",
    "backend_version", "energy_j", "active_energy_j", "energy_ci_low", "energy_ci_high",
    "energy_j_per_item", "energy_j_per_1k", "energy_j_per_correct", "energy_method", "is_estimate", "gco2e",
    "duration_s", "cpu_time_s", "repeats", "deterministic", "params", "nonzero_params", "size_mb", "peak_rss_mb",
    "weight_dtype", "reused", "on_frontier",
    # generated answers (empty for other task types) and the prompt format
    "num_fewshot", "chat_template", "max_new_tokens", "prompt_tokens", "generated_tokens", "truncation_rate",
    "energy_j_per_token", "prefill_energy_j", "decode_energy_j", "prefill_energy_share", "time_to_first_token_s",
    "decode_tokens_per_s", "decode_energy_j_per_token",
)


def results_dict(result: RunResult, tolerance_pts: float = 2.0) -> dict[str, Any]:
    """The results.json document."""
    fronts = {}
    for suite, pts in result.frontiers.items():
        rec = recommend(pts, tolerance_pts)
        fronts[suite] = {
            "points": [{k: v for k, v in asdict(p).items() if k != "outcomes"} for p in pts],
            "energy_methods": sorted({p.energy_method for p in pts}),
            "energy_is_estimate": any(p.is_estimate for p in pts),
            "recommendation": None if rec is None else {
                "text": rec.text, "model": rec.choice.model, "variant": rec.choice.variant,
                "best_model": rec.best.model, "best_variant": rec.best.variant,
                "accuracy_drop_pts": rec.accuracy_drop_pts, "energy_ratio": rec.energy_ratio,
                "tolerance_pts": rec.tolerance_pts,
                "runner_up": None if rec.runner_up is None else f"{rec.runner_up.model}:{rec.runner_up.variant}",
                "distinguishable": rec.distinguishable,
                "paired": None if rec.paired is None else {
                    "diff_pts": rec.paired.diff * 100, "p_value": rec.paired.p_value, "items": rec.paired.n_items,
                    "items_to_settle": rec.paired.items_to_settle()}},
        }
    per_item = cell_items(result)
    cells = []
    for cell in result.cells:
        c = cell.to_dict()
        c.pop("cell_key", None)
        recs = per_item.get((cell.suite, cell.task, cell.model, cell.variant))
        if recs:  # per-item answers: `frugal compare` runs a paired test on results.json files too
            c["items"] = {"id": [r.item_id for r in recs], "gold": [r.gold for r in recs],
                          "pred": [r.pred for r in recs], "pred_norm": [r.pred_norm for r in recs],
                          "target": [r.target for r in recs], "output": [r.output for r in recs],
                          "correct": [r.correct for r in recs]}
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
    try:
        return Store(result.store_path).run_items(result.run_id)
    except Exception:  # noqa: BLE001 - a store without this run: no items, never a failed report
        return {}


def _items_from_json(raw: Any, path: Path, where: str) -> list[ItemRecord]:
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
    n = len(cols["id"])
    texts = {}
    for k in ("target", "output"):  # schema 2; a schema-1 file has none
        texts[k] = raw.get(k, [""] * n)
        if not isinstance(texts[k], list) or len(texts[k]) != n or not all(isinstance(v, str) for v in texts[k]):
            raise bad(f"{k} must be a list of strings, one per item")
    correct = raw.get("correct", [None] * n)
    if not isinstance(correct, list) or len(correct) != n or not all(v is None or isinstance(v, bool) for v in correct):
        raise bad("correct must be a list of true/false, one per item")
    return [ItemRecord(i, g, p, m, (), t, o, c) for i, g, p, m, t, o, c in
            zip(cols["id"], cols["gold"], cols["pred"], cols["pred_norm"], texts["target"], texts["output"], correct,
                strict=True)]


def write_json(result: RunResult, path: Path, tolerance_pts: float = 2.0) -> Path:
    """Write results.json (atomically)."""
    return atomic_write(path, json.dumps(results_dict(result, tolerance_pts), indent=2, default=str))


def write_csv(result: RunResult, path: Path) -> Path:
    """Write results.csv: one row per cell (atomically); formula-looking text cells are neutralised."""
    with atomic_writer(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for c in result.cells:
            w.writerow({k: csv_cell(v) for k, v in c.to_dict().items()})
    return path


# ------------------------------------------------------------------------------- reading it back
_CELL_REQUIRED = ("suite", "task", "model", "variant", "status")
_MAX_RESULTS_BYTES = 512 * 1024 * 1024


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a CellResult field's annotation (str, int, float, bool, dict, X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if (origin or hint) is dict:
        args = typing.get_args(hint)
        return isinstance(value, dict) and all(isinstance(k, str) for k in value) and (
            not args or args[1] is Any or all(_type_ok(v, args[1]) for v in value.values()))
    if (origin or hint) in (tuple, list):
        return isinstance(value, list | tuple)
    return True  # a type this check does not know: accepted, as before


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _cell_from_json(raw: dict[str, Any], path: Path, i: int) -> CellResult:
    hints = typing.get_type_hints(CellResult)
    for name in _CELL_REQUIRED:
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ValidationError("required: a non-empty string", file=str(path), field=f"cells[{i}].{name}")
    for f in fields(CellResult):
        if f.name in raw and not _type_ok(raw[f.name], hints[f.name]):
            raise ValidationError(f"expected {_type_name(hints[f.name])} (a finite number where a number), got "
                                  f"{type(raw[f.name]).__name__} {str(raw[f.name])[:60]!r}", file=str(path),
                                  field=f"cells[{i}].{f.name}")
    cell = CellResult.from_dict(raw)
    if cell.status == "ok" and cell.accuracy is None:
        raise ValidationError("an ok cell needs an accuracy", file=str(path), field=f"cells[{i}].accuracy")
    return cell


def read_results_json(path: Path) -> RunResult:
    """Load a results.json back into a RunResult (frontiers recomputed from cells).

    Every field is checked: a file that was edited by hand, truncated or is not a results.json raises a
    ValidationError naming the file and the field (``cells[3].energy_j``), never a traceback.
    """
    from evaluator.pareto import mark_cells
    from evaluator.records import RunResult

    try:
        if Path(path).stat().st_size > _MAX_RESULTS_BYTES:
            raise ValidationError(f"larger than {_MAX_RESULTS_BYTES // 2**20} MB: not a results.json",
                                  file=str(path))
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        from evaluator.safeio import describe_os_error

        raise ValidationError(f"cannot read: {describe_os_error(exc)}", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValidationError(f"not a results.json: {str(exc)[:200]}", file=str(path)) from None
    if not isinstance(doc, dict) or doc.get("schema") != "frugal.results":
        raise ValidationError("not a Frugal results.json (missing schema: frugal.results)", file=str(path),
                              field="schema")
    version = doc.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValidationError("must be an integer", file=str(path), field="schema_version")
    if version > SCHEMA_VERSION:
        raise ValidationError(f"schema_version {doc['schema_version']} is newer than this Frugal understands",
                              file=str(path), field="schema_version")
    for name, kind in (("run_id", str), ("status", str), ("environment", dict), ("meter", dict)):
        if doc.get(name) is not None and not isinstance(doc[name], kind):
            raise ValidationError(f"must be {'a string' if kind is str else 'an object'}", file=str(path),
                                  field=name)
    carbon = (doc.get("meter") or {}).get("carbon")
    if carbon is not None and not isinstance(carbon, dict):
        raise ValidationError("must be an object", file=str(path), field="meter.carbon")
    raw_cells = doc.get("cells", [])
    if not isinstance(raw_cells, list) or not all(isinstance(c, dict) for c in raw_cells):
        raise ValidationError("cells must be a list of objects", file=str(path), field="cells")
    cells = tuple(_cell_from_json(c, Path(path), i) for i, c in enumerate(raw_cells))
    seen: dict[tuple[str, str, str, str], int] = {}
    for i, c in enumerate(cells):
        key = (c.suite, c.task, c.model, c.variant)
        if key in seen:
            raise ValidationError(f"the same (suite, task, model, variant) as cells[{seen[key]}]", file=str(path),
                                  field=f"cells[{i}]")
        seen[key] = i
    items = {(c.suite, c.task, c.model, c.variant): _items_from_json(raw["items"], Path(path), f"cells[{i}]")
             for i, (c, raw) in enumerate(zip(cells, raw_cells, strict=True)) if raw.get("items") is not None}
    fronts = suite_points(cells, items)
    return RunResult(doc.get("run_id") or Path(path).stem, str(path), mark_cells(cells, fronts), fronts,
                     doc.get("environment") or {}, doc.get("meter") or {}, doc.get("status") or "finished", items)


def write_outputs(result: RunResult, out: Path, config: RunConfig | None = None) -> list[Path]:
    """Everything `--out DIR` holds: results.json, results.csv, and the reports when available.

    All files are first written into a hidden staging folder inside ``out``, then each is moved into place
    with ``os.replace``: a full disk, a permission error or a kill while writing leaves every output of the
    previous run as it was (a write error raises OutputError naming the file; a stale staging folder left by a
    kill is removed by the next write).
    """
    import shutil

    from evaluator.safeio import check_output_dir, describe_os_error, remove_stale_staging, staging_dir

    out = check_output_dir(Path(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        stage = staging_dir(out)
    except OSError as exc:
        raise OutputError(f"could not create {out}: {describe_os_error(exc)}", path=str(out)) from None
    tol = config.tolerance_pts if config else 2.0
    try:
        try:
            staged = [write_json(result, stage / "results.json", tol), write_csv(result, stage / "results.csv")]
            try:
                from evaluator.report.writers import write_reports
            except ImportError:
                pass
            else:
                staged += write_reports(result, stage, tol)
        except OutputError as exc:  # name the output, not its staging copy
            where = Path(exc.path) if exc.path else stage
            dest = out / where.relative_to(stage) if where.is_relative_to(stage) else where
            raise OutputError(str(exc).replace(str(where), str(dest)).replace(str(stage), str(out)),
                              path=str(dest)) from None
        final = []
        for f in staged:
            dest = out / f.relative_to(stage)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
            except OSError as exc:
                raise OutputError(f"could not write {dest}: {describe_os_error(exc)}", path=str(dest)) from None
            final.append(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


__all__ = ["CSV_COLUMNS", "SuitePoint", "cell_items", "read_results_json", "results_dict", "write_outputs"]
