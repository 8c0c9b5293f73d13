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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evaluator.backends import Backend, get_backend
from evaluator.cellkey import KeyContext, cell_key, extendable, reuse, setup_key
from evaluator.config import RunConfig
from evaluator.environment import environment, fallback_fields
from evaluator.errors import FrugalError, ModelNotAvailable, VariantNotApplicable
from evaluator.executors import get_executor
from evaluator.failures import describe
from evaluator.measure import (
    MIN_WINDOWS,
    Measured,
    Window,
    combine,
    energy_per_item,
    idle_power_w,
    measure,
    peak_rss_mb,
    phase_figures,
    reset_peak_rss,
    rss_mb,
)
from evaluator.meters import Meter, MeterOptions, create_meter
from evaluator.meters.estimate import cpu_model
from evaluator.models import ModelSpec, get_spec, load_registry, registry_source, resolve
from evaluator.pareto import frontier_tasks, mark_cells, suite_points
from evaluator.pool import Loaded, ModelPool
from evaluator.records import NOT_APPLICABLE, CellResult, ItemRecord, RunResult
from evaluator.stats import wilson_interval
from evaluator.store import Store, now_iso
from evaluator.suite import Suite, load_suite, select_tasks
from evaluator.tasks import ItemScore, ScoringOptions, Task, get_task_type
from evaluator.tasks.base import Item, items_digest
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
    suites = select_tasks(tuple(load_suite(s) for s in dict.fromkeys(config.suites)), config.tasks)
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
    #: (model, variant) -> what task types prepared for it this run (ScoringOptions.memo)
    memo: dict[tuple[str, str], dict[Any, Any]] = field(default_factory=dict)
    #: where this process's time went, by phase, in seconds (:data:`PHASES`)
    split: dict[str, float] = field(default_factory=dict)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def spent(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``phase`` of the run's time split."""
        self.split[phase] = self.split.get(phase, 0.0) + seconds


#: The phases of a run's wall time the runner records (``wall_split_s`` in the run's environment): scoring
#: in measured windows, model loads (with the variant's transform), the loaded model's footprint (parameter
#: counts and serialized size), the task types' set-up, warm-up batches, the measurement's bookkeeping
#: between windows, store writes and reads, the adaptive race's decisions; ``other`` is the rest.
PHASES = ("scoring", "load", "footprint", "prepare", "warm_up", "measure", "store", "race")


def wall_split(split: dict[str, float], wall_s: float) -> dict[str, float]:
    """The run's time split, rounded to 0.1 s, with ``wall`` and ``other`` (wall minus the phases).

    >>> wall_split({"scoring": 10.0, "load": 2.04}, 13.0)
    {'scoring': 10.0, 'load': 2.0, 'footprint': 0.0, 'prepare': 0.0, 'warm_up': 0.0, 'measure': 0.0, \
'store': 0.0, 'race': 0.0, 'other': 1.0, 'wall': 13.0}
    """
    out = {k: round(split.get(k, 0.0), 1) for k in PHASES}
    out["other"] = round(max(0.0, wall_s - sum(split.get(k, 0.0) for k in PHASES)), 1)
    out["wall"] = round(wall_s, 1)
    return out


def run(config: RunConfig, on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None) -> RunResult:
    """Run the grid; store each cell as it finishes; return the run."""
    from evaluator.carbon import grid_intensity

    emit = on_event or (lambda _e: None)
    t_run = time.perf_counter()
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
        if config.adaptive:
            _run_adaptive(ctx, the_plan)
        else:
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
    fronts = suite_points(cells, store.run_items(run_id))
    cells = mark_cells(cells, fronts)
    status = "cancelled" if ctx.cancelled() else "finished"
    if status == "finished" and any(c.status == "failed" for c in cells):
        status = "finished-with-failures"
    split = wall_split(ctx.split, time.perf_counter() - t_run)
    store.update_run(run_id, status=status, finished_at=now_iso(), environment_json={**env, "wall_split_s": split})
    emit({"type": "end", "run_id": run_id, "status": status, "wall_split_s": split})
    return RunResult(run_id, str(store.path), cells, fronts, env, meter_ctx, status)


def _worker_ctx(config: RunConfig, variant: Composite, run_id: str, idle_w: float, g_per_kwh: float, store: Any,
                emit: Callable[[Event], None], threads: int) -> tuple[_Ctx, _Runtime]:
    """The context a group runs in on a worker (its own backend runtime and meter; the store a proxy)."""
    backend = get_backend(variant.backend)
    rt = _Runtime(backend, backend.pick_device(config.device), backend.set_threads(threads))
    meter = create_meter(config.meter, MeterOptions(watts_per_core=config.watts_per_core, country=config.country))
    return _Ctx(config, store, run_id, meter, g_per_kwh, emit, {variant.backend: rt}, idle_w), rt


Selection = dict[tuple[str, str], tuple[Item, ...]]


def _run_group(ctx: _Ctx, tasks: list[Task], spec: ModelSpec, variant: Composite,
               selection: Selection | None = None, min_windows: int = MIN_WINDOWS, pool: ModelPool | None = None
               ) -> None:
    """One (model, variant): refuse or reuse what can be, load once, measure each remaining task.

    ``selection`` (adaptive rounds): the items of each (suite, task) to have scored, in order; tasks it
    leaves out are not run. Without it, each task's ``limit`` first items. A stored cell on a subset of
    those items (an earlier round, an earlier run) is extended with the rest rather than measured again.
    ``min_windows``: the measured windows a new cell needs (an extended one pools its stored windows).
    ``pool`` (adaptive rounds, evaluator/pool.py): take the model from there when it holds this (model,
    variant) already, let it free older models for room before a load, and give the model back to it when
    done instead of closing it.
    """
    rt = ctx.runtimes[variant.backend]
    names = {"model": spec.name, "variant": variant.name}
    if selection is not None:
        tasks = [t for t in tasks if (t.suite, t.name) in selection]
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
    todo: list[_Todo] = []
    serves = rt.backend.serves(spec.kind)
    for t in tasks:
        items = selection[(t.suite, t.name)] if selection is not None else t.select(ctx.config.limit)
        key = cell_key(ctx.config, variant, t, kctx, items)
        ttype = get_task_type(t.type)
        if not serves.intersection(ttype.kinds):
            _store_failed(ctx, t, names, f"not applicable: {spec.name} ({spec.kind}) cannot do task type {t.type}, "
                                         f"which needs {' or '.join(ttype.kinds)} requests; backend "
                                         f"{rt.backend.name} serves only {', '.join(sorted(serves)) or 'none'} for "
                                         f"{spec.kind} models (decided before loading)", key, NOT_APPLICABLE)
            continue
        if ctx.config.force or not _reused(ctx, t, key, names):
            setup = setup_key(ctx.config, variant, t, kctx)
            todo.append(_Todo(t, key, items, setup, None if ctx.config.force else extendable(ctx.store, setup, items)))
    if not todo or ctx.cancelled():
        return None
    mine = (spec.name, variant.name)
    entry = pool.take(mine) if pool is not None else None
    if entry is not None:  # still loaded from an earlier round
        ctx.emit({"type": "load", **names, "backend": rt.backend.name, "kept": True})
    else:
        if pool is not None:
            pool.make_room(mine)  # the memory is back before this model loads
        ctx.emit({"type": "load", **names, "backend": rt.backend.name})
        reset_peak_rss()
        rss0 = rss_mb()
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
            ctx.spent("load", time.perf_counter() - t0)
            return _fail_all(ctx, [(d.task, d.key) for d in todo], names, failure)
        load_s = time.perf_counter() - t0
        ctx.spent("load", load_s)
        peak = peak_rss_mb()
        if pool is not None and peak is not None and rss0 is not None:
            pool.record_need(mine, peak - rss0)
        t0 = time.perf_counter()
        memo = ctx.memo.setdefault(mine, {})
        if memo.get(_FOOTPRINT, (None,))[0] != resolved.fingerprint:  # the same weights: the same footprint
            memo[_FOOTPRINT] = (resolved.fingerprint, loaded.footprint())
        ctx.spent("footprint", time.perf_counter() - t0)
        # warmed: kinds of pass (score, generate) this loaded model has run: no warm-up again
        rss1 = rss_mb()
        entry = Loaded(mine, loaded, load_s, memo[_FOOTPRINT][1],
                       resident_mb=max(0.0, rss1 - rss0) if rss0 is not None and rss1 is not None else 0.0)
    loaded, load_s, footprint, warmed = entry.model, entry.load_s, entry.footprint, entry.warmed
    measured: set[str] = set()
    keep = False
    try:
        for d in todo:
            t, key = d.task, d.key
            if ctx.cancelled():
                return None
            if key in measured and _reused(ctx, t, key, names):  # same content twice in one run (a renamed copy)
                continue
            measured.add(key)
            ctx.emit({"type": "cell-start", "suite": t.suite, "task": t.name, **names,
                      "items": len(d.items), "extends": d.base[0].n_items if d.base else 0})
            error = None
            try:
                held = _held_by_others(pool, entry)
                ctx.meter.hold_rss(held)
                try:
                    cell, items = _measure_cell(ctx, loaded, d, variant, rt, load_s, footprint, min_windows, warmed)
                finally:
                    ctx.meter.hold_rss(0.0)
                if held:
                    cell = replace(cell, held_rss_mb=round(max(held, d.base[0].held_rss_mb if d.base else 0.0), 1))
                t0 = time.perf_counter()
                ctx.store.add_cell(ctx.run_id, cell, items)
                ctx.spent("store", time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - one failed cell never loses the others
                error = describe(exc, rt.backend.oom_types())
            if error is not None:
                gc.collect()  # free what the failed pass allocated (its traceback is gone) before writing
                _store_failed(ctx, t, names, error, key)
                continue
            ctx.emit({"type": "cell", "suite": t.suite, "task": t.name, **names, "status": "ok",
                      "accuracy": cell.accuracy, "energy_j": cell.energy_j, "energy_method": cell.energy_method,
                      "above_chance": cell.above_chance, "items": cell.n_items})
        keep = pool is not None
    finally:
        del loaded
        if keep and pool is not None:
            pool.put(entry)
        else:
            entry.close()
            gc.collect()
    return None


def _held_by_others(pool: ModelPool | None, entry: Loaded) -> float:
    """Resident memory (MB) the pool holds for other models while ``entry``'s cells are measured.

    At most the process's resident memory now less this model's own (a held model's pages may have been
    reclaimed since it loaded: never leave less than the cell's own model in its figure).
    """
    if pool is None or not len(pool):
        return 0.0
    now = rss_mb()
    return min(pool.held_mb(), max(0.0, now - entry.resident_mb)) if now is not None else pool.held_mb()


#: The key of a loaded model's footprint in its run memo (beside what task types prepared for it).
_FOOTPRINT = "frugal.footprint"


@dataclass(frozen=True)
class _Todo:
    """A cell to measure: its task, keys, the items to have scored, and a stored cell to extend (or None)."""

    task: Task
    key: str
    items: tuple[Item, ...]
    setup: str
    base: tuple[CellResult, list[ItemRecord]] | None = None


def _reused(ctx: _Ctx, task: Task, key: str, names: dict[str, str]) -> bool:
    hit = reuse(ctx.store, ctx.run_id, key, task, names["model"], names["variant"])
    if hit is not None:
        ctx.emit({"type": "cell", "suite": task.suite, "task": task.name, **names, "status": "reused",
                  "accuracy": hit.accuracy, "energy_j": hit.energy_j, "above_chance": hit.above_chance})
    return hit is not None


def _stored_measurement(cell: CellResult, recs: list[ItemRecord]) -> Measured:
    """A stored cell's measurement again (its item scores and windows), to pool with new items."""
    from evaluator.measure import summarise

    scores = [ItemScore(r.item_id, r.pred, r.pred_norm, r.gold, tuple(r.scores), r.target, r.output, r.is_correct)
              for r in recs]
    return summarise(scores, [Window.from_dict(w) for w in cell.energy_windows],
                     [Window.from_dict(w) for w in cell.prefill_windows], repeats=cell.repeats,
                     deterministic=cell.deterministic, energy_method=cell.energy_method,
                     is_estimate=cell.is_estimate,
                     unstable=[cell.energy_unstable_reason] if cell.energy_unstable_reason else [],
                     peak_rss=cell.peak_rss_mb, passes_per_window=cell.passes_per_window)


def _measure_cell(ctx: _Ctx, loaded: Any, todo: _Todo, variant: Composite, rt: _Runtime, load_s: float,
                  footprint: dict[str, Any], min_windows: int = MIN_WINDOWS,
                  warmed: set[str] | None = None) -> tuple[CellResult, list[ItemRecord]]:
    """Measure one cell; ``warmed``: the kinds of pass the loaded model has run (updated here)."""
    cfg, task = ctx.config, todo.task
    ttype = get_task_type(task.type)
    done = {r.item_id for r in todo.base[1]} if todo.base else set()
    new = [it for it in todo.items if it.id not in done]
    memo = ctx.memo.setdefault((loaded.name, variant.name), {})
    t0 = time.perf_counter()
    scoring = ttype.prepare(task, new, loaded, ScoringOptions(cfg.batch_size, cfg.encoder_method, memo))
    earlier = _stored_measurement(*todo.base) if todo.base else None
    kind = "generate" if scoring.prefill_items is not None else "score"  # the model's two kinds of pass
    warm = warmed is None or kind not in warmed
    t1 = time.perf_counter()
    if warm:
        scoring.warm()  # (measure's own warm-up, timed here)
    t2 = time.perf_counter()
    m = measure(ctx.meter, f"{task.suite}/{task.name}", scoring, cfg.repeats, ctx.idle_w,
                min_windows=max(1, min_windows - len(earlier.windows)) if earlier else min_windows, warm=False)
    t3 = time.perf_counter()
    if warmed is not None:
        warmed.add(kind)
    windows_s = sum(w.duration_s for w in m.windows) + sum(w.duration_s for w in m.prefill_windows)
    phases = {"prepare": t1 - t0, "warm_up": t2 - t1, "measure": max(0.0, t3 - t2 - windows_s)}
    for k, v in phases.items():
        ctx.spent(k, v)
    ctx.spent("scoring", windows_s)
    if todo.base:
        phases = {k: v + todo.base[0].phase_s.get(k, 0.0) for k, v in phases.items()}
    if earlier is not None:
        m = combine([earlier, m])
        order = {it.id: i for i, it in enumerate(todo.items)}
        m = replace(m, scores=sorted(m.scores, key=lambda sc: order[sc.item_id]))
    extra = ttype.cell_figures(task, m.scores, scoring)  # prompt format; generation: tokens, prefill/decode
    extra.update(phase_figures(m, extra.get("generated_tokens"), len(m.scores),
                               -(-len(m.scores) // max(1, scoring.chunk))))
    extra.update(setup_key=todo.setup, items_digest=items_digest(todo.items), warmed_up=warm,
                 phase_s={k: round(v, 3) for k, v in phases.items()},
                 extended_from_items=len(done), energy_windows=[w.to_dict() for w in m.windows],
                 prefill_windows=[w.to_dict() for w in m.prefill_windows])
    return _cell(ctx, task, todo.items, ttype.metrics(task, m.scores, scoring.method), scoring.method, m,
                 loaded.name, variant, todo.key, rt, load_s, footprint, extra), _item_records(m)


def _cell(ctx: _Ctx, task: Task, items: tuple[Item, ...], metrics: dict[str, float], method: str, m: Measured,
          model: str, variant: Composite, key: str, rt: _Runtime, load_s: float, footprint: dict[str, Any],
          extra: dict[str, Any] | None = None) -> CellResult:
    from evaluator.carbon import gco2e

    n_items = len(m.scores)
    n_correct = sum(s.correct for s in m.scores)
    lo, hi = wilson_interval(n_correct, n_items)
    chance = get_task_type(task.type).chance(task, items)
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


def _run_adaptive(ctx: _Ctx, the_plan: Plan) -> None:
    """Rounds over the grid (evaluator/adaptive.py): each round extends the cells still in their suite's race.

    Loaded models stay loaded between rounds as the machine's free memory allows (evaluator/pool.py: on an
    accelerator only the one a round ends with, which begins the next), and a (model, variant) whose points
    have all stopped is freed after the round that stopped the last of them. After each round, per suite,
    points confidently out of contention stop (off the frontier, below the best, no better than the leader),
    and a suite whose leader is the last point racing is decided; stopped cells record how many items they
    saw and why they stopped.
    """
    from evaluator.adaptive import order_items, race_bounds

    cfg = ctx.config
    orders = {(t.suite, t.name): tuple(order_items(t.select(cfg.limit), cfg.seed, f"{t.suite}/{t.name}"))
              for t in the_plan.tasks}
    bounds = {k: race_bounds(len(v), cfg.rounds, cfg.batch_size) for k, v in orders.items()}
    stopped: dict[tuple[str, str, str], str] = {}
    on_cpu = all(rt.device == "cpu" for rt in ctx.runtimes.values())

    def freed(entry: Loaded, why: str) -> None:
        model, variant = entry.key  # type: ignore[misc]
        ctx.emit({"type": "unload", "model": model, "variant": variant, "reason": why})

    pool = ModelPool(max_models=None if on_cpu else 1, on_free=freed)
    try:
        _race(ctx, the_plan, orders, bounds, stopped, pool)
    finally:
        pool.release()
    for t in the_plan.tasks:  # how many items each task has, beside how many each cell saw
        for m in the_plan.models:
            for v in the_plan.variants:
                ctx.store.update_cells(ctx.run_id, t.suite, m.name, v.name, t.name,
                                       items_available=len(orders[(t.suite, t.name)]))


def _race(ctx: _Ctx, the_plan: Plan, orders: dict[tuple[str, str], tuple[Item, ...]],
          bounds: dict[tuple[str, str], list[int]], stopped: dict[tuple[str, str, str], str], pool: ModelPool
          ) -> None:
    """The rounds of :func:`_run_adaptive`.

    Every other round runs the (model, variant) pairs in reverse, so that the pairs a round ends with are
    the first the next one needs: when memory runs short, the pool frees the pair used longest ago, which is
    the one the next round reaches last. After round 1, the points of a suite cheap enough to score whole
    (:func:`evaluator.adaptive.whole_points`, from their measured time per item) are scored on every item
    of the suite in round 2, once.
    """
    from evaluator.adaptive import race_round, race_tests

    cfg = ctx.config
    n_rounds = cfg.rounds
    points = [(s.name, m.name, v.name) for s in the_plan.suites for m in the_plan.models for v in the_plan.variants]
    n_points = len(the_plan.models) * len(the_plan.variants)
    pairs = [(spec, variant) for spec in the_plan.models for variant in the_plan.variants]
    # (suite, task, model, variant) to score on every item, once: the race's tasks of a cheap point
    whole: set[tuple[str, str, str, str]] = set()
    scored_whole: set[tuple[str, str, str, str]] = set()

    def items_for(t: Task, spec: ModelSpec, variant: Composite, r: int, grows: set[tuple[str, str]]
                  ) -> tuple[Item, ...] | None:
        key, cell = (t.suite, t.name), (t.suite, t.name, spec.name, variant.name)
        if (t.suite, spec.name, variant.name) in stopped or cell in scored_whole:
            return None
        if cell in whole:
            return orders[key]
        return orders[key][:bounds[key][r]] if key in grows else None

    for r in range(n_rounds):
        grows = {k for k, b in bounds.items() if b and (r == 0 or b[r] > b[r - 1])}
        if not grows and not whole - scored_whole:
            continue
        ctx.emit({"type": "round", "round": r + 1, "rounds": n_rounds,
                  "active": sum(p not in stopped for p in points)})
        for spec, variant in (pairs if r % 2 == 0 else pairs[::-1]):
            if ctx.cancelled():
                return
            sel = {(t.suite, t.name): its for t in the_plan.tasks
                   if (its := items_for(t, spec, variant, r, grows)) is not None}
            if sel:
                _run_group(ctx, the_plan.tasks, spec, variant, sel, pool=pool)
        scored_whole |= whole
        if r == n_rounds - 1:
            break
        t0 = time.perf_counter()
        cells, items = ctx.store.cells(ctx.run_id), ctx.store.run_items(ctx.run_id)
        ctx.spent("store", time.perf_counter() - t0)
        t0 = time.perf_counter()
        for suite in the_plan.suites:
            sizes = {t.name: len(orders[(t.suite, t.name)]) for t in the_plan.tasks if t.suite == suite.name}
            race = _race_points(suite, cells, items, stopped, sizes)
            # Holm: the points stopped so far give their share of alpha to those still racing (a point
            # that failed still counts: it leaves no share behind)
            racing = n_points - sum(k[0] == suite.name and not why.startswith("failed")
                                    for k, why in stopped.items())
            tests = race_tests(n_points, n_rounds, racing)
            for label, stop in race_round(race, cfg.tolerance_pts, tests).items():
                p = next(p for p in race if p.label == label)
                key = (suite.name, p.model, p.variant)
                stopped[key] = stop.reason
                ctx.store.update_cells(ctx.run_id, suite.name, p.model, p.variant, stopped_reason=stop.reason,
                                       stopped_after_round=r + 1)
                ctx.emit({"type": "stopped", "suite": suite.name, "model": p.model, "variant": p.variant,
                          "round": r + 1, "reason": stop.reason})
            if r == 0:  # what each point costs is known now: the cheap ones are scored whole next round
                _score_whole(ctx, suite, cells, sizes, stopped, whole)
        ctx.spent("race", time.perf_counter() - t0)
        for spec, variant in pairs:  # a pair out of every suite's race needs no memory any more
            if all((s.name, spec.name, variant.name) in stopped for s in the_plan.suites):
                pool.drop((spec.name, variant.name), f"stopped in every suite after round {r + 1}")
        if all(p in stopped for p in points):
            break


def _score_whole(ctx: _Ctx, suite: Suite, cells: list[CellResult], sizes: dict[str, int],
                 stopped: dict[tuple[str, str, str], str], whole: set[tuple[str, str, str, str]]) -> None:
    """Add to ``whole`` the race's tasks of the suite's racing points cheap enough to score on every item.

    Cost and items count the race's tasks only (those every point's frontier covers): a causal LM's
    generation task, which an encoder cannot do, is neither priced here nor scored whole.
    """
    from evaluator.adaptive import WHOLE_SHARE, whole_points

    race_tasks = frontier_tasks([c for c in cells if c.suite == suite.name], suite.name)[0] & set(sizes)
    spent: dict[tuple[str, str], list[float]] = {}
    for c in cells:
        if c.suite == suite.name and c.status == "ok" and c.task in race_tasks and c.n_items:
            acc = spent.setdefault((c.model, c.variant), [0.0, 0.0])
            acc[0] += c.duration_s or 0.0
            acc[1] += c.n_items
    per_item = {p: s / n for p, (s, n) in spent.items() if n}
    for model, variant in sorted(whole_points(per_item, sum(sizes[t] for t in race_tasks), ctx.config.rounds)):
        if (suite.name, model, variant) in stopped:
            continue
        whole.update((suite.name, t, model, variant) for t in race_tasks)
        ctx.emit({"type": "whole", "suite": suite.name, "model": model, "variant": variant,
                  "reason": f"its whole suite costs at most {WHOLE_SHARE:.0%} of one round of the suite's dearest "
                            "point: scored on every item next round, its accuracy then exact"})


def _race_points(suite: Suite, cells: list[CellResult], items: dict[tuple[str, str, str, str], list[ItemRecord]],
                 stopped: dict[tuple[str, str, str], str], sizes: dict[str, int] | None = None) -> list[Any]:
    """The suite's race points, on the tasks its frontier covers (``sizes``: each task's item count).

    A task some model cannot do (an encoder's generation task) is left out for every point, as the
    frontier leaves it out (evaluator/pareto.py); a point without an ok cell for each of the others (a
    failed cell) is out of the race.
    """
    from evaluator.adaptive import RacePoint

    mine = [c for c in cells if c.suite == suite.name]
    tasks = frontier_tasks(mine, suite.name)[0]
    chance = {(p.model, p.variant): p.above_chance for p in suite_points(mine).get(suite.name, [])}
    by_point: dict[tuple[str, str], list[CellResult]] = {}
    for c in mine:
        if c.task in tasks:
            by_point.setdefault((c.model, c.variant), []).append(c)
    out = []
    for (model, variant), cs in by_point.items():
        if {c.task for c in cs if c.status == "ok"} != tasks:
            if (suite.name, model, variant) not in stopped:
                stopped[(suite.name, model, variant)] = "failed: a task of the suite has no result"
            continue
        outcomes = {c.task: {r.item_id: r.correct for r in items.get((suite.name, c.task, model, variant), [])}
                    for c in cs}
        energy = sum(c.energy_j or 0.0 for c in cs) / max(1, sum(c.n_items for c in cs))
        out.append(RacePoint(model, variant, energy, outcomes, (suite.name, model, variant) not in stopped,
                             chance.get((model, variant)), sizes))
    return out


def _fail_all(ctx: _Ctx, todo: list[tuple[Task, str]], names: dict[str, str], error: str) -> None:
    for t, key in todo:
        _store_failed(ctx, t, names, error, key)


def _store_failed(ctx: _Ctx, task: Task, names: dict[str, str], error: str, key: str,
                  status: str = "failed") -> None:
    cell = CellResult(suite=task.suite, task=task.name, status=status, error=error, cell_key=key,
                      task_type=task.type, prompt_template=task.prompt, **names)
    ctx.store.add_cell(ctx.run_id, cell)
    ctx.emit({"type": "cell", "suite": task.suite, "task": task.name, **names, "status": status, "error": error})


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
    fronts = suite_points(cells, st.run_items(source))
    return RunResult(source, str(st.path), mark_cells(cells, fronts), fronts, run_row["environment"],
                     run_row["meter"], run_row["status"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `frugal` command")
