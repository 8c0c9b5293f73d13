"""Adaptive evaluation, one pass per item, extending stored cells, and how sure a verdict is (issue 16).

The race runs on the real runner and store with fake models of known accuracy (evaluator/backends/fake.py,
``skill``) and cost, on a synthetic suite whose items carry their gold answer in the prompt; the pure parts
(paired gaps, the stopping rule, power) are tested on hand-made outcomes.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from evaluator.adaptive import RacePoint, order_items, race_round, round_bounds, z_for
from evaluator.cli import main
from evaluator.config import RunConfig
from evaluator.errors import ValidationError
from evaluator.measure import MIN_WINDOWS, Window, combine, measure, summarise
from evaluator.meters import MeterOptions, create_meter
from evaluator.pareto import recommend
from evaluator.records import SuitePoint
from evaluator.runner import run
from evaluator.stats import items_needed, paired_gap
from evaluator.store import Store
from evaluator.tasks.base import ItemScore, ScoringPass

#: name -> (skill, cost): two points dominated by cheap-good (mid-bad, dear-bad), three on the frontier
MODELS = {"cheap-ok": (0.75, 0.5), "cheap-good": (0.9, 1), "mid-bad": (0.4, 2), "dear-good": (0.97, 6),
          "dear-bad": (0.3, 8)}
DOMINATED = {"mid-bad", "dear-bad"}


def _suite(root: Path, sizes: dict[str, int], tag: str = "") -> Path:
    suite = root / f"race{tag}"
    suite.mkdir(parents=True, exist_ok=True)
    tasks = "".join(f"""  - name: {t}
    type: multiple_choice
    description: synthetic items of known gold
    data:
      path: {t}.jsonl
    prompt: "Q {{q}} [gold={{g}}]\\nAnswer:"
    metrics: [accuracy]
