"""`frugal`: a thin adapter. It parses flags into a RunConfig (or a library call) and prints.

Exit codes: 0 success; 1 a gate failed, a regression was found, or some cells failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from evaluator import __version__
from evaluator.config import Gates, RunConfig, check_references, load_config
from evaluator.errors import FrugalError, ValidationError


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import logging
    import warnings

    logging.getLogger("torchao").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="torch.utils._pytree")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with the same fields as the flags")
    p.add_argument("--suite", action="append", dest="suites", metavar="NAME|PATH", help="built-in suite or folder")
    p.add_argument("--model", action="append", dest="models", metavar="NAME", help="model from models.yaml")
    p.add_argument("--variant", action="append", dest="variants", metavar="NAME", help="e.g. fp32, bf16, a+b")
    p.add_argument("--limit", type=int, help="first N test items of each task")
    p.add_argument("--repeats", type=int, help="measured windows per cell (default 3)")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--meter", help="auto | estimate | rapl | nvml | codecarbon")
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
    g = p.add_argument_group("CI gates (exit 1 when one fails)")
    g.add_argument("--max-accuracy-drop", type=float, metavar="PTS")
    g.add_argument("--baseline", metavar="MODEL:VARIANT")
    g.add_argument("--min-accuracy", type=float, metavar="X")
    g.add_argument("--max-energy-per-1k", type=float, metavar="J")
    g.add_argument("--require-on-frontier", action="append", metavar="MODEL:VARIANT")


def build_config(args: argparse.Namespace) -> RunConfig:
    """Flags (over an optional YAML file) -> RunConfig."""
    fields = ("suites", "models", "variants", "limit", "repeats", "batch_size", "threads", "device", "meter",
              "watts_per_core", "idle_s", "country", "grid_intensity", "pue", "encoder_method", "models_file",
              "store", "out", "force", "tolerance_pts")
    over: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    for f in ("suites", "models", "variants"):
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
            _err(f"run {e['run_id']}: {self.total} cells -> {e['store']}")
        elif e["type"] == "load":
            _err(f"  loading {e['model']} [{e['variant']}] ...")
        elif e["type"] == "cell":
            self.done += 1
            bar = "#" * int(20 * self.done / max(1, self.total))
            what = f"{e['suite']}/{e['task']} {e['model']} [{e['variant']}]"
            if e["status"] == "failed":
                tail = f"FAILED: {e.get('error', '')[:160]}"
            else:
                tail = f"acc {e['accuracy']:.3f}, {e['energy_j']:.2f} J" + (" (reused)" if e["status"] == "reused"
                                                                        else f" ({e.get('energy_method', '')})")
            _err(f"[{bar:<20}] {self.done}/{self.total} {time.time() - self.t0:6.1f}s {what}: {tail}")
        elif e["type"] == "end":
            _err(f"run {e['run_id']} {e['status']} in {time.time() - self.t0:.1f}s")


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Handle `frugal run`."""
    from evaluator.pareto import recommend
    from evaluator.runner import run

    config = build_config(args)
    result = run(config, on_event=_Progress())
    reused = sum(c.reused for c in result.cells)
    if reused:
        print(f"{reused} of {len(result.cells)} cells reused from the store (same weights, variant, data, "
              f"scoring and meter); pass --force to recompute.")
    for suite, pts in result.frontiers.items():
        rec = recommend(pts, config.tolerance_pts)
        methods = sorted({p.energy_method for p in pts})
        print(f"{suite}: {rec.text if rec else 'no complete points'} [energy: {', '.join(methods)}]")
    if config.out:
        written = sorted(p.name for p in Path(config.out).iterdir() if p.is_file())
        print(f"wrote {config.out}/: {', '.join(written)}")
    code = 0
    if result.failed:
        print(f"{len(result.failed)} cell(s) failed:", file=sys.stderr)
        for c in result.failed:
            print(f"  {c.suite}/{c.task} {c.model} [{c.variant}]: {c.error}", file=sys.stderr)
        code = 1
    if config.gates.any():
        from evaluator.gates import check_gates

        failures = check_gates(result, config.gates)
        if config.out:
            from evaluator.report.writers import gates_markdown

            with (Path(config.out) / "summary.md").open("a") as fh:
                fh.write(gates_markdown(failures))
        for f in failures:
            print(f"GATE FAILED: {f}", file=sys.stderr)
        if failures:
            return 1
        print("all gates passed")
    return code


