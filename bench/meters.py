"""Benchmark: meter overhead and energy repeatability (issue 3).

1. Overhead. The same scoring loop (Frugal's scorer on ``--limit`` pre-tokenised items of one task, model
   loaded once) timed bare and wrapped in ``meter.begin``/``meter.end``, alternating, ``--rounds`` times,
   for the ``estimate`` meter and for the ``rapl`` meter on a synthetic powercap tree (its reads and its
   wrap-guard thread are the real code; only the counters are files). Overhead = median(with) / median(bare) - 1.
2. Repeatability. One cell per model through a real ``run()`` with ``--repeats 5`` (meter ``estimate``, the
   only one this machine has): the coefficient of variation of the five per-pass energies, recovered exactly
   from the stored 95 % t-interval (half-width = t(0.975, 4) * sd / sqrt(5)), and of the durations.

    python bench/meters.py [--overhead-model smollm2-135m] [--cv-models minilm-l6 smollm2-135m ...]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from _out import write_section  # noqa: E402 - bench/ is on sys.path when run as a script

from evaluator.backends import get_backend  # noqa: E402
from evaluator.config import RunConfig  # noqa: E402
from evaluator.environment import environment  # noqa: E402
from evaluator.meters import MeterOptions, create_meter  # noqa: E402
from evaluator.models import default_registry_path, load_registry, resolve  # noqa: E402
from evaluator.runner import run  # noqa: E402
from evaluator.scoring import encode_requests, load, score_causal  # noqa: E402
from evaluator.stats import t_critical_95  # noqa: E402
from evaluator.suite import load_suite  # noqa: E402
from evaluator.variants import resolve_variant  # noqa: E402


def synthetic_rapl(root: Path) -> Path:
    """A two-socket powercap tree with DRAM (static counters: the cost measured is the meter's own)."""
    for s in range(2):
        pkg = root / f"intel-rapl:{s}"
        for path, name in ((pkg, f"package-{s}"), (pkg / f"intel-rapl:{s}:0", "dram")):
            path.mkdir(parents=True)
            (path / "name").write_text(name + "\n")
            (path / "energy_uj").write_text("123456789\n")
            (path / "max_energy_range_uj").write_text("262143328850\n")
    return root


def overhead(model: str, suite: str, task_name: str, limit: int, batch: int, rounds: int) -> list[str]:
    reg = load_registry(default_registry_path())
    lm = load(resolve(reg[model]), resolve_variant("fp32"), "cpu")
    task = next(t for t in load_suite(suite).tasks if t.name == task_name)
    items = task.select(limit)
    reqs = encode_requests(lm.tokenizer, task, items)
    score = lambda: score_causal(lm, task, items, batch, reqs)  # noqa: E731
    score()  # warm-up
    meters = {"estimate": create_meter("estimate", MeterOptions()),
              "rapl (synthetic tree)": create_meter(
                  "rapl", MeterOptions(rapl_root=str(synthetic_rapl(Path(tempfile.mkdtemp()) / "pc"))))}
    rows = []
    for name, meter in meters.items():
        bare, wrapped = [], []
        for r in range(rounds):
            t0 = time.perf_counter()
            score()
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            meter.begin(f"w{r}")
            score()
            meter.end(f"w{r}")
            wrapped.append(time.perf_counter() - t0)
        b, w = statistics.median(bare), statistics.median(wrapped)
        rows.append(f"| {name} | {model} | {len(items)} | {b:.3f} | {w:.3f} | **{(w / b - 1) * 100:+.2f} %** | "
                    f"{min(bare):.3f} / {min(wrapped):.3f} |")
        print(rows[-1], file=sys.stderr, flush=True)
        meter.close()
    return rows


def direct_cost(calls: int) -> list[str]:
    """The meter's own cost, without model noise: begin+end pairs in a tight loop, and the CPU time of
    RAPL's wrap-guard thread over an open 3 s window (sampled via the thread's CPU clock)."""
    import threading

    rows = []
    root = synthetic_rapl(Path(tempfile.mkdtemp()) / "pc2")
    for name, meter in (("estimate", create_meter("estimate", MeterOptions())),
                        ("rapl (synthetic tree)", create_meter("rapl", MeterOptions(rapl_root=str(root))))):
        t0 = time.perf_counter()
        for k in range(calls):
            meter.begin(f"c{k}")
            meter.end(f"c{k}")
        per_pair_us = (time.perf_counter() - t0) / calls * 1e6
        guard = ""
        if name.startswith("rapl"):
            meter.begin("guard")
            time.sleep(0.05)
            th = next(t for t in threading.enumerate() if t.name == "rapl-wrap-guard")
            clk = time.pthread_getcpuclockid(th.ident)
            c0 = time.clock_gettime(clk)
            time.sleep(3.0)
            guard_pct = (time.clock_gettime(clk) - c0) / 3.0 * 100
            meter.end("guard")
            guard = f"{guard_pct:.3f} % of one core"
        rows.append(f"| {name} | {per_pair_us:.0f} µs | {per_pair_us / 1e6 * 100:.4f} % | {guard or 'none'} |")
        print(rows[-1], file=sys.stderr, flush=True)
        meter.close()
    return rows


def repeatability(models: list[str], suite: str, limit: int, batch: int) -> tuple[list[str], dict]:
    rows, raw = [], {}
    for m in models:
        store = Path(tempfile.mkdtemp()) / "cv.sqlite"
        cfg = RunConfig(suites=(suite,), models=(m,), variants=("fp32",), limit=limit, repeats=5, batch_size=batch,
                        meter="estimate", idle_s=0, store=str(store))
        res = run(cfg)
        for c in res.cells:
            if c.status != "ok":
                rows.append(f"| {m} | {c.task} | failed: {c.error} | | | |")
                continue
            k = t_critical_95(4) / math.sqrt(5)
            e_sd = (c.energy_ci_high - c.energy_j) / k
            d_sd = (c.duration_ci_high - c.duration_s) / k
            cv_e, cv_d = e_sd / c.energy_j * 100, d_sd / c.duration_s * 100
            raw[f"{m}/{c.task}"] = {"energy_j": c.energy_j, "sd_j": e_sd, "cv_pct": cv_e, "duration_s": c.duration_s,
                                    "cv_duration_pct": cv_d, "passes_per_window": c.passes_per_window}
            rows.append(f"| {m} | {suite}/{c.task} | {c.n_items} | {c.energy_j:.2f} | **{cv_e:.1f} %** | "
                        f"{cv_d:.1f} % |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows, raw


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--overhead-model", default="smollm2-135m")
    ap.add_argument("--cv-models", nargs="+",
                    default=["minilm-l6", "mpnet-base", "smollm2-135m", "gemma3-270m", "qwen2.5-0.5b"])
    ap.add_argument("--suite", default="finance")
    ap.add_argument("--task", default="headline-sentiment")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--skip-cv", action="store_true")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", default="bench/out/meters.md")
    args = ap.parse_args()
    direct = direct_cost(args.calls)
    ov = overhead(args.overhead_model, args.suite, args.task, args.limit, args.batch_size, args.rounds)
    cv, raw = ([], {}) if args.skip_cv else repeatability(args.cv_models, args.suite, args.limit, args.batch_size)
    env = environment(torch.get_num_threads(), "cpu", (get_backend("torch"),))
    md = [f"Machine: {env['cpu_model']}, {env['cpu_count']} cores, torch {env['torch']}, {env['date']}. "
          f"Command: `python bench/meters.py --limit {args.limit} --rounds {args.rounds}`.", "",
          f"**Meter overhead** ({args.suite}/{args.task}, batch {args.batch_size}, medians of {args.rounds} "
          "alternating rounds):", "",
          "| meter | model | items | bare s | with meter s | overhead | min bare / min with |",
          "|---|---|---:|---:|---:|---:|---:|", *ov, "",
          f"**The meter's own cost** (begin + end pairs in a tight loop, {args.calls} calls; the wrap-guard "
          "thread's CPU clock over an open 3 s window):", "",
          "| meter | per begin+end pair | of a 1 s window | background thread |", "|---|---:|---:|---|", *direct]
    if cv:
        md += ["", f"**Repeatability** (one cell per model and task, 5 repeats, `estimate` meter, {args.limit} items):",
               "", "| model | task | items | mean J per pass | CV of energy | CV of duration |",
               "|---|---|---:|---:|---:|---:|", *cv]
    write_section(args.out, md, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