""" for t in sizes)
    (suite / "suite.yaml").write_text(f"name: race{tag}\ndescription: racing test\nversion: 1\ntasks:\n{tasks}")
    for t, n in sizes.items():
        rows = [{"id": f"{t}{i}", "q": f"item {t}{i}{tag}", "g": i % 4, "choices": ["w", "x", "y", "z"],
                 "answer": i % 4} for i in range(n)]
        (suite / f"{t}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return suite


@pytest.fixture()
def race(tmp_path: Path) -> tuple[Path, Path]:
    """A two-task synthetic suite and a models file of five fake models of known skill and cost."""
    suite = _suite(tmp_path, {"a": 120, "b": 80})
    lines = ["models:"]
    for i, (name, (skill, cost)) in enumerate(MODELS.items()):
        d = tmp_path / "models" / name
        d.mkdir(parents=True)
        (d / "fake.json").write_text(json.dumps({"seed": i, "skill": skill, "cost": cost}))
        lines += [f"  - name: {name}", "    kind: causal-lm", f"    path: {d}"]
    mf = tmp_path / "models.yaml"
    mf.write_text("\n".join(lines) + "\n")
    return suite, mf


def _cfg(race: tuple[Path, Path], store: Path, **kw) -> RunConfig:
    suite, mf = race
    base = {"suites": (str(suite),), "models": tuple(MODELS), "variants": ("fake",), "meter": "estimate",
            "idle_s": 0, "store": str(store), "models_file": str(mf), "batch_size": 8}
    return RunConfig(**{**base, **kw})


def _items(store: Path, run_id: str) -> dict[tuple[str, str], list[str]]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT c.task, c.model, i.item_id FROM cells c JOIN items i ON "
                          "i.cell_id = COALESCE(c.reused_from, c.id) WHERE c.run_id=? ORDER BY c.id, i.idx",
                          (run_id,)).fetchall()
    out: dict[tuple[str, str], list[str]] = {}
    for task, model, item in rows:
        out.setdefault((task, model), []).append(item)
    return out


# ------------------------------------------------------------------------------------------ the race
def test_the_race_stops_exactly_the_dominated_points_and_keeps_the_verdict(race, tmp_path):
    adaptive = run(_cfg(race, tmp_path / "a.sqlite", adaptive=True, rounds=6))
    exhaustive = run(_cfg(race, tmp_path / "e.sqlite"))
    assert adaptive.status == exhaustive.status == "finished"
    stopped = {c.model for c in adaptive.cells if c.stopped_reason and c.stopped_reason.startswith("off the")}
    assert stopped == DOMINATED  # exactly the dominated ones; never a frontier point
    for c in adaptive.cells:
        assert c.items_available == (120 if c.task == "a" else 80)
        if c.model in DOMINATED:
            assert c.n_items < c.items_available and c.stopped_after_round is not None
            dominator = c.stopped_reason.split(": ", 1)[1].split(" fake ", 1)[0]  # named in the reason
            assert MODELS[dominator][1] <= MODELS[c.model][1] and MODELS[dominator][0] > MODELS[c.model][0]
        else:
            assert c.n_items == c.items_available
    # the verdict of the race is the exhaustive run's
    (suite,) = adaptive.frontiers
    rec_a, rec_e = recommend(adaptive.frontiers[suite]), recommend(exhaustive.frontiers[suite])
    assert (rec_a.choice.model, rec_a.best.model) == (rec_e.choice.model, rec_e.best.model)
    front_a = {p.model for p in adaptive.frontiers[suite] if p.on_frontier}
    front_e = {p.model for p in exhaustive.frontiers[suite] if p.on_frontier}
    assert front_a == front_e == set(MODELS) - DOMINATED
    # and it scored fewer items
    assert sum(c.n_items for c in adaptive.cells) < sum(c.n_items for c in exhaustive.cells)


def test_every_point_sees_the_same_items_in_the_same_seeded_order(race, tmp_path):
    store = tmp_path / "p.sqlite"
    res = run(_cfg(race, store, adaptive=True, rounds=6, seed=7))
    seen = _items(store, res.run_id)
    for task, n in (("a", 120), ("b", 80)):
        order = [f"{task}{i}" for i in order_items(list(range(n)), 7, f"{res.cells[0].suite}/{task}")]
        for model in MODELS:
            ids = seen[(task, model)]
            assert ids == order[:len(ids)], (task, model)  # a prefix of the one order: pairs stay paired
    # another seed, another order (the order is the seed's, not the file's)
    assert order_items(list(range(50)), 1, "x") != order_items(list(range(50)), 2, "x")


def test_a_later_run_with_more_items_extends_the_stored_cells(race, tmp_path):
    store = tmp_path / "x.sqlite"
    small = run(_cfg(race, store, limit=24))
    big = run(_cfg(race, store, limit=40))
    fresh = run(_cfg(race, tmp_path / "fresh.sqlite", limit=40))
    by = {(c.task, c.model): c for c in big.cells}
    for c in small.cells:
        b = by[(c.task, c.model)]
        assert b.extended_from_items == 24 and b.n_items == 40 and not b.reused
        assert len(b.energy_windows) == len(c.energy_windows) + 2  # 16 new items in batches of 8: two windows
    items_big, items_fresh = _items(store, big.run_id), _items(tmp_path / "fresh.sqlite", fresh.run_id)
    assert items_big == items_fresh  # the same items, in the same order
    for c in fresh.cells:  # the same answers as measuring all 40 at once
        assert by[(c.task, c.model)].n_correct == c.n_correct
    # a third run on the same 40 items reuses them whole
    again = run(_cfg(race, store, limit=40))
    assert all(c.reused for c in again.cells)


def test_a_stored_cell_whose_items_changed_is_not_extended(race, tmp_path):
    store = tmp_path / "x.sqlite"
    run(_cfg(race, store, limit=16))
    suite, _ = race
    rows = (suite / "a.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    first["q"] = "a different question"
    (suite / "a.jsonl").write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
    res = run(_cfg(race, store, limit=32))
    by = {(c.task, c.model): c for c in res.cells}
    assert all(by[("a", m)].extended_from_items == 0 for m in MODELS)  # item a0 changed: measured afresh
    assert all(by[("b", m)].extended_from_items == 16 for m in MODELS)  # task b did not change


def test_adaptive_settings_are_checked():
    with pytest.raises(ValidationError, match="local executor"):
        RunConfig(adaptive=True, executor="ray").validate()
    with pytest.raises(ValidationError, match="rounds"):
        RunConfig(rounds=1).validate()
    with pytest.raises(ValidationError, match="true or false"):
        RunConfig(adaptive="yes").validate()  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- the stopping rule
def _outcomes(correct: list[bool], task: str = "t") -> dict[str, dict[str, bool]]:
    return {task: {str(i): c for i, c in enumerate(correct)}}


def _pt(model: str, energy: float, correct: list[bool], active: bool = True) -> RacePoint:
    return RacePoint(model, "fp32", energy, _outcomes(correct), active)


def test_a_cheaper_more_accurate_point_stops_the_dearer_one_only_beyond_the_tolerance():
    n = 200
    good = [i % 10 != 0 for i in range(n)]  # 90 %
    bad = [i % 2 == 0 for i in range(n)]  # 50 %
    close = [i % 10 not in (0, 1) for i in range(n)]  # 80 %: below good by 10 points
    out = race_round([_pt("good", 1.0, good), _pt("bad", 2.0, bad), _pt("close", 3.0, close)], 2.0, tests=6)
    assert set(out) == {"bad fp32", "close fp32", "good fp32"}
    assert out["good fp32"].reason.startswith("decided")  # the only point left in contention
    assert "good fp32" in out["bad fp32"].reason and out["bad fp32"].by == "good fp32"
    # a tolerance wider than the gap keeps the close one in the race
    out = race_round([_pt("good", 1.0, good), _pt("close", 3.0, close)], 15.0, tests=6)
    assert out == {}
    # a more accurate point that costs more never stops a cheaper one (the cheap one is on the frontier)
    assert race_round([_pt("good", 5.0, good), _pt("bad", 1.0, bad)], 2.0, tests=2) == {}


def test_too_few_items_or_a_weak_difference_stop_nothing():
    few_good, few_bad = [True] * 20, [False] * 20
    assert race_round([_pt("g", 1.0, few_good), _pt("b", 2.0, few_bad)], 2.0, tests=2) == {}  # < 30 items
    n = 60
    a = [i % 3 != 0 for i in range(n)]  # 67 %
    b = [i % 3 != 0 or i % 9 == 0 for i in range(n)]  # 7 points better only
    assert race_round([_pt("b", 1.0, b), _pt("a", 2.0, a)], 2.0, tests=20) == {}


def test_the_correction_grows_with_the_number_of_tests():
    assert z_for(1) < z_for(10) < z_for(100)
    assert z_for(1) == pytest.approx(1.6449, abs=1e-4)
    n = 60
    a = [i % 2 == 0 for i in range(n)]
    b = [i % 4 != 3 for i in range(n)]  # 25 points better on the same items
    pts = [_pt("b", 1.0, b), _pt("a", 2.0, a)]
    assert set(race_round(pts, 0.0, tests=2)) == {"a fp32", "b fp32"}  # a stops; b, alone, is decided
    assert race_round(pts, 0.0, tests=10**9) == {}


def test_stopped_points_do_not_race_and_the_last_one_left_is_decided():
    n = 100
    good, bad = [True] * n, [i % 2 == 0 for i in range(n)]
    out = race_round([_pt("g", 1.0, good), _pt("b", 2.0, bad, active=False)], 2.0, tests=4)
    assert list(out) == ["g fp32"] and out["g fp32"].reason.startswith("decided")


def test_round_bounds_and_orders():
    assert round_bounds(100, 4) == [25, 50, 75, 100]
    assert round_bounds(10, 4, first=32) == [10, 10, 10, 10]
    assert round_bounds(0, 4) == []
    b = round_bounds(152, 8, first=32)
    assert b[0] == 32 and b[1] == 38 and b[-1] == 152 and b == sorted(b)
    items = list(range(30))
    assert sorted(order_items(items, 0, "t")) == items and order_items(items, 0, "t") == order_items(items, 0, "t")


# --------------------------------------------------------------------------------- paired gap and power
def test_paired_gap_averages_tasks_like_the_suite_accuracy():
    a = {"t1": {str(i): True for i in range(40)}, "t2": {str(i): i < 20 for i in range(40)}}
    b = {"t1": {str(i): True for i in range(40)}, "t2": {str(i): True for i in range(40)}}
    g = paired_gap(a, b)
    assert g.diff == pytest.approx(0.25)  # (0 + 0.5) / 2, as the suite's mean over tasks
    assert g.n_items == 80 and g.discordant == pytest.approx(0.25)
    assert paired_gap(a, {"other": {"1": True}}) is None
    # only common items count
    g2 = paired_gap({"t": {"1": True, "2": False}}, {"t": {"2": True, "3": True}})
    assert g2.n_items == 1 and g2.diff == 1.0


def test_power_estimate():
    # Connor (1987) paired formula; a larger difference needs fewer items, more discordance needs more
    assert items_needed(5, paired=True) == 312
    assert items_needed(10, paired=True) < items_needed(5, paired=True)
    assert items_needed(5, paired=True, discordant=0.3) > items_needed(5, paired=True, discordant=0.1)
    assert items_needed(10, paired=False) == 356
    with pytest.raises(ValueError):
        items_needed(0)
    n = 100
    a = [i % 10 < 6 for i in range(n)]
    b = [i % 10 < 7 for i in range(n)]
    g = paired_gap(_outcomes(a), _outcomes(b))
    assert g.diff == pytest.approx(0.1) and g.items_to_settle() == items_needed(10, paired=True, discordant=0.1)
    assert paired_gap(_outcomes(a), _outcomes(a)).items_to_settle() is None


def _point(model: str, acc: float, energy: float, correct: list[bool]) -> SuitePoint:
    return SuitePoint("s", model, "fp32", acc, acc - 0.05, acc + 0.05, energy, "estimate", True, len(correct), 1,
                      outcomes=_outcomes(correct))


def test_the_recommendation_says_whether_the_runner_up_is_distinguishable():
    n = 200
    best = [i % 10 != 0 for i in range(n)]  # 90 %
    far = [i % 2 == 0 for i in range(n)]  # 50 %
    near = [i % 10 not in (1, 2) for i in range(n)]  # 80 %, and right on some items the best gets wrong
    rec = recommend([_point("big", 0.9, 10.0, best), _point("small", 0.5, 1.0, far)], 2.0)
    assert rec.choice.model == "big" and rec.runner_up.model == "small" and rec.distinguishable is True
    assert "distinguishable at 95%" in rec.text and "not distinguishable" not in rec.text
    # a gap within reach of chance: not distinguishable, and how many items would settle it
    few = 40
    rec = recommend([_point("big", 0.9, 10.0, best[:few]), _point("small", 0.8, 1.0, near[:few])], 2.0)
    assert rec.distinguishable is False
    assert "not distinguishable at 95%" in rec.text and "more) would likely settle it" in rec.text
    need = rec.paired.items_to_settle()
    assert f"about {need} paired items ({need - few} more)" in rec.text
    # without per-item outcomes the intervals decide, as before
    plain = [SuitePoint("s", "big", "fp32", 0.9, 0.85, 0.95, 10.0, "estimate", True, 40, 1),
             SuitePoint("s", "small", "fp32", 0.8, 0.75, 0.86, 1.0, "estimate", True, 40, 1)]
    rec = recommend(plain, 2.0)
    assert rec.paired is None and rec.distinguishable is False and "intervals overlap" in rec.text


def test_results_json_carries_the_confidence_of_the_verdict(race, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--suite", str(race[0]), "--models-file", str(race[1]), "--model", "cheap-good",
                 "--model", "mid-bad", "--variant", "fake", "--meter", "estimate", "--idle-s", "0",
                 "--store", str(tmp_path / "r.sqlite"), "--out", str(out), "--limit", "40"]) == 0
    doc = json.loads((out / "results.json").read_text())
    (front,) = doc["frontiers"].values()
    rec = front["recommendation"]
    assert rec["runner_up"] == "mid-bad:fake" or rec["runner_up"] is None
    assert all("outcomes" not in p for p in front["points"])  # per-item data stays in cells[].items
    if rec["runner_up"]:
        assert rec["paired"]["items"] == 80 and isinstance(rec["distinguishable"], bool)


# --------------------------------------------------------------------------------------- one pass per item
class _Pass:
    """A scoring pass over ``n`` items that counts how often each item is scored."""

    def __init__(self, n: int, chunk: int) -> None:
        self.n, self.chunk, self.calls = n, chunk, [0] * n

    def scoring(self) -> ScoringPass:
        def run_items(a: int, b: int) -> list[ItemScore]:
            for i in range(a, b):
                self.calls[i] += 1
            return [ItemScore(str(i), i % 2, i % 2, 0, (0.0, 1.0)) for i in range(a, b)]

        return ScoringPass("test", run_items, self.n, lambda: None, chunk=self.chunk)


def test_one_pass_scores_each_item_once_in_several_windows():
    meter = create_meter("estimate", MeterOptions())
    p = _Pass(40, 8)
    m = measure(meter, "w", p.scoring(), 1, 0.0)
    assert p.calls == [1] * 40  # one pass: every item scored once
    assert len(m.windows) == 5 and sum(w.items for w in m.windows) == 40
    assert m.energy_ci_low <= m.energy_j <= m.energy_ci_high and m.deterministic is None
    assert [s.item_id for s in m.scores] == [str(i) for i in range(40)]
    # whole-pass repeats on request
    p3 = _Pass(40, 8)
    m3 = measure(meter, "w", p3.scoring(), 3, 0.0)
    assert p3.calls == [3] * 40 and len(m3.windows) == 15 and m3.deterministic is True
    assert len(m3.scores) == 40


def test_a_short_pass_is_repeated_until_it_fills_the_minimum_windows():
    meter = create_meter("estimate", MeterOptions())
    p = _Pass(6, 8)  # one batch: scored again for the second window
    m = measure(meter, "w", p.scoring(), 1, 0.0)
    assert MIN_WINDOWS == 2 and len(m.windows) == MIN_WINDOWS and p.calls == [2] * 6
    assert len(m.scores) == 6 and m.deterministic is True  # accuracy from each item's first score
    p3 = _Pass(10, 8)  # two batches fill two windows: nothing repeated
    assert len(measure(meter, "w", p3.scoring(), 1, 0.0).windows) == 2 and p3.calls == [1] * 10


def test_windows_pool_into_one_measurement():
    w = [Window(10, 20.0, 1.0, 1.0), Window(10, 22.0, 1.1, 1.1)]
    a = summarise([None] * 20, w)
    b = summarise([None] * 5, [Window(5, 9.0, 0.5, 0.5)])
    ab = combine([a, b])
    assert ab.energy_j == pytest.approx(51.0) and len(ab.windows) == 3 and len(ab.scores) == 25
    assert ab.energy_ci_low <= ab.energy_j <= ab.energy_ci_high
    with pytest.raises(ValueError):
        combine([a, summarise([None], [Window(1, 1.0, 1.0, 1.0)], energy_method="rapl")])


# ------------------------------------------------------------------------------------------------ --plan
def test_plan_prints_the_grid_and_runs_nothing(race, tmp_path, capsys):
    store = tmp_path / "never.sqlite"
    code = main(["run", "--suite", str(race[0]), "--models-file", str(race[1]), "--model", "cheap-good",
                 "--variant", "fake", "--store", str(store), "--plan", "--plan-diff", "5", "--adaptive"])
    out = capsys.readouterr().out
    assert code == 0 and not store.exists()
    assert "2 cells" in out and "200 items per (model, variant)" in out and "expected time here" in out
    assert f"needs about {items_needed(5)} paired items" in out and "race 200 (not enough)" in out
    assert Store is not None
