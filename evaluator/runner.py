"""The Runner: the one path from a RunConfig to stored, measured cells. CLI, app and jobs call ``run``.

The runner only combines the seams: for each (model, variant) it takes the variant's backend, refuses
what cannot work before anything loads (the backend's model kinds and devices, the variant's checks, the
task type's request kinds against what the backend serves), reuses stored cells (evaluator/cellkey.py),
loads once, and for each task lets the task type prepare a scoring pass that the measurement protocol
(evaluator/measure.py) measures. It never asks which library or which model kind it holds. A failing cell
is stored as failed with its reason (evaluator/failures.py); the grid goes on. Each cell is committed
when done, so a run killed at any point resumes by running it again. ``run`` returns the result; writing
outputs is the caller's (``evaluator.report.write_outputs``).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.backends import Backend, get_backend
from evaluator.cellkey import KeyContext, cell_key, reuse
from evaluator.config import RunConfig
from evaluator.environment import environment, fallback_fields
from evaluator.errors import FrugalError, ModelNotAvailable, VariantNotApplicable
from evaluator.executors import get_executor
from evaluator.failures import describe
from evaluator.measure import Measured, energy_per_item, idle_power_w, measure, phase_figures
from evaluator.meters import Meter, MeterOptions, create_meter
from evaluator.meters.estimate import cpu_model
from evaluator.models import ModelSpec, get_spec, load_registry, registry_source, resolve
from evaluator.pareto import mark_cells, suite_points
from evaluator.records import CellResult, ItemRecord, RunResult
from evaluator.stats import wilson_interval
from evaluator.store import Store, now_iso
from evaluator.suite import Suite, load_suite
from evaluator.tasks import ScoringOptions, Task, get_task_type
from evaluator.variants import Composite, ModelInfo, resolve_variant

Event = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """The validated grid, before any model is loaded."""

    suites: tuple[Suite, ...]
    models: tuple[ModelSpec, ...]
    variants: tuple[Composite, ...]

    @property
    def n_cells(self) -> int:
        """Number of (task, model, variant) cells."""
        return sum(len(s.tasks) for s in self.suites) * len(self.models) * len(self.variants)

    @property
    def tasks(self) -> list[Task]:
        """Every task of every suite, in order."""
        return [t for s in self.suites for t in s.tasks]


def plan(config: RunConfig) -> Plan:
    """Load suites, models and variants; every bad input raises here, before anything is written."""
    from evaluator.config import check_unique_models

    config.validate()
    path, why = registry_source(config.models_file)
    registry = load_registry(path, named=why != "packaged default")
    suites = tuple(load_suite(s) for s in dict.fromkeys(config.suites))
    models = tuple(get_spec(m, registry) for m in dict.fromkeys(config.models))
    check_unique_models(models, registry)
    variants = tuple(resolve_variant(v) for v in dict.fromkeys(config.variants))
    cells = {f"{m.name}:{v.name}" for m in models for v in variants}
    refs = (*config.gates.require_on_frontier, *([config.gates.baseline] if config.gates.baseline else []))
    for ref in refs:
        if ref not in cells:
            raise FrugalError(f"gate refers to {ref!r}, which is not in this run's grid "
                              f"(models x variants: {', '.join(sorted(cells))})")
    names = [s.name for s in suites]
    if len(set(names)) != len(names):
        raise FrugalError(f"two suites share a name: {names}")
    return Plan(suites, models, variants)


@dataclass
class _Runtime:
    """A backend as this run uses it: its device and thread count, set once."""

    backend: Backend
    device: str
    threads: int


@dataclass
class _Ctx:
    config: RunConfig
    store: Store
    run_id: str
    meter: Meter
    g_per_kwh: float
    emit: Callable[[Event], None]
    runtimes: dict[str, _Runtime]
    idle_w: float = 0.0
    cancel: threading.Event | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def run(config: RunConfig, on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None) -> RunResult:
    """Run the grid; store each cell as it finishes; return the run."""
    from evaluator.carbon import grid_intensity

    emit = on_event or (lambda _e: None)
    the_plan = plan(config)
    runtimes = {}
    for name in dict.fromkeys(v.backend for v in the_plan.variants):
        b = get_backend(name)
        runtimes[name] = _Runtime(b, b.pick_device(config.device), b.set_threads(config.threads or b.default_threads()))
    first = next(iter(runtimes.values()))
    g_per_kwh, carbon_source = grid_intensity(config.country, config.grid_intensity)
    meter = create_meter(config.meter, MeterOptions(watts_per_core=config.watts_per_core, country=config.country))
    env = environment(first.threads, first.device, (r.backend for r in runtimes.values()))
    store = Store(config.store)
    meter_ctx: dict[str, Any] = {**meter.context(), "idle_power_w": None,
                                 "carbon": {"g_per_kwh": g_per_kwh, "source": carbon_source, "pue": config.pue}}
    run_id = store.create_run(config.to_dict(), the_plan.n_cells, env, meter_ctx)
    emit({"type": "start", "run_id": run_id, "cells": the_plan.n_cells, "store": str(store.path)})
    ctx = _Ctx(config, store, run_id, meter, g_per_kwh, emit, runtimes, cancel=cancel)
    ctx.idle_w = idle_power_w(meter, config.idle_s) if meter.is_counter else 0.0
    meter_ctx["idle_power_w"] = ctx.idle_w
    meter_ctx["idle_note"] = ("measured before the run" if meter.is_counter else
                              "0: the estimate counts only this process's CPU time, so idle draw is excluded")
    store.update_run(run_id, meter_json=meter_ctx)
    try:
        get_executor(config.executor).run_groups(ctx, the_plan, _Hooks)
    except KeyboardInterrupt:
        store.update_run(run_id, status="interrupted", finished_at=now_iso())
        raise
    except FrugalError:  # the executor refused (no cluster, a resource missing): the run says so
        store.update_run(run_id, status="failed", finished_at=now_iso())
        raise
    finally:
        meter.close()
    cells = tuple(store.cells(run_id))
    fronts = suite_points(cells)
    cells = mark_cells(cells, fronts)
    status = "cancelled" if ctx.cancelled() else "finished"
    if status == "finished" and any(c.status != "ok" for c in cells):
        status = "finished-with-failures"
    store.update_run(run_id, status=status, finished_at=now_iso())
    emit({"type": "end", "run_id": run_id, "status": status})
    return RunResult(run_id, str(store.path), cells, fronts, env, meter_ctx, status)


def _worker_ctx(config: RunConfig, variant: Composite, run_id: str, idle_w: float, g_per_kwh: float, store: Any,
                emit: Callable[[Event], None], threads: int) -> tuple[_Ctx, _Runtime]:
    """The context a group runs in on a worker (its own backend runtime and meter; the store a proxy)."""
    backend = get_backend(variant.backend)
    rt = _Runtime(backend, backend.pick_device(config.device), backend.set_threads(threads))
    meter = create_meter(config.meter, MeterOptions(watts_per_core=config.watts_per_core, country=config.country))
    return _Ctx(config, store, run_id, meter, g_per_kwh, emit, {variant.backend: rt}, idle_w), rt


def _run_group(ctx: _Ctx, tasks: list[Task], spec: ModelSpec, variant: Composite) -> None:
    """One (model, variant): refuse or reuse what can be, load once, measure each remaining task."""
    rt = ctx.runtimes[variant.backend]
    names = {"model": spec.name, "variant": variant.name}
    try:
        rt.backend.check(spec, variant, rt.device)
        variant.check(ModelInfo(spec.name, spec.kind, rt.device))
        resolved = resolve(spec)
    except ModelNotAvailable as exc:
        return _fail_all(ctx, [(t, "") for t in tasks], names, f"model not available: {exc}")
    except (VariantNotApplicable, FrugalError) as exc:
        return _fail_all(ctx, [(t, "") for t in tasks], names, str(exc))
    kctx = KeyContext(resolved.fingerprint, ctx.meter.name, rt.device, rt.threads, cpu_model(), rt.backend.name,
                      rt.backend.version(), f"{spec.name}@{resolved.location}" if resolved.origin == "path" else None)
    todo: list[tuple[Task, str]] = []
    serves = rt.backend.serves(spec.kind)
    for t in tasks:
        key = cell_key(ctx.config, variant, t, kctx)
        ttype = get_task_type(t.type)
        if not serves.intersection(ttype.kinds):
            _store_failed(ctx, t, names, f"refused before loading: {spec.name} ({spec.kind}) cannot do task type "
                                         f"{t.type}, which needs {' or '.join(ttype.kinds)} requests; backend "
                                         f"{rt.backend.name} serves only {', '.join(sorted(serves)) or 'none'} for "
                                         f"{spec.kind} models", key)
            continue
        if ctx.config.force or not _reused(ctx, t, key, names):
            todo.append((t, key))
    if not todo or ctx.cancelled():
        return None
    ctx.emit({"type": "load", **names, "backend": rt.backend.name})
    t0 = time.perf_counter()
    loaded, failure = None, "load failed"
    try:
        loaded = rt.backend.load(resolved, variant, rt.device)
    except (VariantNotApplicable, FrugalError) as exc:
        failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - any load failure (MemoryError too) becomes a failed cell
        failure = f"load failed: {describe(exc, rt.backend.oom_types())}"
    if loaded is None:
        # Out of the except block, the failed load's traceback (whose frames hold the half-built model) is
        # gone: collect it so the memory is back before the store is written and the next model loads.
        gc.collect()
        return _fail_all(ctx, todo, names, failure)
    load_s = time.perf_counter() - t0
    footprint = loaded.footprint()
    measured: set[str] = set()
    try:
        for t, key in todo:
            if ctx.cancelled():
                return None
            if key in measured and _reused(ctx, t, key, names):  # same content twice in one run (a renamed copy)
                continue
            measured.add(key)
            ctx.emit({"type": "cell-start", "suite": t.suite, "task": t.name, **names})
            error = None
            try:
                cell, items = _measure_cell(ctx, loaded, t, variant, key, rt, load_s, footprint)
                ctx.store.add_cell(ctx.run_id, cell, items)
            except Exception as exc:  # noqa: BLE001 - one failed cell never loses the others
                error = describe(exc, rt.backend.oom_types())
            if error is not None:
                gc.collect()  # free what the failed pass allocated (its traceback is gone) before writing
                _store_failed(ctx, t, names, error, key)
                continue
            ctx.emit({"type": "cell", "suite": t.suite, "task": t.name, **names, "status": "ok",
                      "accuracy": cell.accuracy, "energy_j": cell.energy_j, "energy_method": cell.energy_method,
                      "above_chance": cell.above_chance})
    finally:
        loaded.close()
        del loaded
        gc.collect()
    return None


def _reused(ctx: _Ctx, task: Task, key: str, names: dict[str, str]) -> bool:
    hit = reuse(ctx.store, ctx.run_id, key, task, names["model"], names["variant"])
    if hit is not None:
        ctx.emit({"type": "cell", "suite": task.suite, "task": task.name, **names, "status": "reused",
                  "accuracy": hit.accuracy, "energy_j": hit.energy_j, "above_chance": hit.above_chance})
    return hit is not None


def _measure_cell(ctx: _Ctx, loaded: Any, task: Task, variant: Composite, key: str, rt: _Runtime, load_s: float,
                  footprint: dict[str, Any]) -> tuple[CellResult, list[ItemRecord]]:
    cfg = ctx.config
    ttype = get_task_type(task.type)
    items = task.select(cfg.limit)
    scoring = ttype.prepare(task, items, loaded, ScoringOptions(cfg.batch_size, cfg.encoder_method))
    m = measure(ctx.meter, f"{task.suite}/{task.name}", scoring, cfg.repeats, ctx.idle_w)
    extra = ttype.cell_figures(task, m.scores, scoring)  # prompt format; generation: tokens, prefill/decode
    extra.update(phase_figures(m, extra.get("generated_tokens"), len(m.scores), scoring.batches))
    return _cell(ctx, task, ttype.metrics(task, m.scores, scoring.method), scoring.method, m, loaded.name,
                 variant, key, rt, load_s, footprint, extra), _item_records(m)


def _cell(ctx: _Ctx, task: Task, metrics: dict[str, float], method: str, m: Measured, model: str,
          variant: Composite, key: str, rt: _Runtime, load_s: float, footprint: dict[str, Any],
          extra: dict[str, Any] | None = None) -> CellResult:
    from evaluator.carbon import gco2e

    n_items = len(m.scores)
    n_correct = sum(s.correct for s in m.scores)
    lo, hi = wilson_interval(n_correct, n_items)
    chance = get_task_type(task.type).chance(task, task.select(ctx.config.limit))
    return CellResult(
        suite=task.suite, task=task.name, model=model, variant=variant.name, status="ok",
        n_items=n_items, n_correct=n_correct, accuracy=n_correct / n_items, accuracy_ci_low=lo, accuracy_ci_high=hi,
        chance_accuracy=chance, above_chance=lo > chance if chance > 0 else None,  # no guessing: no chance line
        metrics=metrics, scoring_method=method, task_type=task.type, backend=rt.backend.name,
        backend_version=rt.backend.version(), energy_j=m.energy_j, active_energy_j=m.active_energy_j,
        energy_ci_low=m.energy_ci_low, energy_ci_high=m.energy_ci_high,
        **energy_per_item(m.energy_j, n_items, n_correct),
        energy_method=m.energy_method, is_estimate=m.is_estimate, energy_components_j=m.components_j,
        energy_is_stable=m.unstable_reason is None, energy_unstable_reason=m.unstable_reason,
        gco2e=gco2e(m.energy_j, ctx.g_per_kwh, ctx.config.pue), duration_s=m.duration_s,
        duration_ci_low=m.duration_ci_low, duration_ci_high=m.duration_ci_high, cpu_time_s=m.cpu_time_s,
        passes_per_window=m.passes_per_window, repeats=m.repeats, deterministic=m.deterministic,
        params=footprint.get("params"), nonzero_params=footprint.get("nonzero_params"),
        size_mb=footprint.get("size_mb"), peak_rss_mb=m.peak_rss_mb, weight_dtype=footprint.get("weight_dtype"),
        load_s=load_s, variant_params=variant.record(), prompt_template=task.prompt,
        batch_size=ctx.config.batch_size, cell_key=key, **(extra or {}),
        **fallback_fields(variant, rt.device), weights_sha256=footprint.get("weights_sha256") or "")


def _item_records(m: Measured) -> list[ItemRecord]:
    return [ItemRecord(s.item_id, s.gold, s.pred, s.pred_norm, tuple(round(x, 5) for x in s.scores), s.target,
                       s.output, s.is_correct) for s in m.scores]


def _fail_all(ctx: _Ctx, todo: list[tuple[Task, str]], names: dict[str, str], error: str) -> None:
    for t, key in todo:
        _store_failed(ctx, t, names, error, key)


def _store_failed(ctx: _Ctx, task: Task, names: dict[str, str], error: str, key: str) -> None:
    cell = CellResult(suite=task.suite, task=task.name, status="failed", error=error, cell_key=key,
                      task_type=task.type, prompt_template=task.prompt, **names)
    ctx.store.add_cell(ctx.run_id, cell)
    ctx.emit({"type": "cell", "suite": task.suite, "task": task.name, **names, "status": "failed", "error": error})


class _Hooks:
    """What an executor calls back into (evaluator/executors.py never imports the runner)."""

    run_group = staticmethod(_run_group)
    worker_ctx = staticmethod(_worker_ctx)
    store_failed = staticmethod(_store_failed)


def load_result(source: str, store: str | None = None) -> RunResult:
    """A stored run (by id) or a results.json file, as a RunResult."""
    p = Path(source)
    if p.is_file():
        from evaluator.report import read_results_json

        return read_results_json(p)
    st = Store(store, readonly=True) if store is None or Path(store).exists() else None
    if st is None:
        raise FrugalError(f"no run {source!r}: the store {store} does not exist (and {source!r} is not a file)")
    run_row = st.get_run(source)
    cells = tuple(st.cells(source))
    fronts = suite_points(cells)
    return RunResult(source, str(st.path), mark_cells(cells, fronts), fronts, run_row["environment"],
                     run_row["meter"], run_row["status"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `frugal` command")
