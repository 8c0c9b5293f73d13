"""`frugal`: a thin adapter. It parses flags into a RunConfig (or a library call) and prints.

Exit codes (docs/ci.md): 0 success; 1 a gate failed, a regression was found, or some cells failed; 2 bad
input (a file, a flag, a path that cannot be written, a corrupt store or model cache); 3 an internal error
(a bug: the message says how to get the traceback). A crash never exits 1, which CI reads as a failed gate.

Everything printed goes through :mod:`evaluator.textsafe`: a control character in a name taken from a folder,
a registry or an error text is shown escaped, so it cannot rewrite the terminal or fake a CI log line.
Library warnings (torch, transformers, torchao) are hidden unless ``-v`` or ``FRUGAL_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from evaluator import __version__
from evaluator.config import Gates, RunConfig, check_references, load_config
from evaluator.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, FrugalError
from evaluator.pool import END
from evaluator.textsafe import term

#: Loggers of dependencies that print noise on import (torch's _pytree deprecation lines when transformers
#: imports torchao; torchao's "Failed to load ... .so"), hidden unless -v.
_NOISY_LOGGERS = ("torchao", "torch.utils._pytree", "torch._dynamo", "transformers", "sentence_transformers",
                  "huggingface_hub", "codecarbon", "kaleido", "choreographer")


def _debug(args: argparse.Namespace | None = None) -> bool:
    env = os.environ.get("FRUGAL_DEBUG", "").lower() in ("1", "true", "yes")
    return env or bool(getattr(args, "verbose", False))


def _quiet_libraries(verbose: bool = False) -> None:
    """Hide dependencies' warnings and log noise (the default), or let them through with ``-v``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # raw tqdm bars (transformers' GGUF conversion during a pull)
    import logging
    import warnings

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "torchao" else logging.ERROR)
    warnings.filterwarnings("ignore")  # dependencies' DeprecationWarning/FutureWarning/UserWarning
    warnings.filterwarnings("default", module=r"evaluator(\..*)?$")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from evaluator.meters import meter_choices

    p.add_argument("--config", help="YAML file with the same fields as the flags")
    p.add_argument("--suite", action="append", dest="suites", metavar="NAME|PATH", help="built-in suite or folder")
    p.add_argument("--model", action="append", dest="models", metavar="NAME", help="model from models.yaml")
    p.add_argument("--variant", action="append", dest="variants", metavar="NAME", help="e.g. fp32, bf16, a+b")
    p.add_argument("--task", action="append", dest="tasks", metavar="TASK|SUITE/TASK",
                   help="only this task of the suites (repeatable; default: every task)")
    p.add_argument("--limit", type=int, help="first N test items of each task")
    p.add_argument("--repeats", type=int, help="whole passes over the items (default 1: each item scored once; "
                   "the energy interval comes from the windows within the pass)")
    p.add_argument("--adaptive", action="store_true", default=None,
                   help="score items in rounds; points out of contention stop early, a decided suite stops")
    p.add_argument("--rounds", type=int, help="adaptive rounds (default 8)")
    p.add_argument("--seed", type=int, help="seed of the adaptive item order (default 0)")
    p.add_argument("--plan", action="store_true", help="print the grid, its expected time here and the items "
                   "a difference needs; run nothing")
    p.add_argument("--plan-diff", type=float, default=5.0, dest="plan_diff", metavar="PTS",
                   help="with --plan: the accuracy difference to resolve (default 5 points)")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--meter", help=meter_choices())
    p.add_argument("--watts-per-core", type=float, dest="watts_per_core", help="estimate meter: W per busy core")
    p.add_argument("--idle-s", type=float, dest="idle_s", help="idle baseline seconds (counter meters)")
    p.add_argument("--country", help="ISO code for grid carbon intensity (default: world average)")
    p.add_argument("--grid-intensity", type=float, dest="grid_intensity", help="gCO2e per kWh (overrides country)")
    p.add_argument("--pue", type=float)
    p.add_argument("--encoder-method", dest="encoder_method", choices=["auto", "zero-shot", "probe"])
    p.add_argument("--models-file", dest="models_file")
    p.add_argument("--store", help="SQLite results store (default FRUGAL_HOME/results.sqlite)")
    p.add_argument("--out", help="write results.json, results.csv and reports here")
    p.add_argument("--force", action="store_true", default=None, help="recompute cells even if stored")
    p.add_argument("--tolerance", type=float, dest="tolerance_pts", help="recommendation tolerance (points)")
    p.add_argument("--executor", choices=["local", "ray"], help="where groups run: this process (default) or Ray")
    p.add_argument("--ray-address", dest="ray_address", metavar="auto|HOST:PORT", help="Ray cluster to join")
    p.add_argument("--max-retries", type=int, dest="max_retries", help="retries of a Ray worker lost mid-group")
    g = p.add_argument_group("CI gates (exit 1 when one fails)")
    g.add_argument("--max-accuracy-drop", type=float, metavar="PTS")
    g.add_argument("--baseline", metavar="MODEL:VARIANT")
    g.add_argument("--min-accuracy", type=float, metavar="X")
    g.add_argument("--max-energy-per-1k", type=float, metavar="J")
    g.add_argument("--require-on-frontier", action="append", metavar="MODEL:VARIANT")


