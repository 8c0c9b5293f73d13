"""Replay the adaptive race on a stored exhaustive run: which points would stop, when, and what it would cost.

    python bench/adaptive_replay.py --store STORE [--run RUN_ID] [--rounds 8] [--tolerance 2] [--seed 0]

Uses the runner's own race (evaluator/adaptive.py: seeded orders, round bounds, the stopping rule) on the
per-item outcomes an exhaustive run stored, with each cell's measured time and energy per item. It prints,
per suite, the exhaustive recommendation and the replayed one, and the share of scoring time the race
would spend (model loads per round included, from each cell's load_s). It predicts; the real adaptive run
(`frugal run --adaptive`) is what docs/benchmarks.md reports.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.adaptive import RacePoint, order_items, race_round, round_bounds  # noqa: E402
from evaluator.pareto import recommend, suite_points  # noqa: E402
from evaluator.store import Store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--run", help="run id (default: the newest)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--models", nargs="*", help="only these models (default: every model of the run)")
    args = ap.parse_args(argv)
    store = Store(args.store, readonly=True)
    run_id = args.run or store.list_runs(1)[0]["run_id"]
    cells = [c for c in store.cells(run_id) if c.status == "ok" and (not args.models or c.model in args.models)]
    items = store.run_items(run_id)
    full = suite_points(cells, items)
    total_s = sum(c.duration_s or 0 for c in cells) + sum(
        {(c.model, c.variant): c.load_s or 0 for c in cells}.values())
    spent_s = 0.0
    loads: set[tuple[int, str, str]] = set()
    by_suite: dict[str, list] = defaultdict(list)
    for c in cells:
        by_suite[c.suite].append(c)
    for suite, cs in sorted(by_suite.items()):
        tasks = sorted({c.task for c in cs})
        n_task = {t: next(c.n_items for c in cs if c.task == t) for t in tasks}
        orders = {t: order_items([r.item_id for r in items[(suite, t, cs[0].model, cs[0].variant)]], args.seed,
                                 f"{suite}/{t}") for t in tasks}
        bounds = {t: round_bounds(n_task[t], args.rounds, first=2 * args.batch_size) for t in tasks}
        cell = {(c.task, c.model, c.variant): c for c in cs}
        pts = sorted(p for p in {(c.model, c.variant) for c in cs} if all((t, *p) in cell for t in tasks))
        cs = [c for c in cs if (c.model, c.variant) in pts]
        seen = {p: 0 for p in pts}  # round reached
        stopped: dict[tuple[str, str], str] = {}
        tests = len(pts) * args.rounds
        for r in range(args.rounds):
            for p in pts:
                if p in stopped:
                    continue
                seen[p] = r
                grew = [t for t in tasks if r == 0 or bounds[t][r] > bounds[t][r - 1]]
                for t in grew:
                    c = cell[(t, *p)]
                    k = bounds[t][r] - (bounds[t][r - 1] if r else 0)
                    spent_s += (c.duration_s or 0) / c.n_items * k
                if grew:
                    loads.add((r, *p))  # one load per (round, model, variant), whichever suites it serves
            if r == args.rounds - 1:
                break
            race = []
            for p in pts:
                outcomes = {}
                for t in tasks:
                    ids = set(orders[t][:bounds[t][seen[p]]])
                    outcomes[t] = {x.item_id: x.correct for x in items[(suite, t, *p)] if x.item_id in ids}
                e = sum(cell[(t, *p)].energy_j / cell[(t, *p)].n_items for t in tasks) / len(tasks)
                race.append(RacePoint(p[0], p[1], e, outcomes, p not in stopped))
            for label, stop in race_round(race, args.tolerance, tests).items():
                p = next((q.model, q.variant) for q in race if q.label == label)
                stopped[p] = f"round {r + 1}: {stop.reason[:90]}"
            if all(p in stopped for p in pts):
                break
        # the replayed verdict: points on the items they saw
        replayed = []
        for c in cs:
            p = (c.model, c.variant)
            ids = orders[c.task][:bounds[c.task][seen[p]]]
            keep = {x.item_id: x for x in items[(suite, c.task, *p)]}
            recs = [keep[i] for i in ids]
            n_ok = sum(x.correct for x in recs)
            replayed.append(replace(c, n_items=len(recs), n_correct=n_ok, accuracy=n_ok / len(recs),
                                    energy_j=c.energy_j / c.n_items * len(recs)))
        rec_full = recommend(full[suite], args.tolerance)
        rec_rep = recommend(suite_points(replayed)[suite], args.tolerance)
        print(f"## {suite}")
        print(f"exhaustive: {rec_full.choice.label} (best {rec_full.best.label})")
        print(f"replayed:   {rec_rep.choice.label} (best {rec_rep.best.label})"
              f" -> {'same' if rec_rep.choice.label == rec_full.choice.label else 'DIFFERENT'}")
        for p in pts:
            print(f"  {p[0]:<14} {p[1]:<22} rounds {seen[p] + 1:>2}  {stopped.get(p, 'to the end')}")
    load_s = sum(next(c.load_s or 0 for c in cells if (c.model, c.variant) == (m, v)) for _r, m, v in loads)
    print(f"\nscoring + loads: exhaustive {total_s:.0f} s, replayed race {spent_s + load_s:.0f} s "
          f"({(spent_s + load_s) / total_s:.0%}); loads {load_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
