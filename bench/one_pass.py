"""One pass per item against whole-pass repeats: the time saved, and whether the window interval covers the repeats.

    python bench/one_pass.py [--models minilm-l6 smollm2-135m] [--suite finance] [--limit 64] [--repeats 3]

Runs the same grid twice in fresh stores, in this order: ``--repeats 1`` (the default: each item scored once,
the energy interval from the windows within the pass) and ``--repeats N`` (the old default: N whole passes).
Prints the wall time of each and their ratio, and per cell the one-pass energy with its 95 % interval beside
the N whole passes' energies (each pass's windows summed): "covers" when every repeat lies inside.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.config import RunConfig  # noqa: E402
from evaluator.runner import run  # noqa: E402


def _passes(cell, repeats: int) -> list[float]:
    """Energy of each whole pass of a --repeats N cell: its windows in order, split into N equal runs of items."""
    per_pass = cell.n_items
    out, acc, items = [], 0.0, 0
    for w in cell.energy_windows:
        acc += w["energy_j"]
        items += w["items"]
        if items >= per_pass:
            out.append(acc)
            acc, items = 0.0, 0
    return out[:repeats]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    ap.add_argument("--variants", nargs="+", default=["fp32", "prune-structured-25"])
    ap.add_argument("--suite", default="finance")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="frugal-onepass-"))
    results, walls = {}, {}
    for reps in (1, args.repeats):
        cfg = RunConfig(suites=(args.suite,), models=tuple(args.models), variants=tuple(args.variants),
                        limit=args.limit, repeats=reps, meter="estimate", idle_s=0,
                        store=str(tmp / f"r{reps}.sqlite"))
        t0 = time.perf_counter()
        results[reps] = run(cfg)
        walls[reps] = time.perf_counter() - t0
    print(f"grid: {args.suite} x {args.models} x {args.variants}, {args.limit} items per task")
    print(f"wall: one pass {walls[1]:.1f} s, {args.repeats} passes {walls[args.repeats]:.1f} s, "
          f"ratio {walls[args.repeats] / walls[1]:.2f}x")
    many = {(c.task, c.model, c.variant): c for c in results[args.repeats].cells}
    covered = 0
    print("| task | model | variant | one pass J [95% CI] | windows | N-pass energies J | covers |")
    print("|---|---|---|---|---:|---|---|")
    for c in results[1].cells:
        r = many[(c.task, c.model, c.variant)]
        passes = _passes(r, args.repeats)
        ok = all(c.energy_ci_low <= e <= c.energy_ci_high for e in passes)
        covered += ok
        print(f"| {c.task} | {c.model} | {c.variant} | {c.energy_j:.2f} [{c.energy_ci_low:.2f}-"
              f"{c.energy_ci_high:.2f}] | {len(c.energy_windows)} | {', '.join(f'{e:.2f}' for e in passes)} | "
              f"{'yes' if ok else 'NO'} |")
    print(f"covered: {covered} of {len(results[1].cells)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