def build_config(args: argparse.Namespace) -> RunConfig:
    """Flags (over an optional YAML file) -> RunConfig."""
    fields = ("suites", "models", "variants", "tasks", "limit", "repeats", "batch_size", "threads", "device", "meter",
              "watts_per_core", "idle_s", "country", "grid_intensity", "pue", "encoder_method", "models_file",
              "store", "out", "force", "tolerance_pts", "executor", "ray_address", "max_retries", "adaptive",
              "rounds", "seed")
    over: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    for f in ("suites", "models", "variants", "tasks"):
        if f in over:
            over[f] = tuple(over[f])
    gate_over = {k: getattr(args, k) for k in ("max_accuracy_drop", "baseline", "min_accuracy", "max_energy_per_1k")
                 if getattr(args, k) is not None}
    if args.require_on_frontier:
        gate_over["require_on_frontier"] = tuple(args.require_on_frontier)
    if args.config:  # errors name the file, line and field (or the command line, for a flag)
        return load_config(args.config, gate_overrides=gate_over, **over)
    config = RunConfig(**over, gates=Gates(**gate_over)).validate("command line")
    check_references(config, "command line")
    return config


class _Progress:
    """One line per finished cell on stderr, with a count and elapsed time."""

    def __init__(self) -> None:
        self.total, self.done, self.t0 = 0, 0, time.time()

    def __call__(self, e: dict[str, Any]) -> None:
        if e["type"] == "start":
            self.total = e["cells"]
            _err(f"run {e['run_id']}: {self.total} cells -> {term(e['store'])}")
        elif e["type"] == "load":
            on = f" on {term(e['node'])}" if e.get("node") else ""
            if e.get("kept"):
                _err(f"  {term(e['model'])} [{term(e['variant'])}] still loaded from an earlier round")
            else:
                _err(f"  loading {term(e['model'])} [{term(e['variant'])}]{on} ...")
        elif e["type"] == "placed":
            _err(f"  {term(e['model'])} [{term(e['variant'])}] placed on node {term(e['node'])} (pid {e['pid']})")
        elif e["type"] == "retry":
            _err(f"  {term(e['model'])} [{term(e['variant'])}]: worker lost ({term(e['reason'])[:160]}); "
                 f"attempt {e['attempt']}")
        elif e["type"] == "cell":
            self.done += 1
            bar = "#" * int(20 * self.done / max(1, self.total))
            what = f"{term(e['suite'])}/{term(e['task'])} {term(e['model'])} [{term(e['variant'])}]" + (
                f" @{term(e['node'])}" if e.get("node") else "")
            if e["status"] == "failed":
                tail = f"FAILED: {term(str(e.get('error') or '')[:160])}"
            elif e["status"] == "n/a":
                tail = f"{term(str(e.get('error') or '')[:160])}"
            else:
                tail = f"acc {e['accuracy']:.3f}, {e['energy_j']:.2f} J" + (" (reused)" if e["status"] == "reused"
                                                                        else f" ({e.get('energy_method', '')})")
                if e.get("above_chance") is False:
                    tail += " NOT above chance"
            _err(f"[{bar:<20}] {self.done}/{self.total} {time.time() - self.t0:6.1f}s {what}: {tail}")
        elif e["type"] == "round":
            self.done = 0
            _err(f"round {e['round']}/{e['rounds']}: {e['active']} point(s) in contention")
        elif e["type"] == "stopped":
            _err(f"  stopped {term(e['suite'])}: {term(e['model'])} [{term(e['variant'])}] after round {e['round']}: "
                 f"{term(e['reason'])}")
        elif e["type"] == "whole":
            _err(f"  scoring {term(e['suite'])}: {term(e['model'])} [{term(e['variant'])}] whole: {term(e['reason'])}")
        elif e["type"] == "unload" and e.get("reason") != END:
            _err(f"  freed {term(e['model'])} [{term(e['variant'])}]: {term(e['reason'])}")
        elif e["type"] == "end":
            _err(f"run {e['run_id']} {e['status']} in {time.time() - self.t0:.1f}s")
            split = e.get("wall_split_s") or {}
            if split:
                parts = ", ".join(f"{k.replace('_', '-')} {v:.0f}" for k, v in split.items()
                                  if k != "wall" and v >= 0.5)
                _err(f"  where the time went (s): {parts}")


