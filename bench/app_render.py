"""Benchmark: server time to render the Frontier page for a stored run of ~500 cells, and its report size.

A run of 3 suites x 2 tasks x 12 models x 7 variants = 504 cells (100 per-item records each) is written
into a fresh SQLite store through the real Store API; figures are synthetic but shaped like real ones
(accuracy rising and energy rising with model size, variants trading one for the other). Then:

* Streamlit's AppTest runs the real app (app.py, Frontier page, ``?run=<id>``) in this process: the first
  render (cold caches: the run is read from SQLite and the figures built) and ``--rounds`` re-renders
  (Streamlit's caches warm, as when a user moves a slider); the wall time of ``AppTest.run()`` is the
  server time (no browser; it includes script execution and building every element);
* ``frugal report RUN_ID`` writes the self-contained HTML report: its time and size.

    python bench/app_render.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = [(f"model-{k:02d}", 20e6 * 1.6 ** k) for k in range(12)]
VARIANTS = {"fp32": (1.0, 0.0), "bf16": (0.55, 0.3), "fp16": (0.6, 0.4), "int8-dynamic": (0.4, 1.5),
            "int8-weight-only": (0.7, 0.8), "prune-structured-25": (0.7, 3.0), "prune-magnitude-30": (1.0, 0.9)}
SUITES = {"finance": ("headline-sentiment", "numeracy"), "health": ("triage", "yes-no-maybe"),
          "climate": ("claim-evidence", "report-relevance")}


def build(store_path: Path) -> str:
    from evaluator.records import CellResult, ItemRecord
    from evaluator.store import Store

    rnd = random.Random(0)
    store = Store(store_path)
    n_cells = len(SUITES) * 2 * len(MODELS) * len(VARIANTS)
    run_id = store.create_run({"suites": list(SUITES), "models": [m for m, _ in MODELS], "variants": list(VARIANTS),
                               "limit": 100, "repeats": 3}, n_cells,
                              {"cpu_model": "bench", "cpu_count": 2, "torch": "n/a", "date": "2026-11-23"},
                              {"energy_method": "estimate", "is_estimate": True, "idle_power_w": None})
    for suite, tasks in SUITES.items():
        for task in tasks:
            for model, params in MODELS:
                for variant, (e_scale, acc_cost) in VARIANTS.items():
                    acc = min(0.95, 0.3 + 0.05 * math.log2(params / 20e6) - acc_cost / 100 + rnd.gauss(0, 0.02))
                    n = 100
                    correct = max(0, min(n, round(acc * n)))
                    e = params / 1e6 * 0.05 * e_scale * (1 + rnd.gauss(0, 0.03))
                    items = [ItemRecord(f"{task}-{i:03d}", i % 3, i % 3 if i < correct else (i + 1) % 3, i % 3,
                                        (0.1, 0.2, 0.7)) for i in range(n)]
                    cell = CellResult(suite=suite, task=task, model=model, variant=variant, status="ok", n_items=n,
                                      n_correct=correct, accuracy=correct / n, accuracy_ci_low=max(0, acc - .09),
                                      accuracy_ci_high=min(1, acc + .09), metrics={"accuracy": correct / n},
                                      scoring_method="loglik", energy_j=e, active_energy_j=e,
                                      energy_ci_low=e * 0.97, energy_ci_high=e * 1.03, energy_j_per_item=e / n,
                                      energy_j_per_1k=e / n * 1000, energy_j_per_correct=e / max(1, correct),
                                      energy_method="estimate", is_estimate=True, duration_s=e / 14,
                                      cpu_time_s=e / 7, repeats=3, params=int(params), nonzero_params=int(params),
                                      size_mb=params * 4 * e_scale / 1e6, peak_rss_mb=params * 6 / 1e6 + 400,
                                      weight_dtype="float32", batch_size=16,
                                      cell_key=f"{suite}/{task}/{model}/{variant}")
                    store.add_cell(run_id, cell, items)
    store.update_run(run_id, status="finished", finished_at="2026-11-23T00:00:00+00:00")
    return run_id


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="bench/out/app_render.md")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ["FRUGAL_HOME"] = str(tmp / "home")
    store_path = tmp / "render.sqlite"
    t0 = time.perf_counter()
    run_id = build(store_path)
    build_s = time.perf_counter() - t0
    os.environ["FRUGAL_STORE"] = str(store_path)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/frontier.py")
    at.query_params.update({"run": run_id})
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    assert not at.exception, at.exception
    charts = len(at.get("plotly_chart"))
    warm = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t0)
    assert not at.exception, at.exception

    from evaluator.cli import main as frugal

    report = tmp / "report.html"
    t0 = time.perf_counter()
    assert frugal(["report", run_id, "--store", str(store_path), "--out", str(report)]) == 0
    report_s = time.perf_counter() - t0
    size_mb = report.stat().st_size / 1e6
    md = [f"Command: `python bench/app_render.py --rounds {args.rounds}`.", "",
          "| figure | value |", "|---|---:|",
          "| cells in the run (3 suites x 2 tasks x 12 models x 7 variants; 100 item records each) | 504 |",
          f"| writing them to SQLite (one transaction per cell) | {build_s:.1f} s |",
          f"| Frontier page, first render (cold caches; {charts} charts) | **{cold:.2f} s** |",
          f"| Frontier page, re-render (median of {args.rounds}; min {min(warm):.2f} s) | "
          f"**{statistics.median(warm):.2f} s** |",
          f"| `frugal report` for the run: time | {report_s:.1f} s |",
          f"| report.html size (self-contained, plotly inlined) | **{size_mb:.1f} MB** |"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
