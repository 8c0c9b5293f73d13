"""Benchmark: the default grid (all built-in suites x models x variants) on this machine.

Writes a Markdown section with wall time, items/s per model and variant, peak memory, and the wall
time of the same grid re-run from the store (every cell reused). Usage:

    python bench/grid.py [--limit N] [--models a b ...] [--variants fp32 bf16 ...] [--out bench/out/grid.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from evaluator.backends import get_backend  # noqa: E402
from evaluator.config import DEFAULT_MODELS, RunConfig  # noqa: E402
from evaluator.environment import environment  # noqa: E402
from evaluator.pareto import recommend, suite_points  # noqa: E402
from evaluator.runner import run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--suites", nargs="+", default=["finance", "health", "climate"])
    ap.add_argument("--out", default="bench/out/grid.md")
    ap.add_argument("--exclude", nargs="*", default=[], metavar="MODEL:VARIANT",
                    help="leave these (model, variant) pairs out (each model runs as its own run() call)")
    args = ap.parse_args()
    store = Path(tempfile.mkdtemp()) / "bench.sqlite"
    excluded = {tuple(x.split(":", 1)) for x in args.exclude}
    cfgs = []
    for m in args.models:
        vs = tuple(v for v in args.variants if (m, v) not in excluded)
        if vs:
            cfgs.append(RunConfig(suites=tuple(args.suites), models=(m,), variants=vs, limit=args.limit,
                                  repeats=args.repeats, store=str(store), idle_s=0))
    cfg = cfgs[0]
    t0 = time.perf_counter()
    results = [run(c, on_event=lambda e: print(e, file=sys.stderr, flush=True) if e["type"] != "load" else None)
               for c in cfgs]
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = [run(c) for c in cfgs]
    cached = time.perf_counter() - t1
    assert all(c.reused for r in again for c in r.cells if c.status == "ok")
    # the same, as a user types it: the CLI, a fresh interpreter (imports included), first model's run
    c0 = cfgs[0]
    cli = [sys.executable, "-m", "evaluator.cli", "run", "--store", str(store), "--repeats", str(args.repeats),
           "--idle-s", "0", *sum((["--suite", x] for x in c0.suites), []),
           *sum((["--model", x] for x in c0.models), []), *sum((["--variant", x] for x in c0.variants), []),
           *(["--limit", str(args.limit)] if args.limit else [])]
    t2 = time.perf_counter()
    proc = subprocess.run(cli, capture_output=True, text=True)
    cli_cached = time.perf_counter() - t2
    assert proc.returncode == 0 and "reused" in (proc.stdout + proc.stderr), proc.stderr[-2000:]
    cells = [c for r in results for c in r.cells]
    failed = [c for c in cells if c.status != "ok"]

    per: dict[tuple[str, str], list] = defaultdict(list)
    for c in cells:
        per[(c.model, c.variant)].append(c)
    env = environment(cfg.threads or os.cpu_count() or 1, "cpu", (get_backend("torch"),))
    lines = [
        f"Machine: {env['cpu_model']}, {env['cpu_count']} cores, torch {env['torch']}, transformers "
        f"{env['transformers']}, {env['date']}. Command: `python bench/grid.py {' '.join(sys.argv[1:])}`.",
        "",
        f"- Grid: {len(args.suites)} suites x {len(args.models)} models x {len(args.variants)} variants"
        + (f" minus {len(excluded)} excluded pair(s)" if excluded else "") + f" = {len(cells)} cells, "
        f"{sum(c.n_items for c in cells)} scored items per pass; {len(failed)} failed.",
        f"- Wall time, cold store: **{wall:.0f} s** (includes model loads); re-run with every cell cached: "
        f"**{cached:.1f} s** in-process; `frugal run` for {cfgs[0].models[0]}'s cells from a fresh interpreter "
        f"(imports included), all reused: **{cli_cached:.1f} s**.",
        "- Energy: estimate (no RAPL/NVML on this machine): process CPU time x W/core.",
        "",
        "| model | variant | items | scoring s | items/s | J / 1k items (est.) | mean acc | size MB | peak RSS MB "
        "| load s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, variant), cs in per.items():
        ok = [c for c in cs if c.status == "ok"]
        if not ok:
            lines.append(f"| {model} | {variant} | failed: {(cs[0].error or '')[:80]} | | | | | | | |")
            continue
        n = sum(c.n_items for c in ok)
        dur = sum(c.duration_s for c in ok)
        energy = sum(c.energy_j for c in ok)
        acc = sum(c.accuracy for c in ok) / len(ok)
        peak = max(c.peak_rss_mb or 0 for c in ok)
        lines.append(f"| {model} | {variant} | {n} | {dur:.1f} | {n / dur:.1f} | {energy / n * 1000:.0f} | "
                     f"{acc:.3f} | {ok[0].size_mb or 0:.0f} | {peak:.0f} | {ok[0].load_s:.1f} |")
    lines += ["", "Recommendations (tolerance 2 points):", ""]
    for suite, pts in suite_points(cells).items():
        rec = recommend(pts, 2.0)
        lines.append(f"- **{suite}**: {rec.text if rec else 'no complete points'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