def _err(msg: str) -> None:
    """A line (or lines) on stderr; control characters escaped (newlines kept: the caller's own)."""
    print(term(msg, multiline=True), file=sys.stderr, flush=True)


def _out(msg: str) -> None:
    """A line (or lines) on stdout; control characters escaped (newlines kept: the caller's own)."""
    print(term(msg, multiline=True), flush=True)


def _announce_registry(config: RunConfig) -> None:
    """Say which models.yaml this run uses, and warn loudly about entries that run code or shadow built-ins."""
    from evaluator.models import load_registry, registry_source, registry_warnings

    path, why = registry_source(config.models_file)
    _err(f"registry: {term(path)} ({why})")
    registry = load_registry(path, named=why != "packaged default")
    used = set(config.models)
    for note in registry_warnings({n: s for n, s in registry.items() if n in used}, path):
        _err(f"WARNING: {term(note)}")


def _preflight(config: RunConfig) -> None:
    """Check --out and --store before the first cell: a run must not compute for an hour, then fail to write."""
    from evaluator.safeio import check_output_dir, check_store_path
    from evaluator.store import default_store_path

    if config.out:
        check_output_dir(config.out, "--out")
    check_store_path(config.store or default_store_path(), "--store" if config.store else "the store")


def _warn_fallbacks(config: RunConfig) -> None:
    """Warn, before the first cell, about variants that run on a fallback kernel on this hardware."""
    from evaluator.backends import get_backend
    from evaluator.environment import present_flags
    from evaluator.variants import resolve_variant

    for name in dict.fromkeys(config.variants):
        try:
            v = resolve_variant(name)
            why = v.fallback(get_backend(v.backend).pick_device(config.device), present_flags())
        except FrugalError:
            continue  # the run itself reports a bad variant or device
        if why:
            _err(f"warning: variant {term(name)} will run on a fallback kernel here ({term(why)}); its cells are "
                 f"flagged fallback_kernel and measure the fallback, not the method.")


