"""Planning a run before it starts: how long it will take here, how many items a difference needs, what a pull costs.

Time estimates come from what this machine has already measured: every stored run knows when each of its
cells was committed, how long the model took to load and how long one scoring pass took. From those,
per (model, variant, backend), :func:`measured_rates` derives

* ``load_s``: loading (and compressing) the model once;
* ``pass_s_per_item``: one scoring pass, per item;
* ``overhead_s``: the rest of a cell's wall time (tokenising, the encoder probe, the warm-up batch,
  writing the store), per task when known;
* ``startup_s``: a job's fixed cost (process start, imports, plan) from the job files.

:func:`estimate_grid` adds these up over a grid. A cell that would be reused from the store costs about
nothing: reuse is decided by the runner's cell key, which this module recomputes with
:func:`evaluator.cellkey.cell_key` from the stored run's device, threads and meter; when that cannot be
done (an older runner, a model that does not resolve), it falls back to an approximation: a stored ok cell
with the same suite, task, model, variant, item count, repeats and batch size on the same CPU counts as
reused. With nothing stored for a (model, variant), documented per-parameter rates are used instead
(:data:`DEFAULT_S_PER_ITEM_PER_MPARAM`), and variants that run on a fallback kernel on this CPU (no native
bf16/fp16 matmul, no VNNI for int8) are marked, with their slowdown as measured here when both the variant
and fp32 of the same model are stored, else the documented one.

Also pure helpers for the Run page: :func:`items_needed` (how many items a given accuracy difference
needs at 95 % confidence and 80 % power) and :func:`pull_estimate` (download size and rough time of a
model pull). Nothing here imports torch or streamlit.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean, median
from typing import Any

from evaluator.measure import MIN_WINDOWS, pass_chunks
from evaluator.stats import items_needed

# ------------------------------------------------------------------------------------ defaults
#: Seconds of one scoring pass per item and per million parameters, by model kind: fp32 eager PyTorch, from the
#: exhaustive run of docs/benchmarks.md §12 (every built-in test item, 2-core machine shared with a second run,
#: 2026-12-01): encoders 0.00029-0.00046 s/item/M (minilm-l6, mpnet-base), causal LMs 0.00048-0.00133
#: (smollm2-135m to qwen2.5-1.5b; larger models are slower per parameter). Used only when the store has no cell
#: of the model and variant yet; then the estimate says it is a rough default.
DEFAULT_S_PER_ITEM_PER_MPARAM = {"encoder": 0.0005, "causal-lm": 0.0012}
#: Seconds to load a model, per million parameters (plus 2 s), by kind, from the local safetensors cache.
DEFAULT_LOAD_S_PER_MPARAM = {"encoder": 0.05, "causal-lm": 0.01}
#: Seconds of a cell outside its warm-up and measured passes (tokenise, encoder probe, store) when unknown.
DEFAULT_CELL_OVERHEAD_S = {"encoder": 3.0, "causal-lm": 2.0}
#: A job's fixed cost when no job file says better: process start, torch/transformers imports, the plan,
#: writing the run (3-4 s measured on the same machine).
DEFAULT_STARTUP_S = 6.0
#: A generation item against a log-likelihood item of the same model, when this machine has not measured the
#: task: 3-shot prompts several times longer, up to max_new_tokens decode steps, and the prefill-only pass
#: that splits prefill from decode (docs/methodology.md). Calibrated on smollm2-135m and qwen2.5-0.5b here
#: (docs/benchmarks.md §13).
DEFAULT_GENERATION_FACTOR = 11.0
#: Parameters (millions) assumed for a model whose models.yaml entry gives none.
DEFAULT_MPARAMS = 100.0


@dataclass(frozen=True)
class Fallback:
    """A variant part that needs a CPU instruction set for its fast kernel (as the variant declares it)."""

    part: str
    needs: tuple[str, ...]  # any one of these /proc/cpuinfo flags gives the fast path
    slowdown: float  # documented slowdown vs fp32 without them
    why: str


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of this CPU (empty when /proc/cpuinfo cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fallback_parts(variant: str, flags: Iterable[str], device: str = "cpu") -> list[Fallback]:
    """The parts of a (composite) variant name that run on a slow fallback kernel on ``device`` with ``flags``.

    Each variant declares what its fast kernel needs (``Variant.cpu_needs`` / ``cpu_fallback``,
    evaluator/variants/base.py); this only asks them.
    """
    from evaluator.variants import VARIANTS, variant_class

    have = frozenset(flags)
    out = []
    for name in variant.split("+"):
        if name not in VARIANTS:
            continue
        v = variant_class(name)()
        if v.fallback(device, have):
            out.append(Fallback(name, v.cpu_needs, v.fallback_slowdown, v.fallback_why))
    return out


def mparams(params: Any) -> float:
    """'22.7M' / '1.5B' / 134500000 -> millions of parameters (DEFAULT_MPARAMS when unknown)."""
    if isinstance(params, int | float) and not isinstance(params, bool) and params > 0:
        return float(params) / 1e6 if params > 10_000 else float(params)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmMbBgG]?)\s*", str(params or ""))
    if not m:
        return DEFAULT_MPARAMS
    try:
        value = float(m.group(1))
    except ValueError:
        return DEFAULT_MPARAMS
    return value * {"k": 1e-3, "m": 1.0, "b": 1e3, "g": 1e3, "": 1e-6 if value > 10_000 else 1.0}[m.group(2).lower()]


# ---------------------------------------------------------------------------------- measured rates
@dataclass
class Rate:
    """What stored cells say about one (model, variant, backend) on this machine."""

    load_s: list[float] = field(default_factory=list)
    pass_s_per_item: list[float] = field(default_factory=list)  # choice / embedding cells
    gen_s_per_item: list[float] = field(default_factory=list)  # generation cells (task_type "generation")
    window_floor_s: list[float] = field(default_factory=list)  # passes x pass time when a meter window repeated
    overhead_s: list[float] = field(default_factory=list)
    overhead_by_task: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    pass_by_task: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def mean(self, name: str) -> float | None:
        """Mean of one list (None when empty)."""
        values = getattr(self, name)
        return fmean(values) if values else None


@dataclass(frozen=True)
class StoredCell:
    """An ok, measured (not reused) stored cell: enough to decide reuse and to derive rates."""

    run_id: str
    suite: str
    task: str
    model: str
    variant: str
    backend: str
    cell_key: str
    n_items: int
    repeats: int
    batch_size: int
    cpu: str | None
    device: str | None
    threads: int | None
    meter: str | None
    encoder_method: str | None
    backend_version: str = ""


@dataclass
class Rates:
    """Rates by (model, variant, backend), a job's startup cost, and the stored cells (for reuse)."""

    by_mvb: dict[tuple[str, str, str], Rate] = field(default_factory=dict)
    startup_s: list[float] = field(default_factory=list)
    cells: list[StoredCell] = field(default_factory=list)
    store: str = ""  # the store they were read from (extendable cells are looked up in it on demand)

    def startup(self) -> float:
        """Median job startup seen here, else the default."""
        if not self.startup_s:
            return DEFAULT_STARTUP_S
        return median(self.startup_s)


