"""Benchmark: wall time and peak memory of one cell against the number of items (issue 8, #4).

The finance headline-sentiment items (152 test items) are cycled with fresh ids into a temporary suite of
800 items; each size (100, 200, 400, 800) runs as its own ``frugal run`` process (real CLI, fresh store,
one repeat, meter ``estimate``) so that peak RSS is that size's own. Reports the cell's scoring window, the
process wall time (load included), peak RSS of the scoring phase (VmHWM after Frugal resets it),
and a least-squares fit ``t = a + b * n`` with the largest relative residual: a super-linear term would
show as time per item growing with n.

    python bench/scaling.py [--model smollm2-135m] [--sizes 100 200 400 800]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _out import write_section  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent


def make_suite(dest: Path, n: int) -> Path:
    src = ROOT / "domains" / "finance"
    spec = yaml.safe_load((src / "suite.yaml").read_text())
    task = next(t for t in spec["tasks"] if t["name"] == "headline-sentiment")
    rows = [json.loads(line) for line in (src / task["data"]["path"]).read_text().splitlines() if line.strip()]
    test = [r for r in rows if r.get("split", "test") == "test"]
    train = [r for r in rows if r.get("split") == "train"]
    out = [dict(r, id=f"{r['id']}-c{k // len(test)}") for k, r in enumerate(test[k % len(test)] for k in range(n))]
    dest.mkdir(parents=True)
    (dest / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train + out))
    task = dict(task, name="scaling", data={"path": "items.jsonl"})
    (dest / "suite.yaml").write_text(yaml.safe_dump({"name": "scaling", "version": 1, "description": "cycled "
                                                     "finance headlines for the scaling benchmark",
                                                     "tasks": [task]}, sort_keys=False))
    return dest


def one(model: str, suite: Path, n: int, batch: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    cmd = [sys.executable, "-m", "evaluator.cli", "run", "--suite", str(suite), "--model", model, "--variant", "fp32",
           "--limit", str(n), "--repeats", "1", "--meter", "estimate", "--batch-size", str(batch),
           "--store", str(tmp / "s.sqlite"), "--out", str(tmp / "out")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    cell = json.loads((tmp / "out" / "results.json").read_text())["cells"][0]
    assert cell["status"] == "ok" and cell["n_items"] == n, cell.get("error")
    return {"n": n, "window_s": cell["duration_s"], "wall_s": wall, "peak_rss_scoring_mb": cell["peak_rss_mb"],
            "accuracy": cell["accuracy"]}


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 400, 800])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="bench/out/scaling.md")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    suite = make_suite(Path(tempfile.mkdtemp()) / "scaling", max(args.sizes))
    res = []
    for n in args.sizes:
        res.append(one(args.model, suite, n, args.batch_size))
        print(res[-1], file=sys.stderr, flush=True)
    a, b = fit([r["n"] for r in res], [r["window_s"] for r in res])
    resid = max(abs(r["window_s"] - (a + b * r["n"])) / r["window_s"] for r in res)
    rows = [f"| {r['n']} | {r['window_s']:.1f} | {r['window_s'] / r['n'] * 1000:.0f} | {r['wall_s']:.1f} | "
            f"{r['peak_rss_scoring_mb']:.0f} | {r['accuracy']:.3f} |" for r in res]
    md = [f"Command: `python bench/scaling.py --model {args.model}` (batch {args.batch_size}, one repeat, "
          "cycled finance headlines).", "",
          "| items | scoring window s | ms per item | process wall s | peak RSS while scoring MB | accuracy |",
          "|---:|---:|---:|---:|---:|---:|", *rows, "",
          f"Least-squares fit of the scoring window: t = {a:.2f} s + {b * 1000:.1f} ms x n; largest relative "
          f"residual {resid * 100:.1f} %. Time per item at the largest size / at the smallest: "
          f"{res[-1]['window_s'] / res[-1]['n'] / (res[0]['window_s'] / res[0]['n']):.2f}."]
    write_section(args.out, md, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