def cmd_run(args: argparse.Namespace) -> int:
    """Handle `frugal run`."""
    from evaluator.pareto import left_out_note, recommend
    from evaluator.runner import run

    config = build_config(args)
    if args.plan:
        return _print_plan(config, args.plan_diff)
    _announce_registry(config)
    _preflight(config)
    _warn_fallbacks(config)
    result = run(config, on_event=_Progress())
    written: list[Path] = []
    if config.out:
        from evaluator.report import write_outputs

        written = write_outputs(result, Path(config.out), config)
    reused = sum(c.reused for c in result.cells)
    if reused:
        _out(f"{reused} of {len(result.cells)} cells reused from the store (same weights, variant, data, "
             f"scoring and meter); pass --force to recompute.")
    for suite, pts in result.frontiers.items():
        rec = recommend(pts, config.tolerance_pts)
        methods = sorted({p.energy_method for p in pts})
        _out(f"{term(suite)}: {term(rec.text) if rec else 'no complete points'} [energy: "
             f"{term(', '.join(methods))}]")
        left = left_out_note(result.cells, suite)
        if left:
            _out(f"  {term(left)}")
    if config.out:
        out = Path(config.out)
        names = sorted({p.relative_to(out).parts[0] for p in written if p.parent == out})
        _out(f"wrote {term(config.out)}/: {term(', '.join(names))}")
    code = EXIT_OK
    if result.failed:
        _err(f"{len(result.failed)} cell(s) failed:")
        for c in result.failed:
            _err(f"  {term(c.suite)}/{term(c.task)} {term(c.model)} [{term(c.variant)}]: {term(c.error)}")
        code = EXIT_FAILED
    if config.gates.any():
        from evaluator.gates import check_gates

        failures = check_gates(result, config.gates)
        if config.out:  # the whole summary.md again, with the gates: atomic, never appended in place
            from evaluator.report.writers import write_summary_md

            write_summary_md(result, Path(config.out) / "summary.md", config.tolerance_pts, gate_failures=failures)
        for f in failures:
            _err(f"GATE FAILED: {term(f)}")
        if failures:
            return EXIT_FAILED
        _out("all gates passed")
    return code


def _print_plan(config: RunConfig, diff_pts: float) -> int:
    """`frugal run --plan`: the grid, the expected time on this machine, the items a difference needs."""
    from evaluator.planner import estimate_grid, fmt_seconds, items_needed
    from evaluator.runner import plan

    the_plan = plan(config)
    est = estimate_grid(config, config.store, the_plan=the_plan)
    n_items = {t.suite + "/" + t.name: len(t.select(config.limit)) for t in the_plan.tasks}
    _out(f"grid: {len(the_plan.suites)} suite(s) x {len(the_plan.models)} model(s) x {len(the_plan.variants)} "
         f"variant(s) = {the_plan.n_cells} cells ({est.n_reused} reused from the store"
         + (f", {est.n_extended} extending stored cells with their new items" if est.n_extended else "") + "), "
         f"{sum(n_items.values())} items per (model, variant)")
    _out(f"expected time here: {fmt_seconds(est.total_s)} for the whole grid" +
         (" (adaptive: at most this; points out of contention stop early)" if config.adaptive else "") +
         f" [from: {', '.join(sorted(est.sources))}]")
    for variant, (why, slowdown, source) in est.fallbacks.items():
        _out(f"  {term(variant)} runs on a fallback kernel here ({term(why)}): about {slowdown:.1f}x fp32's time "
             f"({source})")
    if not 0 < diff_pts < 100:
        raise FrugalError(f"--plan-diff must be between 0 and 100 points, not {diff_pts:g}")
    need = items_needed(diff_pts, paired=True)
    per_suite = {s.name: sum(len(t.select(config.limit)) for t in s.tasks) for s in the_plan.suites}
    _out(f"a {diff_pts:g}-point accuracy difference between two points needs about {need} paired items at 95 % "
         f"confidence and 80 % power; per suite here: " +
         ", ".join(f"{term(s)} {n} ({'enough' if n >= need else 'not enough'})" for s, n in per_suite.items()))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """Handle `frugal models list|pull|verify`."""
    from evaluator.models import frugal_home, get_spec, list_local, load_registry, registry_source

    path, why = registry_source(args.models_file)
    registry = load_registry(path, named=why != "packaged default")
    if args.action == "list":
        _out(f"registry: {term(path)} ({why})")
        _out(f"model cache: {term(frugal_home() / 'models')}")
        _out(f"{'name':<16}{'kind':<11}{'params':<9}{'status':<12}{'size MB':>9}  location")
        for r in list_local(registry):
            size = f"{r['size_mb']:.0f}" if r["size_mb"] else "-"
            _out(f"{term(r['name']):<16}{r['kind']:<11}{term(r['params']):<9}{r['status']:<12}{size:>9}  "
                 f"{term(r['location'])}")
        return EXIT_OK
    if args.action == "verify":
        return _verify_models(args, registry)
    from evaluator.models import pull

    names = args.names or [n for n, s in registry.items() if s.offline]
    code = EXIT_OK
    for name in names:
        spec = get_spec(name, registry)
        t0 = time.time()
        try:
            res = pull(spec, force=args.force, install=not args.no_install, log=_err)
        except FrugalError as exc:
            _err(f"{term(name)}: FAILED: {term(exc)}")
            code = EXIT_FAILED
            continue
        state = "already in cache" if res.reused else f"assembled and verified in {time.time() - t0:.1f}s"
        _out(f"{term(name)}: {state}, {res.size_mb:.0f} MB at {term(res.path)}")
    return code