def cmd_models(args: argparse.Namespace) -> int:
    """Handle `frugal models list|pull`."""
    from evaluator.models import default_registry_path, frugal_home, list_local, load_registry, pull

    registry = load_registry(args.models_file or default_registry_path())
    if args.action == "list":
        print(f"model cache: {frugal_home() / 'models'}")
        print(f"{'name':<16}{'kind':<11}{'params':<9}{'status':<12}{'size MB':>9}  location")
        for r in list_local(registry):
            size = f"{r['size_mb']:.0f}" if r["size_mb"] else "-"
            print(f"{r['name']:<16}{r['kind']:<11}{r['params']:<9}{r['status']:<12}{size:>9}  {r['location']}")
        return 0
    names = args.names or [n for n, s in registry.items() if s.offline]
    from evaluator.models import get_spec

    code = 0
    for name in names:
        spec = get_spec(name, registry)
        t0 = time.time()
        try:
            res = pull(spec, force=args.force, install=not args.no_install, log=_err)
        except FrugalError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            code = 1
            continue
        state = "already in cache" if res.reused else f"assembled and verified in {time.time() - t0:.1f}s"
        print(f"{name}: {state}, {res.size_mb:.0f} MB at {res.path}")
    return code


def cmd_list(args: argparse.Namespace) -> int:
    """Handle `frugal list suites|variants|meters|models`."""
    if args.what == "suites":
        from evaluator.suite import builtin_suites, load_suite

        for name, _path in builtin_suites().items():
            s = load_suite(name)
            print(f"{s.name:<10} {s.description}")
            for t in s.tasks:
                labels = ", ".join(lab.name for lab in t.labels) if t.labels else "multiple choice"
                n = f"{len(t.items):>4} test, {len(t.train_items):>3} train"
                print(f"    {t.name:<20} {t.type:<16} {n}  ({labels})")
    elif args.what == "variants":
        from evaluator.variants import list_variants

        for name, group, desc in list_variants():
            print(f"{name:<22}{group:<14}{desc}")
        print("\nCompose with '+', e.g. prune-structured-25+int8-dynamic.")
    elif args.what == "meters":
        from evaluator.meters import METERS

        for name, (_target, desc) in METERS.items():
            print(f"{name:<12}{desc}")
    elif args.what == "models":
        return cmd_models(argparse.Namespace(action="list", models_file=args.models_file))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Handle `frugal runs`: stored runs, newest first."""
    from evaluator.store import Store

    for r in Store(args.store).list_runs():
        print(f"{r['run_id']}  {r['created_at']}  {r['status']:<22} {r['done']}/{r['planned_cells']} cells"
              f"  ({r['failed'] or 0} failed, {r['reused'] or 0} reused)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Handle `frugal report RUN_ID|results.json --out report.html`."""
    from evaluator.report.writers import write_report_html
    from evaluator.runner import load_result

    result = load_result(args.source, args.store)
    out = Path(args.out)
    write_report_html(result, out, args.tolerance)
    print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Handle `frugal compare A B`."""
    from evaluator.compare import compare
    from evaluator.runner import load_result

    a, b = load_result(args.a, args.store), load_result(args.b, args.store)
    cmp = compare(a, b, store=args.store)
    print(cmp.render())
    if args.fail_on_regression and cmp.regressions:
        print(f"{len(cmp.regressions)} regression(s)", file=sys.stderr)
        return 1
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="frugal", description="Is a smaller model good enough, and what does it save?")
    p.add_argument("--version", action="version", version=f"frugal {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="evaluate suites x models x variants (accuracy and energy)")
    _add_run_args(r)
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("models", help="list or pull models")
    m.add_argument("action", choices=["list", "pull"])
    m.add_argument("names", nargs="*")
    m.add_argument("--force", action="store_true")
    m.add_argument("--no-install", action="store_true", help="do not pip-install missing packages")
    m.add_argument("--models-file", dest="models_file")
    m.set_defaults(func=cmd_models)
    ls = sub.add_parser("list", help="list suites, variants, meters or models")
    ls.add_argument("what", choices=["suites", "variants", "meters", "models"])
    ls.add_argument("--models-file", dest="models_file")
    ls.set_defaults(func=cmd_list)
    rs = sub.add_parser("runs", help="stored runs")
    rs.add_argument("--store")
    rs.set_defaults(func=cmd_runs)
    rp = sub.add_parser("report", help="write a self-contained HTML report")
    rp.add_argument("source", help="run id or results.json")
    rp.add_argument("--out", default="report.html")
    rp.add_argument("--store")
    rp.add_argument("--tolerance", type=float, default=2.0)
    rp.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="compare two runs cell by cell (paired test)")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--store")
    c.add_argument("--fail-on-regression", action="store_true")
    c.set_defaults(func=cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    _quiet_libraries()
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FrugalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
