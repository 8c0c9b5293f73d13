"""A real adaptive run against a real exhaustive run of the same grid: verdicts, cost, and agreement.

    python bench/adaptive_compare.py --adaptive STORE [--adaptive-run ID] --exhaustive STORE [--exhaustive-run ID]
        [--tolerance 2] [--json OUT.json]

Prints, per suite, both recommendations (the run's own verdict rule, evaluator/pareto.py), the two runs'
wall times (created -> finished, from the store) and their ratio, the items each run scored, and two
checks that the race measured what the exhaustive run measured:

- **answers**: on the items both runs scored, every (task, model, variant) gives the same right/wrong
  (the scoring is deterministic; a difference is a bug, not noise);
- **energy per item**: for cells the race ran to the end (all items), its energy per item over the
  exhaustive run's (the same items, measured in rounds instead of one pass; estimate meter: CPU time);
  for cells it stopped, the same ratio on a random subset of the items against all of them (a rougher
  check: item lengths vary).

Both runs should be on one machine, one after the other, nothing else running: the ratio is only as good as
that. ``--json`` writes the figures (atomically: evaluator/safeio.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.pareto import recommend, suite_points  # noqa: E402
from evaluator.safeio import atomic_write  # noqa: E402
from evaluator.store import Store  # noqa: E402


def _run(path: str, run_id: str | None) -> tuple[dict[str, Any], list[Any], dict[Any, Any]]:
    store = Store(path, readonly=True)
    runs = store.list_runs(50)
    info = next(r for r in runs if r["run_id"] == run_id) if run_id else runs[0]
    return info, [c for c in store.cells(info["run_id"]) if c.status == "ok"], store.run_items(info["run_id"])


def _wall_s(info: dict[str, Any]) -> float:
    return (datetime.fromisoformat(info["finished_at"]) - datetime.fromisoformat(info["created_at"])).total_seconds()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adaptive", required=True)
    ap.add_argument("--adaptive-run")
    ap.add_argument("--exhaustive", required=True)
    ap.add_argument("--exhaustive-run")
    ap.add_argument("--tolerance", type=float, default=2.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    a_info, a_cells, a_items = _run(args.adaptive, args.adaptive_run)
    e_info, e_cells, e_items = _run(args.exhaustive, args.exhaustive_run)
    a_pts, e_pts = suite_points(a_cells, a_items), suite_points(e_cells, e_items)
    out: dict[str, Any] = {"adaptive_run": a_info["run_id"], "exhaustive_run": e_info["run_id"], "suites": {}}
    for name, info, cells in (("adaptive  ", a_info, a_cells), ("exhaustive", e_info, e_cells)):
        print(f"{name} {info['run_id']}: {_wall_s(info):.0f} s wall, {sum(c.n_items for c in cells)} items scored")
    ratio = _wall_s(a_info) / _wall_s(e_info)
    print(f"wall-time ratio: {ratio:.1%}")
    same = 0
    for suite in sorted(e_pts):
        ra, re_ = recommend(a_pts.get(suite, []), args.tolerance), recommend(e_pts[suite], args.tolerance)
        ok = ra is not None and re_ is not None and ra.choice.label == re_.choice.label
        same += ok
        print(f"## {suite}: exhaustive {re_.choice.label if re_ else '-'}, adaptive {ra.choice.label if ra else '-'}"
              f" -> {'same' if ok else 'DIFFERENT'}")
        if ra is not None:
            print(f"   adaptive verdict: {ra.text}")
        out["suites"][suite] = {"exhaustive": re_.choice.label if re_ else None,
                                "adaptive": ra.choice.label if ra else None, "same": ok,
                                "adaptive_text": ra.text if ra else None, "exhaustive_text": re_.text if re_ else None}
    by_e = {(c.suite, c.task, c.model, c.variant): c for c in e_cells}
    mismatched, compared, ratios, sampled = [], 0, [], []
    for c in a_cells:
        k = (c.suite, c.task, c.model, c.variant)
        if k not in by_e:
            continue
        full = {r.item_id: r.correct for r in e_items.get(k, [])}
        for r in a_items.get(k, []):
            compared += 1
            if full.get(r.item_id) != r.correct:
                mismatched.append((*k, r.item_id))
        e = by_e[k]
        if c.energy_j and e.energy_j:
            r = (c.energy_j / c.n_items) / (e.energy_j / e.n_items)
            (ratios if c.n_items == e.n_items else sampled).append((k, r))
    print(f"answers: {compared - len(mismatched)} of {compared} item outcomes the same in both runs")
    for m in mismatched[:10]:
        print("   differs:", m)
    if ratios:
        rs = sorted(r for _k, r in ratios)
        print(f"energy per item, cells the race ran to the end ({len(rs)}): adaptive / exhaustive median "
              f"{statistics.median(rs):.3f}, range {rs[0]:.3f}-{rs[-1]:.3f}")
        for k, r in sorted(ratios, key=lambda kr: kr[1]):
            print(f"   {'/'.join(k)}: {r:.3f}")
    if sampled:
        rs = sorted(r for _k, r in sampled)
        print(f"energy per item, cells the race stopped early ({len(rs)}; on the first items of the shuffled order, "
              f"against all items): median {statistics.median(rs):.3f}, range {rs[0]:.3f}-{rs[-1]:.3f}")
    out.update(energy_ratio_stopped_cells={"/".join(k): r for k, r in sampled})
    out.update(wall_s={"adaptive": _wall_s(a_info), "exhaustive": _wall_s(e_info)}, ratio=ratio,
               same_verdicts=same, suites_n=len(e_pts), outcomes_compared=compared, outcomes_differ=len(mismatched),
               energy_ratio_full_cells={"/".join(k): r for k, r in ratios},
               items_scored={"adaptive": sum(c.n_items for c in a_cells),
                             "exhaustive": sum(c.n_items for c in e_cells)})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