def _verify_models(args: argparse.Namespace, registry: dict[str, Any]) -> int:
    """`frugal models verify [NAME ...]`: hash every cached file; exit 2 when one no longer matches."""
    from evaluator.errors import ModelTampered
    from evaluator.models import MANIFEST, cache_dir, get_spec, verify

    names = args.names or [n for n in registry if (cache_dir(registry[n]) / MANIFEST).is_file()]
    if not names:
        _out("no pulled model to verify")
    code = EXIT_OK
    for name in names:
        spec = get_spec(name, registry)
        if spec.path:
            _out(f"{term(name)}: loads from its local path {term(spec.path)}; nothing pulled to verify")
            continue
        t0 = time.time()
        try:
            res = verify(spec)
        except ModelTampered as exc:
            _err(f"{term(name)}: MODIFIED: {term(exc)}")
            code = EXIT_BAD_INPUT
            continue
        except FrugalError as exc:
            _err(f"{term(name)}: {term(exc)}")
            code = EXIT_BAD_INPUT
            continue
        _out(f"{term(name)}: ok, {res.files} files, {res.hashed_mb:.0f} MB hashed in {time.time() - t0:.1f}s "
             f"({term(res.path)})")
    return code


def cmd_list(args: argparse.Namespace) -> int:
    """Handle `frugal list suites|variants|meters|models`."""
    if args.what == "suites":
        from evaluator.suite import builtin_suites, load_suite

        for name, _path in builtin_suites().items():
            s = load_suite(name)
            _out(f"{term(s.name):<10} {term(s.description)}")
            for t in s.tasks:
                labels = ", ".join(lab.name for lab in t.labels) if t.labels else {
                    "multiple_choice": "multiple choice", "generation": "generated answers"}.get(t.type, t.type)
                n = f"{len(t.items):>4} test, {len(t.train_items):>3} train"
                _out(f"    {term(t.name):<20} {t.type:<16} {n}  ({term(labels)})")
    elif args.what == "variants":
        from evaluator.backends import backend_availability, get_backend
        from evaluator.environment import present_flags
        from evaluator.variants import list_variants, variant_class

        rows = list_variants()
        for backend in dict.fromkeys(r[3] for r in rows):
            why_not = backend_availability(backend)
            print(f"backend {backend}: {get_backend(backend).description} "
                  f"[{'available here' if why_not is None else 'NOT available here: ' + why_not}]")
            for name, group, desc, _ in (r for r in rows if r[3] == backend):
                slow = variant_class(name)().fallback("cpu", present_flags())
                print(f"  {name:<22}{group:<14}{desc}" + ("  [fallback kernel on this CPU]" if slow else ""))
        print("\nCompose with '+', e.g. prune-structured-25+int8-dynamic (parts of one backend).")
    elif args.what == "meters":
        from evaluator.meters import METERS

        for name, (_target, desc) in METERS.items():
            _out(f"{name:<12}{desc}")
    elif args.what == "models":
        return cmd_models(argparse.Namespace(action="list", models_file=args.models_file))
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    """Handle `frugal runs`: stored runs, newest first."""
    from evaluator.store import Store

    for r in Store(args.store).list_runs():
        _out(f"{term(r['run_id'])}  {term(r['created_at'])}  {term(r['status']):<22} {r['done']}/"
             f"{r['planned_cells']} cells  ({r['failed'] or 0} failed, {r['reused'] or 0} reused)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Handle `frugal report RUN_ID|results.json --out report.html`."""
    from evaluator.report.writers import write_report_html
    from evaluator.runner import load_result

    out = Path(args.out)
    if out.is_dir():
        raise FrugalError(f"--out {out} is a folder; give the path of the .html file to write")
    result = load_result(args.source, args.store)
    write_report_html(result, out, args.tolerance)
    _out(f"wrote {term(out)}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Handle `frugal compare A B`."""
    from evaluator.compare import compare
    from evaluator.runner import load_result

    a, b = load_result(args.a, args.store), load_result(args.b, args.store)
    cmp = compare(a, b, store=args.store)
    _out(cmp.render())
    if args.fail_on_regression and cmp.regressions:
        _err(f"{len(cmp.regressions)} regression(s)")
        return EXIT_FAILED
    return EXIT_OK


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="frugal", description="Is a smaller model good enough, and what does it save?",
                                epilog="Exit codes: 0 success; 1 a gate failed, a regression or failed cells; 2 bad "
                                       "input (files, flags, paths, a corrupt store or cache); 3 an internal error.")
    p.add_argument("--version", action="version", version=f"frugal {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="show dependencies' warnings and tracebacks "
                   "(also FRUGAL_DEBUG=1)")
    common = argparse.ArgumentParser(add_help=False)  # -v after the subcommand too: `frugal run ... -v`
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show dependencies' warnings and tracebacks (also FRUGAL_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", parents=[common], help="evaluate suites x models x variants (accuracy and energy)")
    _add_run_args(r)
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("models", parents=[common], help="list, pull or verify models (verify: hash every cached file)")
    m.add_argument("action", choices=["list", "pull", "verify"])
    m.add_argument("names", nargs="*")
    m.add_argument("--force", action="store_true")
    m.add_argument("--no-install", action="store_true", help="do not pip-install missing packages")
    m.add_argument("--models-file", dest="models_file")
    m.set_defaults(func=cmd_models)
    ls = sub.add_parser("list", parents=[common], help="list suites, variants, meters or models")
    ls.add_argument("what", choices=["suites", "variants", "meters", "models"])
    ls.add_argument("--models-file", dest="models_file")
    ls.set_defaults(func=cmd_list)
    rs = sub.add_parser("runs", parents=[common], help="stored runs")
    rs.add_argument("--store")
    rs.set_defaults(func=cmd_runs)
    rp = sub.add_parser("report", parents=[common], help="write a self-contained HTML report")
    rp.add_argument("source", help="run id or results.json")
    rp.add_argument("--out", default="report.html")
    rp.add_argument("--store")
    rp.add_argument("--tolerance", type=float, default=2.0)
    rp.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", parents=[common], help="compare two runs cell by cell (paired test)")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--store")
    c.add_argument("--fail-on-regression", action="store_true")
    c.set_defaults(func=cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command and map what happens to the exit-code contract (module docstring)."""
    args = make_parser().parse_args(argv)
    verbose = _debug(args)
    _quiet_libraries(verbose)
    try:
        return args.func(args)
    except FrugalError as exc:  # ValidationError, OutputError, ModelNotAvailable, ...: the user can act on it
        _err(f"error: {term(exc)}")
        if verbose:
            traceback.print_exc()
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted: finished cells are stored; run the same command again to resume")
        return 130
    except OSError as exc:  # a path the command could not read or write, named by the OS error
        from evaluator.safeio import describe_os_error

        where = f"{exc.filename}: " if exc.filename else ""
        _err(f"error: {term(where)}{describe_os_error(exc)}")
        if verbose:
            traceback.print_exc()
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug: exit 3 (never 1, which CI reads as a failed gate)
        if verbose:
            traceback.print_exc()
        _err(f"internal error: {type(exc).__name__}: {term(str(exc)[:500])}\n"
             + ("" if verbose else "This is a bug in Frugal (or a dependency); rerun with -v (or FRUGAL_DEBUG=1) "
                "for the traceback, and report it."))
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