def _ts(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


def _backend(cfg: dict[str, Any], res: dict[str, Any]) -> str:
    return str(res.get("backend") or cfg.get("backend") or "torch")


def measured_rates(store_path: str | Path, jobs_dir: str | Path | None = None, max_runs: int = 50) -> Rates:
    """Read per-cell wall times and rates from the store's latest ``max_runs`` runs (read-only; never raises).

    A cell's wall time is the time between its commit and the previous commit of the same run (the first
    one counts from the run's creation); the first measured cell of a (model, variant) carries the load.
    """
    rates = Rates(store=str(store_path))
    path = Path(store_path)
    if not path.is_file():
        return rates
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return rates
    try:
        runs = db.execute("SELECT run_id, created_at, finished_at, config_json, environment_json, meter_json "
                          "FROM runs ORDER BY created_at DESC LIMIT ?", (max_runs,)).fetchall()
        run_created: dict[str, float] = {}
        tails: list[float] = []
        for run_id, created, finished, cfg_j, env_j, meter_j in runs:
            cfg, env, meter = (json.loads(x or "{}") for x in (cfg_j, env_j, meter_j))
            t_prev = _ts(created)
            if t_prev is None:
                continue
            run_created[run_id] = t_prev
            seen_mv: set[tuple[str, str]] = set()
            rows = db.execute("SELECT suite, task, model, variant, status, reused_from, result_json, created_at, "
                              "cell_key FROM cells WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
            for suite, task, model, variant, status, reused_from, res_j, c_at, key in rows:
                t = _ts(c_at)
                wall = None if t is None or t_prev is None else max(0.0, t - t_prev)
                t_prev = t if t is not None else t_prev
                if status != "ok" or reused_from is not None:
                    continue
                res = json.loads(res_j)
                n, dur = int(res.get("n_items") or 0), res.get("duration_s")
                if n <= 0 or not dur:
                    continue
                backend = _backend(cfg, res)
                reps, passes = int(res.get("repeats") or cfg.get("repeats") or 1), int(res.get("passes_per_window")
                                                                                      or 1)
                rates.cells.append(StoredCell(
                    run_id, suite, task, model, variant, backend, key, n, reps,
                    int(res.get("batch_size") or cfg.get("batch_size") or 0), env.get("cpu_model"),
                    env.get("device"), env.get("threads"), meter.get("meter") or cfg.get("meter"),
                    cfg.get("encoder_method"), str(res.get("backend_version") or "")))
                rate = rates.by_mvb.setdefault((model, variant, backend), Rate())
                (rate.gen_s_per_item if res.get("task_type") == "generation" else rate.pass_s_per_item).append(
                    dur / n)
                rate.pass_by_task.setdefault((suite, task), []).append(dur / n)
                if passes > 1:
                    rate.window_floor_s.append(passes * dur)
                load = float(res.get("load_s") or 0.0) if (model, variant) not in seen_mv else 0.0
                if (model, variant) not in seen_mv and res.get("load_s") is not None:
                    rate.load_s.append(float(res["load_s"]))
                seen_mv.add((model, variant))
                if wall is not None:
                    # an extended cell scored only its new items in this run (its windows pool the stored ones)
                    before = min(n - 1, int(res.get("extended_from_items") or 0))
                    warm = dur / n * min(n - before, _warm_items(res.get("scoring_method"), res.get("batch_size")
                                                                 or cfg.get("batch_size") or 16)) \
                        if res.get("warmed_up", True) else 0.0
                    windows = res.get("energy_windows") or []
                    scored = sum(int(w.get("items") or 0) for w in windows) if windows else reps * passes * n
                    scored = max(n - before, scored - before)
                    over = max(0.0, wall - load - warm - dur / n * scored)
                    rate.overhead_s.append(over)
                    rate.overhead_by_task.setdefault((suite, task), []).append(over)
            # the run's tail (final marks, outputs) joins its startup below
            t_fin = _ts(finished)
            if rows and t_fin is not None and t_prev is not None:
                tails.append(max(0.0, t_fin - t_prev))
    except (sqlite3.Error, ValueError, TypeError, KeyError):
        tails = []
    finally:
        db.close()
    if jobs_dir is not None:
        rates.startup_s += _job_startups(Path(jobs_dir), run_created)
    if not rates.startup_s and tails:  # no job files: the default start plus the runs' own tails
        rates.startup_s = [DEFAULT_STARTUP_S + t for t in tails]
    return rates


def scored_items(n: int, repeats: int, chunk: int, min_windows: int = MIN_WINDOWS) -> int:
    """Items a cell scores in its measured windows (evaluator/measure.py).

    ``repeats`` passes, in the batches of :func:`evaluator.measure.pass_chunks`; when they are fewer than
    ``min_windows``, batches are scored again, in order, until they fill them (with the estimate meter a
    window is one batch). A single short pass is cut into one smaller batch per window instead.

    >>> scored_items(152, 1, 16), scored_items(5, 1, 16), scored_items(20, 1, 16), scored_items(1, 1, 16)
    (152, 5, 20, 2)
    >>> scored_items(5, 3, 16), scored_items(5, 1, 16, min_windows=8)
    (15, 40)
    """
    if n <= 0:
        return 0
    chunks = pass_chunks(0, n, chunk, repeats, min_windows)
    runs = max(repeats * len(chunks), min_windows)
    return sum(b - a for i in range(runs) for a, b in [chunks[i % len(chunks)]])


def _warm_items(scoring_method: Any, batch_size: int) -> int:
    """Items in the runner's warm-up batch: one batch (twice as large for encoders)."""
    return int(batch_size) * (1 if scoring_method in ("loglik", "generate", "generation") else 2)


def _job_startups(jobs_dir: Path, run_created: dict[str, float]) -> list[float]:
    """Job overhead outside the cells: job file written -> run created, plus last cell -> job finished."""
    out = []
    try:
        files = sorted(jobs_dir.glob("*.json"), reverse=True)[:50]
    except OSError:
        return out
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        rid = d.get("run_id")
        start = _ts(d.get("started_at") or d.get("created_at"))
        if rid not in run_created or start is None or d.get("status") not in ("finished", "finished-with-failures"):
            continue
        fin, last = _ts(d.get("finished_at")), _ts((d.get("cells") or [{}])[-1].get("at"))
        head = run_created[rid] - start
        tail = (fin - last) if fin is not None and last is not None else 0.0
        if 0 <= head < 600 and 0 <= tail < 600:
            out.append(head + tail)
    return out


# --------------------------------------------------------------------------------------- estimate
@dataclass(frozen=True)
class CellEstimate:
    """The expected wall time of one cell, and where the figure comes from."""

    suite: str
    task: str
    model: str
    variant: str
    n_items: int
    seconds: float
    source: str  # "reused" | "measured" | "default" | "n/a" (a task the model cannot do: no time)
    reuse_exact: bool = True  # False: reuse decided by the approximate match (see the module docstring)
    extends: int = 0  # items already stored in a cell this one extends (the runner scores only the rest)


@dataclass(frozen=True)
class GridEstimate:
    """The expected wall time of a grid: startup + loads + cells."""

    cells: tuple[CellEstimate, ...]
    startup_s: float
    load_s: float
    #: variant -> (why, slowdown, "measured here" | "documented") for variants on a fallback kernel here
    fallbacks: dict[str, tuple[str, float, str]]

    @property
    def total_s(self) -> float:
        """Expected seconds from start to finish."""
        return self.startup_s + self.load_s + sum(c.seconds for c in self.cells)

    @property
    def n_reused(self) -> int:
        """Cells that would be reused from the store."""
        return sum(c.source == "reused" for c in self.cells)

    @property
    def all_reused(self) -> bool:
        """Every cell would be reused (or is one its model cannot do, which costs nothing either)."""
        return self.n_reused > 0 and all(c.source in ("reused", "n/a") for c in self.cells)

    @property
    def n_extended(self) -> int:
        """Cells that extend a stored cell on fewer items."""
        return sum(c.extends > 0 for c in self.cells)

    @property
    def sources(self) -> set[str]:
        """The kinds of figures the estimate uses."""
        return {c.source for c in self.cells}


def _key_contexts(config: Any, spec: Any, variant: Any, cands: list[StoredCell]) -> list[tuple[StoredCell, Any]]:
    """Each stored cell with the runner's key context now, as the run that stored it would have it.

    The stored cell's device, threads, meter and backend version (what that run used on this machine) and
    the model's current weights fingerprint; cells without a device or thread count are left out.
    """
    from evaluator.cellkey import KeyContext
    from evaluator.meters.estimate import cpu_model
    from evaluator.models import resolve

    resolved = resolve(spec)
    local = f"{spec.name}@{resolved.location}" if resolved.origin == "path" else None
    out = []
    for c in cands:
        threads = config.threads or c.threads
        if c.device is None or threads is None:
            continue
        out.append((c, KeyContext(resolved.fingerprint, c.meter or config.meter, c.device, threads,
                                  c.cpu or cpu_model(), variant.backend, c.backend_version, local)))
    return out


def _exact_keys(config: Any, spec: Any, variant: Any, task: Any, cands: list[StoredCell]) -> set[str] | None:
    """Stored keys that the runner's own cell key would match now; None when it cannot be computed."""
    try:
        from evaluator.cellkey import cell_key

        return {c.cell_key for c, kctx in _key_contexts(config, spec, variant, cands)
                if cell_key(config, variant, task, kctx) == c.cell_key}
    except Exception:  # noqa: BLE001 - a changed runner or an unresolvable model: approximate instead
        return None


def estimate_grid(config: Any, store_path: str | Path | None = None, *, the_plan: Any = None,
                  flags: Iterable[str] | None = None, jobs_dir: str | Path | None = None) -> GridEstimate:
    """Expected wall time of ``config`` on this machine, cell by cell (raises what ``plan`` raises)."""
    from evaluator.meters.estimate import cpu_model

    if the_plan is None:
        from evaluator.runner import plan

        the_plan = plan(config)
    rates = measured_rates(store_path or config.store, jobs_dir)
    flags = cpu_flags() if flags is None else frozenset(flags)
    cpu = cpu_model()
    default_backend = str(getattr(config, "backend", None) or "auto")
    cells: list[CellEstimate] = []
    load_total = 0.0
    fallbacks: dict[str, tuple[str, float, str]] = {}
    for spec in the_plan.models:
        mp = mparams(getattr(spec, "params", None))
        kind = spec.kind if spec.kind in DEFAULT_S_PER_ITEM_PER_MPARAM else "causal-lm"
        for var in the_plan.variants:
            backend = str(getattr(var, "backend", None) or default_backend)
            rate = _rate_for(rates, spec.name, var.name, backend)
            slow = 1.0
            for fb in fallback_parts(var.name, flags, "cuda" if config.device == "cuda" else "cpu"):
                base = _rate_for(rates, spec.name, "fp32", backend)
                if rate and rate.pass_s_per_item and base and base.pass_s_per_item:
                    ratio, how = (rate.mean("pass_s_per_item") or 0) / (base.mean("pass_s_per_item") or 1), \
                        "measured here"
                else:
                    ratio, how = fb.slowdown, "documented"
                fallbacks[var.name] = (fb.why, ratio, how)
                slow *= fb.slowdown
            todo = 0
            warmed_kinds: set[bool] = set()  # generation or not: the scoring methods warmed up in this load
            for suite in the_plan.suites:
                for task in suite.tasks:
                    n = len(task.select(config.limit))
                    generates = getattr(task, "type", "") == "generation"
                    if generates and kind == "encoder":  # refused before loading: an "n/a" cell
                        cells.append(CellEstimate(task.suite, task.name, spec.name, var.name, n, 0.0, "n/a"))
                        continue
                    factor = DEFAULT_GENERATION_FACTOR if generates else 1.0
                    reused, exact = _reused(config, spec, var, task, n, rates, cpu, backend)
                    if reused:
                        cells.append(CellEstimate(task.suite, task.name, spec.name, var.name, n, 0.0, "reused",
                                                  exact))
                        continue
                    base = _extension(config, spec, var, task, rates, backend)
                    stored, windows_left = (base.n_items, max(1, MIN_WINDOWS - len(base.energy_windows))) \
                        if base else (0, MIN_WINDOWS)
                    todo += 1
                    own = (rate.gen_s_per_item if generates else rate.pass_s_per_item) if rate else []
                    if rate and (own or rate.pass_s_per_item):
                        # this task's own rate, else its kind's (generation or choice), else the choice rate
                        # scaled to generation (the model measured here on choice tasks only)
                        by_task = rate.pass_by_task.get((task.suite, task.name))
                        per_item = (fmean(by_task) if by_task else fmean(own) if own
                                    else fmean(rate.pass_s_per_item) * factor)
                        over = rate.overhead_by_task.get((task.suite, task.name)) or rate.overhead_s
                        overhead = fmean(over) if over else DEFAULT_CELL_OVERHEAD_S[kind]
                        floor = rate.mean("window_floor_s") or 0.0
                        source = "measured"
                    else:
                        per_item = DEFAULT_S_PER_ITEM_PER_MPARAM[kind] * mp * slow * factor
                        overhead, floor, source = DEFAULT_CELL_OVERHEAD_S[kind], 0.0, "default"
                    # the warm-up batch: one more pass over a batch of items, once per loaded model and kind
                    # of scoring (the runner's later cells of the same kind skip it)
                    warm = per_item * min(n - stored, _warm_items("loglik" if kind != "encoder" else "",
                                                                  config.batch_size)) \
                        if generates not in warmed_kinds else 0.0
                    warmed_kinds.add(generates)
                    chunk = _warm_items("loglik" if kind != "encoder" else "", config.batch_size)
                    measured = max(floor, per_item * scored_items(n - stored, config.repeats, chunk, windows_left))
                    cells.append(CellEstimate(task.suite, task.name, spec.name, var.name, n,
                                              overhead + warm + measured, source, extends=stored))
            if todo:
                load = (rate.mean("load_s") if rate else None)
                load_total += load if load is not None else 2.0 + DEFAULT_LOAD_S_PER_MPARAM[kind] * mp
    return GridEstimate(tuple(cells), rates.startup(), load_total, fallbacks)


def _rate_for(rates: Rates, model: str, variant: str, backend: str) -> Rate | None:
    """The rate of (model, variant) on ``backend``; with backend 'auto', the one with most cells stored."""
    if backend not in ("auto", ""):
        return rates.by_mvb.get((model, variant, backend))
    found = [r for (m, v, _b), r in rates.by_mvb.items() if (m, v) == (model, variant)]
    return max(found, key=lambda r: len(r.pass_s_per_item), default=None)


def _reused(config: Any, spec: Any, var: Any, task: Any, n: int, rates: Rates, cpu: str, backend: str
            ) -> tuple[bool, bool]:
    """(would be reused, decided by the exact key)."""
    if getattr(config, "force", False):
        return False, True
    cands = [c for c in rates.cells if (c.suite, c.task, c.model, c.variant) == (task.suite, task.name, spec.name,
                                                                                 var.name)]
    if not cands:
        return False, True
    exact = _exact_keys(config, spec, var, task, cands)
    if exact is not None:
        return bool(exact), True
    approx = any(c.n_items == n and c.repeats == config.repeats and c.batch_size == config.batch_size
                 and backend in ("auto", "", c.backend) and (c.cpu is None or c.cpu == cpu)
                 and (c.encoder_method or "auto") == config.encoder_method for c in cands)
    return approx, False


def _extension(config: Any, spec: Any, variant: Any, task: Any, rates: Rates, backend: str) -> Any:
    """The stored cell (a CellResult) the runner would extend, or None: the runner's own lookup.

    :func:`evaluator.cellkey.extendable` with this cell's setup key (the cell key without its items), as
    the runner calls it; None also when it cannot tell (a whole cell is counted).
    """
    if getattr(config, "force", False) or not rates.store:
        return None
    cands = [c for c in rates.cells if (c.suite, c.task, c.model, c.variant) == (task.suite, task.name, spec.name,
                                                                                 variant.name)
             and backend in ("auto", "", c.backend)]
    if not cands:
        return None
    try:
        from evaluator.cellkey import extendable, setup_key
        from evaluator.store import Store

        items = task.select(config.limit)
        store = Store(rates.store, readonly=True)
        for setup in {setup_key(config, variant, task, kctx) for _c, kctx in _key_contexts(config, spec, variant,
                                                                                            cands)}:
            found = extendable(store, setup, items)
            if found is not None:
                return found[0]
    except Exception:  # noqa: BLE001 - read-only guess: an unreadable store or model means "no extension"
        return None
    return None


def fmt_seconds(s: float) -> str:
    """'about 40 s' / 'about 3 min' / 'about 1.5 h'."""
    if s < 90:
        return f"about {max(5, round(s / 5) * 5):.0f} s"
    if s < 5400:
        return f"about {round(s / 60):.0f} min"
    return f"about {s / 3600:.1f} h"


# ------------------------------------------------------------------------------------ power analysis
def detectable_pts(n_items: int, *, paired: bool = True, accuracy: float = 0.7) -> float | None:
    """The smallest difference (points, 0.5 steps) that ``n_items`` items detect at 95 %/80 %; None if > 50."""
    for tenth in range(5, 505, 5):
        pts = tenth / 10
        if items_needed(pts, accuracy, paired=paired) <= n_items:
            return pts
    return None


# ----------------------------------------------------------------------------------------- pulls
@dataclass(frozen=True)
class PullEstimate:
    """What pulling a model costs: download (PyPI packages), cache size and rough time."""

    download_mb: float
    cache_mb: float
    seconds: float
    measured: bool  # True: sizes and assembly time measured for this model (docs/benchmarks.md §0)

    @property
    def large(self) -> bool:
        """Large enough to ask before pulling (more than 1 GB to download or 4 GB on disk)."""
        return self.download_mb > 1000 or self.cache_mb > 4000


#: Measured on the project machines (docs/benchmarks.md §0; download = the PyPI packages' size):
#: name -> (download MB, cache MB, assembly s).
KNOWN_PULLS = {"minilm-l6": (90, 92, 0.3), "mpnet-base": (420, 439, 3.8), "smollm2-135m": (95, 542, 27),
               "gemma3-270m": (250, 1106, 69), "qwen2.5-0.5b": (490, 2532, 91), "qwen2.5-1.5b": (1100, 7120, 202)}
#: Assumed download speed from the package index when nothing better is known.
DOWNLOAD_MB_PER_S = 20.0


def pull_estimate(name: str, params: Any = None, fmt: str | None = None) -> PullEstimate:
    """Download size, cache size and rough seconds of ``frugal models pull NAME`` (a download at 20 MB/s)."""
    if name in KNOWN_PULLS:
        dl, cache, assemble = KNOWN_PULLS[name]
        return PullEstimate(dl, cache, assemble + dl / DOWNLOAD_MB_PER_S, True)
    mp = mparams(params)
    gguf = fmt == "gguf"
    dl = mp * (0.7 if gguf else 4.0)  # a 4-bit GGUF, else fp32 safetensors
    cache = mp * 4.0 * 1.05
    assemble = (mp * 0.15) if gguf else cache / 200
    return PullEstimate(dl, cache, assemble + dl / DOWNLOAD_MB_PER_S, False)


__all__ = ["CellEstimate", "GridEstimate", "PullEstimate", "cpu_flags", "detectable_pts",
           "estimate_grid", "fallback_parts", "fmt_seconds", "items_needed", "measured_rates", "mparams",
           "pull_estimate"]
