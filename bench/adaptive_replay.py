"""Replay the adaptive race on a stored exhaustive run: which points would stop, when, and what it would cost.

    python bench/adaptive_replay.py --store STORE [--run RUN_ID] [--rounds 8] [--tolerance 2] [--seed 0]
    python bench/adaptive_replay.py --store STORE --export bench/data/OUTCOMES.json.gz   # keep the outcomes
    python bench/adaptive_replay.py --outcomes bench/data/OUTCOMES.json.gz               # replay them

Uses the runner's own race (evaluator/adaptive.py: seeded orders, round bounds, the stopping rules) on the
per-item outcomes an exhaustive run stored, with each cell's measured time and energy per item. It prints,
per suite, the exhaustive recommendation and the replayed one, and the share of scoring time the race
would spend (each model's load included once, from its cells' load_s, as the runner keeps models loaded
between rounds where memory allows; ``--reload-each-round`` counts one load per round it races). It
predicts; the real adaptive run (`frugal run --adaptive`) is what docs/benchmarks.md reports.

``--export`` writes the run's per-item outcomes (item ids and right/wrong, with each cell's time, energy
and load time; no model output) as a small gzipped JSON file, so that the replay survives the store.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.adaptive import (  # noqa: E402
    WHOLE_SHARE,
    RacePoint,
    order_items,
    race_bounds,
    race_round,
    race_tests,
    whole_points,
)
from evaluator.pareto import frontier_tasks, recommend, suite_points  # noqa: E402
from evaluator.records import CellResult, ItemRecord  # noqa: E402
from evaluator.store import Store  # noqa: E402

Items = dict[tuple[str, str, str, str], list[ItemRecord]]
KEEP = ("suite", "task", "model", "variant", "status", "n_items", "n_correct", "accuracy", "chance_accuracy",
        "energy_j", "energy_method", "is_estimate", "duration_s", "load_s", "task_type", "backend_version")


def export(cells: list[CellResult], items: Items, meta: dict[str, Any], path: Path) -> None:
    """Write the cells' figures and per-item outcomes (gzipped JSON; written whole, then renamed)."""
    rows = []
    for c in cells:
        recs = items.get((c.suite, c.task, c.model, c.variant), [])
        rows.append({**{k: getattr(c, k) for k in KEEP}, "items": [r.item_id for r in recs],
                     "correct": "".join("1" if r.correct else "0" for r in recs)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump({**meta, "cells": rows}, f, separators=(",", ":"))
    tmp.replace(path)


def load(path: Path) -> tuple[list[CellResult], Items, dict[str, Any]]:
    """Inverse of :func:`export`."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    cells, items = [], {}
    for row in data.pop("cells"):
        ids, ok = row.pop("items"), row.pop("correct")
        c = CellResult(**row)
        cells.append(c)
        items[(c.suite, c.task, c.model, c.variant)] = [
            ItemRecord(i, -1, -1, -1, (), "", "", bit == "1") for i, bit in zip(ids, ok, strict=True)]
    return cells, items, data


def _race_suite(suite: str, cs: list[CellResult], items: Items, full: dict[str, Any],
                args: argparse.Namespace) -> tuple[bool, float, set[tuple[int, str, str]]]:
    """Replay one suite's race; print its verdicts and stops. (same recommendation, scoring s, loads)."""
    spent_s = 0.0
    loads: set[tuple[int, str, str]] = set()
    tasks = sorted(frontier_tasks(cs, suite)[0])
    n_task = {t: next(c.n_items for c in cs if c.task == t) for t in tasks}
    orders = {t: order_items([r.item_id for r in items[(suite, t, cs[0].model, cs[0].variant)]], args.seed,
                             f"{suite}/{t}") for t in tasks}
    bounds = {t: race_bounds(n_task[t], args.rounds, args.batch_size) for t in tasks}
    cell = {(c.task, c.model, c.variant): c for c in cs}
    pts = sorted(p for p in {(c.model, c.variant) for c in cs} if all((t, *p) in cell for t in tasks))
    cs = [c for c in cs if (c.model, c.variant) in pts and c.task in tasks]
    seen = {p: 0 for p in pts}  # round reached
    stopped: dict[tuple[str, str], str] = {}

    # as the runner: after round 1, the points whose whole suite costs at most --whole-share of one round of
    # the dearest point are scored on every item in round 2 (their time per item: the exhaustive run's)
    per_item = {p: sum(cell[(t, *p)].duration_s or 0 for t in tasks) / sum(cell[(t, *p)].n_items for t in tasks)
                for p in pts}
    whole: set[tuple[str, str]] = set()

    def upto(p: tuple[str, str], t: str) -> list[ItemRecord]:
        keep = {x.item_id: x for x in items[(suite, t, *p)]}
        return [keep[i] for i in orders[t][:n_task[t] if p in whole and seen[p] > 0 else bounds[t][seen[p]]]]

    def partial() -> list[CellResult]:
        out = []
        for c in cs:
            recs = upto((c.model, c.variant), c.task)
            n_ok = sum(x.correct for x in recs)
            out.append(replace(c, n_items=len(recs), n_correct=n_ok, accuracy=n_ok / len(recs),
                               energy_j=(c.energy_j or 0) / c.n_items * len(recs)))
        return out

    for r in range(args.rounds):
        for p in pts:
            if p in stopped:
                continue
            if p in whole and seen[p] > 0:
                continue  # scored whole already
            seen[p] = r
            grew = [t for t in tasks if r == 0 or bounds[t][r] > bounds[t][r - 1] or p in whole]
            for t in grew:
                c = cell[(t, *p)]
                k = bounds[t][r] - (bounds[t][r - 1] if r else 0)
                if p in whole:
                    k = n_task[t] - bounds[t][0]
                spent_s += (c.duration_s or 0) / c.n_items * k
            if grew:
                loads.add((r, *p))  # one load per (round, model, variant), whichever suites it serves
        if r == args.rounds - 1:
            break
        chance = {(q.model, q.variant): q.above_chance for q in suite_points(partial())[suite]}
        race = []
        for p in pts:
            outcomes = {t: {x.item_id: x.correct for x in upto(p, t)} for t in tasks}
            e = sum(cell[(t, *p)].energy_j or 0 for t in tasks) / sum(cell[(t, *p)].n_items for t in tasks)
            race.append(RacePoint(p[0], p[1], e, outcomes, p not in stopped, chance.get(p),
                                  None if args.no_fpc else n_task))
        tests = race_tests(len(pts), args.rounds, len(pts) - len(stopped))  # as the runner: Holm over points
        for label, stop in race_round(race, args.tolerance, tests, args.alpha).items():
            p = next((q.model, q.variant) for q in race if q.label == label)
            stopped[p] = f"round {r + 1}: {stop.reason[:100]}"
        if r == 0:
            whole = {p for p in whole_points(per_item, sum(n_task.values()), args.rounds, args.whole_share)
                     if p not in stopped}
            if whole:
                print(f"scored whole in round 2: {', '.join(' '.join(p) for p in sorted(whole))}")
        if all(p in stopped for p in pts):
            break
    rec_full = recommend(full[suite], args.tolerance)
    rec_rep = recommend(suite_points(partial())[suite], args.tolerance)
    same = rec_rep.choice.label == rec_full.choice.label
    print(f"## {suite}")
    print(f"exhaustive: {rec_full.choice.label} (best {rec_full.best.label})")
    print(f"replayed:   {rec_rep.choice.label} (best {rec_rep.best.label}) -> {'same' if same else 'DIFFERENT'}")
    for p in pts:
        print(f"  {p[0]:<14} {p[1]:<22} rounds {seen[p] + 1:>2}  {stopped.get(p, 'to the end')}")
    return same, spent_s, loads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--store")
    src.add_argument("--outcomes", help="a file written by --export")
    ap.add_argument("--run", help="run id (default: the newest)")
    ap.add_argument("--export", help="write the run's per-item outcomes here (.json.gz) and stop")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--alpha", type=float, default=0.05, help="the race's error rate per suite (default 0.05)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-fpc", action="store_true",
                    help="compare as if the items were drawn from an unlimited domain (the race before 2026-12-03)")
    ap.add_argument("--models", nargs="*", help="only these models (default: every model of the run)")
    ap.add_argument("--reload-each-round", action="store_true",
                    help="count a load per round a model races (the runner before 2026-12-03 evening; it now keeps "
                         "models loaded between rounds as memory allows, one load each)")
    ap.add_argument("--whole-share", type=float, default=WHOLE_SHARE,
                    help="score on every item in round 2 the points whose whole suite costs at most this share of "
                         f"one round of the dearest point (default {WHOLE_SHARE:g}, the runner's; 0: none)")
    args = ap.parse_args(argv)
    if args.store:
        store = Store(args.store, readonly=True)
        run_id = args.run or store.list_runs(1)[0]["run_id"]
        cells, items = store.cells(run_id), store.run_items(run_id)
        meta: dict[str, Any] = {"run_id": run_id, "store": str(args.store)}
        if args.export:
            export(cells, items, meta, Path(args.export))
            print(f"wrote {args.export}: {len(cells)} cells, {sum(len(v) for v in items.values())} item outcomes")
            return 0
    else:
        cells, items, meta = load(Path(args.outcomes))
    cells = [c for c in cells if c.status == "ok" and (not args.models or c.model in args.models)]
    full = suite_points(cells, items)
    total_s = sum(c.duration_s or 0 for c in cells) + sum(
        {(c.model, c.variant): c.load_s or 0 for c in cells}.values())
    by_suite: dict[str, list[CellResult]] = defaultdict(list)
    for c in cells:
        by_suite[c.suite].append(c)
    print(f"run {meta.get('run_id')}: {len(cells)} cells; rounds {args.rounds}, tolerance {args.tolerance:g} points, "
          f"seed {args.seed}")
    same, spent_s = 0, 0.0
    loads: set[tuple[int, str, str]] = set()
    for suite, cs in sorted(by_suite.items()):
        ok, spent, used = _race_suite(suite, cs, items, full, args)
        same, spent_s = same + ok, spent_s + spent
        loads |= used
    loaded = loads if args.reload_each_round else {(0, m, v) for _r, m, v in loads}
    load_s = sum(next(c.load_s or 0 for c in cells if (c.model, c.variant) == (m, v)) for _r, m, v in loaded)
    print(f"\nsame recommendation in {same} of {len(by_suite)} suites")
    print(f"scoring + loads: exhaustive {total_s:.0f} s, replayed race {spent_s + load_s:.0f} s "
          f"({(spent_s + load_s) / total_s:.0%}); loads {load_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
