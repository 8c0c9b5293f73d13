"""The Runner: the one path from a RunConfig to stored, measured cells. CLI and app call ``run``.

Per cell (task x model x variant): prepare outside the window (tokenise; train the encoder probe),
warm up on one batch, then measure ``repeats`` windows, each repeating the scoring pass until the
meter's minimum window is reached. Accuracy comes from the first pass; later passes must agree
(``deterministic``). A failing cell is stored as failed with its reason (load failed, out of memory,
non-finite outputs (NaN/inf), ...); the grid goes on. Each cell is committed when done, so a run killed
at any point resumes by running it again: finished cells are reused from the store.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evaluator import metrics as metric_registry
from evaluator.config import RunConfig
from evaluator.errors import FrugalError, ModelNotAvailable, VariantNotApplicable
from evaluator.meters import Meter, MeterOptions, create_meter
from evaluator.models import ModelSpec, default_registry_path, get_spec, load_registry, resolve
from evaluator.pareto import suite_points
from evaluator.records import SCHEMA_VERSION, CellResult, ItemRecord, SuitePoint
from evaluator.stats import mean_ci, wilson_interval
from evaluator.store import Store, now_iso
from evaluator.suite import Suite, Task, load_suite
from evaluator.variants import Composite, resolve_variant

Event = dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    """What a finished run returns (the store holds the same)."""

    run_id: str
    store_path: str
    cells: tuple[CellResult, ...]
    frontiers: dict[str, list[SuitePoint]]
    environment: dict[str, Any]
    meter: dict[str, Any]
    status: str
    #: Per-item predictions by (suite, task, model, variant), when the result was read from a results.json
    #: that carries them; None: look them up in the store at ``store_path``.
    items: dict[tuple[str, str, str, str], list[ItemRecord]] | None = None

    @property
    def failed(self) -> list[CellResult]:
        """Cells that failed."""
        return [c for c in self.cells if c.status != "ok"]


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


def plan(config: RunConfig) -> Plan:
    """Load suites, models and variants; every bad input raises here, before anything is written."""
    config.validate()
    registry = load_registry(config.models_file or default_registry_path())
    suites = tuple(load_suite(s) for s in dict.fromkeys(config.suites))
    models = tuple(get_spec(m, registry) for m in dict.fromkeys(config.models))
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


def environment(threads: int, device: str) -> dict[str, Any]:
    """Hardware and software context stored with every run."""
    import torch
    import transformers

    from evaluator import __version__
    from evaluator.meters.estimate import cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "gpu": gpu, "device": device,
        "threads": threads, "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": transformers.__version__, "frugal": __version__,
        "date": now_iso(),
    }


def run(config: RunConfig, on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None) -> RunResult:
    """Run the grid; store each cell as it finishes; return the run."""
    import torch

    from evaluator.carbon import grid_intensity
    from evaluator.scoring import pick_device

    emit = on_event or (lambda _e: None)
    the_plan = plan(config)
    device = pick_device(config.device)
    threads = config.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g_per_kwh, carbon_source = grid_intensity(config.country, config.grid_intensity)
    meter = create_meter(config.meter, MeterOptions(watts_per_core=config.watts_per_core, country=config.country))
    env = environment(threads, device)
    store = Store(config.store)
    meter_ctx: dict[str, Any] = {**meter.context(), "idle_power_w": None,
                                 "carbon": {"g_per_kwh": g_per_kwh, "source": carbon_source, "pue": config.pue}}
    run_id = store.create_run(config.to_dict(), the_plan.n_cells, env, meter_ctx)
    emit({"type": "start", "run_id": run_id, "cells": the_plan.n_cells, "store": str(store.path)})
    idle_w = _idle_power(meter, config.idle_s) if meter.is_counter else 0.0
    meter_ctx["idle_power_w"] = idle_w
    meter_ctx["idle_note"] = ("measured before the run" if meter.is_counter else
                              "0: the estimate counts only this process's CPU time, so idle draw is excluded")
    store.update_run(run_id, meter_json=meter_ctx)
    ctx = _CellContext(config, store, run_id, meter, idle_w, g_per_kwh, device, emit)
    status = "finished"
    try:
        for spec in the_plan.models:
            for variant in the_plan.variants:
                if cancel is not None and cancel.is_set():
                    status = "cancelled"
                    break
                _run_model_variant(ctx, the_plan, spec, variant, cancel)
            if status == "cancelled":
                break
    except KeyboardInterrupt:
        store.update_run(run_id, status="interrupted", finished_at=now_iso())
        raise
    finally:
        meter.close()
    if cancel is not None and cancel.is_set():
        status = "cancelled"
    cells = tuple(store.cells(run_id))
    fronts = suite_points(cells)
    cells = _mark_cells(cells, fronts)
    if any(c.status != "ok" for c in cells) and status == "finished":
        status = "finished-with-failures"
    store.update_run(run_id, status=status, finished_at=now_iso())
    emit({"type": "end", "run_id": run_id, "status": status})
    result = RunResult(run_id, str(store.path), cells, fronts, env, meter_ctx, status)
    if config.out:
        from evaluator.report import write_outputs

        write_outputs(result, Path(config.out), config)
    return result


def _mark_cells(cells: tuple[CellResult, ...], fronts: dict[str, list[SuitePoint]]) -> tuple[CellResult, ...]:
    on = {(p.suite, p.model, p.variant) for pts in fronts.values() for p in pts if p.on_frontier}
    return tuple(replace(c, on_frontier=(c.suite, c.model, c.variant) in on) for c in cells)


def _idle_power(meter: Meter, seconds: float) -> float:
    if seconds <= 0:
        return 0.0
    meter.begin("idle")
    time.sleep(seconds)
    m = meter.end("idle")
    return m.power_w or 0.0


@dataclass
class _CellContext:
    config: RunConfig
    store: Store
    run_id: str
    meter: Meter
    idle_w: float
    g_per_kwh: float
    device: str
    emit: Callable[[Event], None]


def cell_key(config: RunConfig, fingerprint: str, variant: Composite, task: Task, meter: Meter, device: str,
             threads: int, model: str | None = None) -> str:
    """Same weights, variant, task data, scoring and measurement setup -> same key -> reusable.

    ``model`` (name and folder of a model given by a local path) joins the key when the weights fingerprint
    alone cannot tell two models apart: a folder's fingerprint is file sizes and times, which two folders
    sharing weights (links) but not config.json can have in common.
    """
    from evaluator.meters.estimate import cpu_model

    payload = {"schema": SCHEMA_VERSION, "weights": fingerprint, "variant": variant.record(),
               "task": task.fingerprint(config.limit), "batch": config.batch_size, "repeats": config.repeats,
               "encoder_method": config.encoder_method, "meter": meter.name, "device": device,
               "threads": threads, "cpu": cpu_model(), "watts_per_core": config.watts_per_core,
               "pue": config.pue, "grid": config.grid_intensity, "country": config.country}
    if model is not None:
        payload["model"] = model
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _run_model_variant(ctx: _CellContext, the_plan: Plan, spec: ModelSpec, variant: Composite,
                       cancel: threading.Event | None) -> None:
    import torch

    tasks = [t for s in the_plan.suites for t in s.tasks]
    base = {"model": spec.name, "variant": variant.name}
    try:
        resolved = resolve(spec)
        fingerprint = resolved.fingerprint
    except ModelNotAvailable as exc:
        for t in tasks:
            _store_failed(ctx, t, base, f"model not available: {exc}", "")
        return
    local = f"{spec.name}@{resolved.location}" if resolved.origin == "path" else None
    keys = {(t.suite, t.name): cell_key(ctx.config, fingerprint, variant, t, ctx.meter, ctx.device,
                                        torch.get_num_threads(), local) for t in tasks}
    todo = []
    for t in tasks:
        hit = None if ctx.config.force else ctx.store.find_reusable(keys[(t.suite, t.name)])
        if hit:
            orig_id, cell = hit
            ctx.store.add_cell(ctx.run_id, replace(cell, reused=True), reused_from=orig_id)
            ctx.emit({"type": "cell", "suite": t.suite, "task": t.name, **base, "status": "reused",
                      "accuracy": cell.accuracy, "energy_j": cell.energy_j})
        else:
            todo.append(t)
    if not todo:
        return
    ctx.emit({"type": "load", **base})
    t0 = time.perf_counter()
    lm, failure = None, "load failed"
    try:
        from evaluator.scoring import load

        lm = load(resolved, variant, ctx.device)
    except (VariantNotApplicable, FrugalError) as exc:
        failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - any load failure (MemoryError too) becomes a failed cell
        failure = f"load failed: {_describe(exc)}"
    if lm is None:
        # Out of the except block, the failed load's traceback (whose frames hold the half-built model) is
        # gone: collect it so the memory is back before the store is written and the next model loads.
        gc.collect()
        for t in todo:
            _store_failed(ctx, t, base, failure, keys[(t.suite, t.name)])
        return
    load_s = time.perf_counter() - t0
    footprint = _footprint(lm.model)
    try:
        for t in todo:
            if cancel is not None and cancel.is_set():
                return
            key, error = keys[(t.suite, t.name)], None
            try:
                cell, items = _measure(ctx, lm, t, variant, key, load_s, footprint)
                ctx.store.add_cell(ctx.run_id, cell, items)
            except Exception as exc:  # noqa: BLE001 - one failed cell never loses the others
                error = _describe(exc)
            if error is not None:
                gc.collect()  # free what the failed pass allocated (its traceback is gone) before writing
                _store_failed(ctx, t, base, error, key)
                continue
            ctx.emit({"type": "cell", "suite": t.suite, "task": t.name, **base, "status": "ok",
                      "accuracy": cell.accuracy, "energy_j": cell.energy_j, "energy_method": cell.energy_method})
    finally:
        del lm
        gc.collect()


#: Messages of allocation failures that libraries raise as RuntimeError/OSError rather than MemoryError
#: (torch's CPU allocator: "DefaultCPUAllocator: can't allocate memory"; mmap/ENOMEM: "Cannot allocate memory").
_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "std::bad_alloc", "failed to allocate")


def _is_oom(exc: BaseException) -> bool:
    """Say whether ``exc`` (or an exception it was raised from) is an allocation failure."""
    import torch

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, torch.OutOfMemoryError | MemoryError):
            return True
        if isinstance(e, OSError) and e.errno == errno.ENOMEM:
            return True
        if isinstance(e, RuntimeError | OSError) and any(m in str(e).lower() for m in _OOM_MARKERS):
            return True
        e = e.__cause__ or e.__context__
    return False


def _describe(exc: BaseException) -> str:
    from evaluator.scoring import NonFiniteOutputs

    if isinstance(exc, NonFiniteOutputs):
        return str(exc)
    if _is_oom(exc):
        return f"out of memory ({type(exc).__name__}): {' '.join(str(exc).split())}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _store_failed(ctx: _CellContext, task: Task, base: dict[str, str], error: str, key: str) -> None:
    cell = CellResult(suite=task.suite, task=task.name, status="failed", error=error, cell_key=key,
                      prompt_template=task.prompt, **base)
    ctx.store.add_cell(ctx.run_id, cell)
    ctx.emit({"type": "cell", "suite": task.suite, "task": task.name, **base, "status": "failed", "error": error})


def _footprint(model: Any) -> dict[str, Any]:
    try:
        from evaluator.variants.footprint import param_counts, serialized_size_mb, weight_dtype
    except ImportError:  # pragma: no cover - footprint helpers ship with the variants
        return {}
    out: dict[str, Any] = {}
    try:
        out["params"], out["nonzero_params"] = param_counts(model)
        size = serialized_size_mb(model)
        out["size_mb"] = size[0] if isinstance(size, tuple) else size
        out["weight_dtype"] = weight_dtype(model)
    except Exception as exc:  # noqa: BLE001 - footprint is informative, never fatal
        out["footprint_error"] = str(exc)
    return out


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _measure(ctx: _CellContext, lm: Any, task: Task, variant: Composite, key: str, load_s: float,
             footprint: dict[str, Any]) -> tuple[CellResult, list[ItemRecord]]:
    from evaluator.carbon import gco2e
    from evaluator.scoring import check_finite, encode_requests, prepare_encoder, score_causal, score_encoder

    cfg = ctx.config
    items = task.select(cfg.limit)
    if lm.kind == "causal-lm":
        reqs = encode_requests(lm.tokenizer, task, items)
        method = "loglik"

        def score(sub: Any = items, rq: Any = reqs) -> list:
            return score_causal(lm, task, sub, cfg.batch_size, rq)

        warm = lambda: score(items[: cfg.batch_size], reqs[: cfg.batch_size])  # noqa: E731
    else:
        plan_ = prepare_encoder(lm, task, cfg.encoder_method)
        method = plan_.method

        def score(sub: Any = items) -> list:
            return score_encoder(lm, task, sub, plan_, cfg.batch_size * 2)

        warm = lambda: score(items[: cfg.batch_size * 2])  # noqa: E731
    warm()
    _reset_peak_rss()
    energies, durations, cpu_times, passes = [], [], [], 1
    comp_sum: dict[str, float] = {}
    unstable: list[str] = []
    first, deterministic, last_m = None, True, None
    for r in range(cfg.repeats):
        ctx.meter.begin(f"{task.suite}/{task.name}:{r}")
        t_start = time.perf_counter()
        n = 0
        while True:
            scores = score()
            check_finite([x for s in scores for x in s.scores], "scores")  # never score NaN/inf silently
            n += 1
            if time.perf_counter() - t_start >= ctx.meter.min_window_s:
                break
        m = ctx.meter.end(f"{task.suite}/{task.name}:{r}")
        last_m = m
        passes = n
        if first is None:
            first = scores
        elif [s.pred for s in scores] != [s.pred for s in first]:
            deterministic = False
        energies.append((m.energy_j or 0.0) / n)
        durations.append(m.duration_s / n)
        cpu_times.append(m.cpu_time_s / n)
        for k, v in dict(m.components_j).items():  # per pass, averaged over the repeats below
            comp_sum[k] = comp_sum.get(k, 0.0) + v / n
        if not m.is_stable:
            unstable.append(m.unstable_reason or f"repeat {r} unstable")
    assert first is not None and last_m is not None
    preds, golds = [s.pred for s in first], [s.gold for s in first]
    n_items = len(first)
    n_correct = sum(p == g for p, g in zip(preds, golds, strict=True))
    acc = n_correct / n_items
    lo, hi = wilson_interval(n_correct, n_items)
    mvals: dict[str, float] = {}
    for name in task.metrics:
        mvals[name] = metric_registry.compute(name, preds, golds)
    if lm.kind == "causal-lm":
        mvals["acc_norm"] = sum(s.correct_norm for s in first) / n_items
    e_mean, e_lo, e_hi = mean_ci(energies)
    d_mean, d_lo, d_hi = mean_ci(durations)
    active = max(0.0, e_mean - ctx.idle_w * d_mean)
    comp = {k: v / cfg.repeats for k, v in comp_sum.items()}
    cell = CellResult(
        suite=task.suite, task=task.name, model=lm.name, variant=variant.name, status="ok",
        n_items=n_items, n_correct=n_correct, accuracy=acc, accuracy_ci_low=lo, accuracy_ci_high=hi,
        metrics=mvals, scoring_method=method, energy_j=e_mean, active_energy_j=active, energy_ci_low=e_lo,
        energy_ci_high=e_hi, energy_j_per_item=e_mean / n_items, energy_j_per_1k=e_mean / n_items * 1000,
        energy_j_per_correct=(e_mean / n_correct) if n_correct else None,
        energy_method=last_m.energy_method, is_estimate=last_m.is_estimate, energy_components_j=comp,
        energy_is_stable=not unstable, energy_unstable_reason="; ".join(dict.fromkeys(unstable)) or None,
        gco2e=gco2e(e_mean, ctx.g_per_kwh, cfg.pue), duration_s=d_mean, duration_ci_low=d_lo,
        duration_ci_high=d_hi, cpu_time_s=statistics.fmean(cpu_times), passes_per_window=passes,
        repeats=cfg.repeats, deterministic=deterministic if cfg.repeats > 1 else None,
        params=footprint.get("params"), nonzero_params=footprint.get("nonzero_params"),
        size_mb=footprint.get("size_mb"), peak_rss_mb=_peak_rss_mb(), weight_dtype=footprint.get("weight_dtype"),
        load_s=load_s, variant_params=variant.record(), prompt_template=task.prompt, batch_size=cfg.batch_size,
        cell_key=key)
    recs = [ItemRecord(s.item_id, s.gold, s.pred, s.pred_norm, tuple(round(x, 5) for x in s.scores)) for s in first]
    return cell, recs


def load_result(source: str, store: str | None = None) -> RunResult:
    """A stored run (by id) or a results.json file, as a RunResult."""
    p = Path(source)
    if p.is_file():
        from evaluator.report import read_results_json

        return read_results_json(p)
    st = Store(store)
    run_row = st.get_run(source)
    cells = tuple(st.cells(source))
    fronts = suite_points(cells)
    return RunResult(source, str(st.path), _mark_cells(cells, fronts), fronts, run_row["environment"],
                     run_row["meter"], run_row["status"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `frugal` command")
