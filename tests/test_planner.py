"""The planner: time estimates from rates measured here (checked against real runs), power, pull sizes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from evaluator.config import RunConfig
from evaluator.planner import (
    cpu_flags,
    detectable_pts,
    fallback_parts,
    fmt_seconds,
    items_needed,
    measured_rates,
    mparams,
    pull_estimate,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path, monkeypatch, pulled):
    from evaluator.models import frugal_home

    h = tmp_path / "home"
    h.mkdir()
    (h / "models").symlink_to(frugal_home() / "models", target_is_directory=True)
    monkeypatch.setenv("FRUGAL_HOME", str(h))
    monkeypatch.setenv("FRUGAL_MODELS", str(ROOT / "models.yaml"))
    return h


def _cfg(store: Path, **kw) -> RunConfig:
    base = dict(suites=("finance",), models=("minilm-l6",), variants=("fp32",), limit=5, repeats=1,
                store=str(store), models_file=str(ROOT / "models.yaml"))
    base.update(kw)
    return RunConfig(**base)


# ------------------------------------------------------------------------------------------ power
def test_items_needed_matches_the_textbook_formulas():
    # two proportions 0.7 vs 0.6, 95 % two-sided, 80 % power: 356 a group (normal approximation)
    assert items_needed(10, 0.7, paired=False) == 356
    # McNemar, d = 0.05 with 10 % discordant pairs: (1.96 sqrt(.1) + 0.84 sqrt(.0975))^2 / .0025 = 312
    assert items_needed(5, paired=True, discordant=0.10) == 312


def test_smaller_differences_need_more_items_and_pairing_needs_fewer():
    assert items_needed(2) > items_needed(5) > items_needed(10) > items_needed(20)
    for d in (2, 5, 10):
        assert items_needed(d, paired=True) < items_needed(d, paired=False)
    assert items_needed(10, power=0.9) > items_needed(10, power=0.8)


def test_detectable_difference_shrinks_with_items():
    assert detectable_pts(10) is None or detectable_pts(10) > detectable_pts(1000)
    assert detectable_pts(1000) < 10
    with pytest.raises(ValueError):
        items_needed(0)


# ----------------------------------------------------------------------------------- cpu and sizes
def test_fallback_kernels_follow_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse avx2 fma f16c\n")
    flags = cpu_flags(info)
    assert "avx2" in flags and "avx512_bf16" not in flags
    assert [f.part for f in fallback_parts("bf16+prune-structured-25", flags)] == ["bf16"]
    assert [f.part for f in fallback_parts("int8-dynamic", flags)] == ["int8-dynamic"]
    assert fallback_parts("fp32", flags) == []
    assert fallback_parts("bf16", {"avx512_bf16"}) == [] and fallback_parts("int8-dynamic", {"avx_vnni"}) == []
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_params_and_pull_estimates():
    assert mparams("22.7M") == pytest.approx(22.7) and mparams("1.5B") == pytest.approx(1500)
    assert mparams(None) > 0 and mparams("lots") > 0
    big, small = pull_estimate("qwen2.5-1.5b"), pull_estimate("minilm-l6")
    assert big.large and not small.large and big.measured
    assert big.download_mb > small.download_mb and big.seconds > small.seconds
    guess = pull_estimate("someone-else", "300M", "gguf")
    assert not guess.measured and guess.download_mb > 0 and guess.seconds > 0
    assert fmt_seconds(3) == "about 5 s" and fmt_seconds(170) == "about 3 min"


def test_measured_rates_split_wall_time_into_load_passes_and_overhead(tmp_path):
    from evaluator.records import CellResult
    from evaluator.store import Store

    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run({"suites": ["x"], "repeats": 1, "batch_size": 4, "meter": "auto"}, 2,
                           {"cpu_model": "cpu", "device": "cpu", "threads": 2}, {"meter": "auto"})
    for task, dur in (("t1", 2.0), ("t2", 4.0)):
        store.add_cell(rid, CellResult(suite="x", task=task, model="m", variant="fp32", status="ok", n_items=10,
                                       duration_s=dur, load_s=3.0, repeats=1, batch_size=4, scoring_method="loglik",
                                       cell_key=f"k-{task}"))
    with sqlite3.connect(store.path) as db:  # pin the commit times: created +0, t1 at +10 s, t2 at +16 s
        db.execute("UPDATE runs SET created_at='2026-01-01T00:00:00+00:00'")
        db.execute("UPDATE cells SET created_at='2026-01-01T00:00:10+00:00' WHERE task='t1'")
        db.execute("UPDATE cells SET created_at='2026-01-01T00:00:16+00:00' WHERE task='t2'")
    rate = next(iter(measured_rates(store.path).by_mvb.values()))
    assert rate.load_s == [3.0]
    assert rate.pass_by_task[("x", "t1")] == [0.2] and rate.pass_by_task[("x", "t2")] == [0.4]
    # t1: 10 s = 3 load + 0.8 warm-up (4 items) + 2 measured + 4.2 overhead; t2: 6 = 1.6 + 4 + 0.4
    assert rate.overhead_by_task[("x", "t1")] == [pytest.approx(4.2)]
    assert rate.overhead_by_task[("x", "t2")] == [pytest.approx(0.4)]
    assert measured_rates(tmp_path / "none.sqlite").by_mvb == {}


def test_generation_tasks_cost_their_own_rate_and_nothing_for_an_encoder(tmp_path):
    """A generation item is dearer than a choice item; an encoder cannot generate, so its cell is n/a, 0 s."""
    from evaluator.planner import DEFAULT_GENERATION_FACTOR, estimate_grid
    from evaluator.records import CellResult
    from evaluator.store import Store

    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run({"suites": ["finance"], "repeats": 1, "batch_size": 16, "meter": "auto"}, 1,
                           {"cpu_model": "cpu", "device": "cpu", "threads": 2}, {"meter": "auto"})
    store.add_cell(rid, CellResult(suite="finance", task="numeracy", model="smollm2-135m", variant="fp32",
                                   status="ok", n_items=10, duration_s=1.0, load_s=1.0, repeats=1, batch_size=16,
                                   scoring_method="loglik", task_type="multiple_choice", cell_key="k1"))
    cfg = _cfg(tmp_path / "s.sqlite", models=("smollm2-135m", "minilm-l6"), tasks=("numeracy", "figures"))
    est = {(c.model, c.task): c for c in estimate_grid(cfg, tmp_path / "s.sqlite", flags=()).cells}
    enc = est[("minilm-l6", "figures")]
    assert (enc.source, enc.seconds) == ("n/a", 0.0)
    choice, gen = est[("smollm2-135m", "numeracy")], est[("smollm2-135m", "figures")]
    assert choice.source == gen.source == "measured"
    # same items, same overhead: the generation cell's scored time is the factor times the choice cell's
    over = choice.seconds - 0.1 * (5 + 5)  # 5 items scored once (two half batches) plus the warm-up batch
    assert gen.seconds - over == pytest.approx(DEFAULT_GENERATION_FACTOR * (choice.seconds - over))
    # once a generation cell is measured, its own rate is used
    store.add_cell(rid, CellResult(suite="finance", task="figures", model="smollm2-135m", variant="fp32",
                                   status="ok", n_items=10, duration_s=30.0, repeats=1, batch_size=16,
                                   scoring_method="generate", task_type="generation", cell_key="k2"))
    est2 = {(c.model, c.task): c for c in estimate_grid(cfg, tmp_path / "s.sqlite", flags=()).cells}
    assert est2[("smollm2-135m", "figures")].seconds > gen.seconds
    assert est2[("smollm2-135m", "numeracy")].seconds == pytest.approx(choice.seconds)  # choices unaffected


# ------------------------------------------------------------------------------- against real runs
@pytest.mark.timeout(600)
def test_estimate_is_within_30_percent_of_a_real_run_and_a_stored_grid_is_reused(home, tmp_path):
    """Run a small grid once (rates now exist), estimate it from scratch, run it again: within 30 %."""
    from evaluator.jobs import estimate, start_job, wait_job

    store = tmp_path / "plan.sqlite"
    first = wait_job(start_job(_cfg(store)).job_id, timeout_s=400)
    assert first.status == "finished", first.error
    # the same grid is now stored: every cell reused, so only the job's start is left
    again = estimate(_cfg(store))
    assert again.all_reused and all(c.reuse_exact for c in again.cells), again
    assert again.total_s == pytest.approx(again.startup_s)
    # measured again from scratch: the estimate uses this machine's rates and counts nothing as reused
    cfg = _cfg(store, force=True)
    est = estimate(cfg)
    assert est.n_reused == 0 and est.sources == {"measured", "n/a"}  # n/a: the encoder and finance/figures
    t0 = time.monotonic()
    second = wait_job(start_job(cfg, estimate_s=est.total_s).job_id, timeout_s=400)
    wall = time.monotonic() - t0
    assert second.status == "finished", second.error
    assert second.estimate_s == pytest.approx(est.total_s)
    assert abs(est.total_s - wall) <= 0.30 * wall, (est.total_s, wall, est)
    # more items than stored: the runner extends each stored cell with the new items only, and the
    # estimate counts just those (it once counted whole cells, twice the time of a small extension)
    more = _cfg(store, limit=8)
    est8 = estimate(more)
    ok = [c for c in est8.cells if c.source != "n/a"]
    assert ok and all(c.extends == 5 for c in ok) and est8.n_extended == len(ok), est8
    fresh = estimate(_cfg(store, limit=8, force=True))
    assert est8.total_s < fresh.total_s
    t0 = time.monotonic()
    third = wait_job(start_job(more, estimate_s=est8.total_s).job_id, timeout_s=400)
    wall = time.monotonic() - t0
    assert third.status == "finished", third.error
    with sqlite3.connect(store) as db:
        extended = [r[0] for r in db.execute("SELECT json_extract(result_json, '$.extended_from_items') FROM cells "
                                             "WHERE run_id=? AND status='ok'", (third.run_id,))]
    assert extended and set(extended) == {5}
    assert abs(est8.total_s - wall) <= 0.30 * wall, (est8.total_s, wall, est8)
