"""The app as a new user meets it (issue 18): estimates, the queue, all answers of a cell, hardware beside the
energy, plain words in comparisons, pull sizes, malformed CSV. AppTest, each test with its own home and store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluator.records import CellResult, ItemRecord

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@pytest.fixture
def home(tmp_path, monkeypatch, pulled):
    from evaluator.models import frugal_home

    h = tmp_path / "home"
    h.mkdir()
    (h / "models").symlink_to(frugal_home() / "models", target_is_directory=True)
    monkeypatch.setenv("FRUGAL_HOME", str(h))
    monkeypatch.setenv("FRUGAL_MODELS", str(ROOT / "models.yaml"))
    return h


@pytest.fixture
def app(home, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def make(store=None, page=None, **params):
        monkeypatch.setenv("FRUGAL_STORE", str(store or tmp_path / "empty.sqlite"))
        st.cache_data.clear()
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        if page:
            at.switch_page(f"app_pages/{page}.py")
        at.query_params.update(params)
        return at.run() if page or params else at

    return make


def texts(at) -> str:
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        out += [str(getattr(e, "value", "") or getattr(e, "body", "")) for e in getattr(at, kind)]
    out += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(out)


def clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert "Traceback" not in texts(at)


def _store_with_cells(path: Path, env: dict | None = None, meter: dict | None = None, n_runs: int = 1,
                      limits=(6,)) -> tuple[Path, list[str]]:
    """A store whose runs hold finance cells of two (model, variant)s with per-item answers (no model run)."""
    from evaluator.store import Store
    from evaluator.suite import load_suite

    suite = load_suite("finance")
    store = Store(path)
    ids = []
    for r in range(n_runs):
        limit = limits[r % len(limits)]
        rid = store.create_run({"suites": ["finance"], "models": ["minilm-l6"], "variants": ["fp32", "bf16"],
                                "limit": limit, "repeats": 1, "meter": "auto", "tolerance_pts": 2.0}, 4,
                               env or {"cpu_model": "Test CPU 9000", "cpu_count": 2, "threads": 2, "device": "cpu"},
                               meter or {"meter": "auto", "energy_method": "estimate",
                                         "parts": [{"meter": "estimate", "watts_per_core": 12.5,
                                                    "watts_per_core_source": "TDP table"}]})
        for task in (t for t in suite.tasks if t.type != "generation"):  # choice items: gold, choices
            items = task.select(6)
            for v, flip in (("fp32", False), ("bf16", True)):
                recs = [ItemRecord(it.id, it.gold, (it.gold + (1 if flip and i % 2 else 0)) % len(it.choices),
                                   it.gold, (0.0,) * len(it.choices)) for i, it in enumerate(items)]
                right = sum(x.correct for x in recs)
                store.add_cell(rid, CellResult(
                    suite="finance", task=task.name, model="minilm-l6", variant=v, status="ok", n_items=len(recs),
                    n_correct=right, accuracy=right / len(recs), accuracy_ci_low=0.1, accuracy_ci_high=0.9,
                    energy_j=1.0, energy_j_per_1k=100.0 * (2 if flip else 1), energy_method="estimate",
                    is_estimate=True, duration_s=0.5, load_s=1.0, repeats=1, cell_key=f"{rid}-{task.name}-{v}"),
                    recs)
        store.update_run(rid, status="finished", finished_at="2026-01-01T00:00:30+00:00")
        ids.append(rid)
        if r + 1 < n_runs:
            time.sleep(1.1)
    return path, ids


# ------------------------------------------------------------------------------------------- Run page
def test_run_page_says_what_all_is_and_how_many_items_a_difference_needs(app):
    at = app()
    clean(at)
    at.number_input(key="limit").set_value(0).run()
    clean(at)
    body = texts(at)
    assert "0 = all:" in body and "test items over the chosen suites' tasks" in body
    assert "5 points: about" in body and "95 % confidence and 80 % power" in body
    assert any(m.label == "Items per task" and m.value.startswith("all (") for m in at.metric)
    est = next(m for m in at.metric if m.label == "Estimated time")
    assert est.value.startswith("about") and "evaluator." not in (est.help or "")
    cells = next(m for m in at.metric if m.label == "Cells")
    assert "evaluator." not in (cells.help or "")
    assert "rough default" in body  # nothing measured in this store yet: it says so


def test_a_fully_stored_grid_is_estimated_as_reused(app, home, tmp_path):
    from evaluator.jobs import start_job, wait_job

    store = tmp_path / "reuse.sqlite"
    from evaluator.config import RunConfig

    cfg = RunConfig(suites=("finance",), models=("minilm-l6",), variants=("fp32",), limit=3, repeats=1,
                    store=str(store), models_file=str(ROOT / "models.yaml"))
    assert wait_job(start_job(cfg).job_id, timeout_s=400).status == "finished"
    at = app(store)
    at.number_input(key="limit").set_value(3).run()
    clean(at)
    assert "they will be **reused**" in texts(at)


def _fake_running_job(home: Path) -> subprocess.Popen:
    """A job file that says running, with a live process whose command line names the job."""
    import json

    job_id = "20990101-000000-aaaaaa"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", job_id])
    (home / "jobs").mkdir(exist_ok=True)
    (home / "jobs" / f"{job_id}.json").write_text(json.dumps({
        "job_id": job_id, "status": "running", "config": {"suites": ["finance"], "models": ["minilm-l6"],
                                                          "variants": ["fp32"]},
        "created_at": "2099-01-01T00:00:00+00:00", "updated_at": "2099-01-01T00:00:00+00:00", "pid": proc.pid,
        "run_id": "20990101-000001-bbbbbb", "cells_planned": 2, "cells_done": 0, "cells": [],
        "current": "measuring finance/headline-sentiment · minilm-l6 [fp32] (cell 1 of 2)"}))
    return proc


def test_start_buttons_say_a_job_is_running_and_progress_names_the_cell(app, home):
    proc = _fake_running_job(home)
    try:
        at = app()
        clean(at)
        start = next(b for b in at.button if b.key == "start")
        demo = next(b for b in at.button if b.key == "quick_demo")
        assert start.label.startswith("Queue:") and "queued" in (start.help or "")
        assert demo.label.startswith("Queue:")
        body = texts(at)
        assert "Run `20990101-000001-bbbbbb`" in body and "background job 20990101-000000-aaaaaa" in body
    finally:
        proc.kill()
        proc.wait()


def test_a_second_job_is_queued_until_the_first_finishes(home, tmp_path):
    from evaluator.config import RunConfig
    from evaluator.jobs import get_job, start_job, wait_job

    cfg = RunConfig(suites=("finance",), models=("minilm-l6",), variants=("fp32",), limit=3, repeats=1,
                    store=str(tmp_path / "q.sqlite"), models_file=str(ROOT / "models.yaml"), force=True)
    first = start_job(cfg)
    second = start_job(cfg)
    assert second.status == "queued" and second.queued_behind == first.job_id
    t0 = time.monotonic()
    while get_job(first.job_id).active and time.monotonic() - t0 < 400:
        assert get_job(second.job_id).status == "queued"
        time.sleep(0.5)
    a, b = wait_job(first.job_id, 400), wait_job(second.job_id, 400)
    assert a.status == b.status == "finished", (a.error, b.error, b.log_tail())
    assert b.started_at >= a.finished_at


def test_a_job_started_during_the_background_pull_waits_for_its_models_then_runs(home, tmp_path):
    """The first minute: "Run the quick demo" while `make app` still pulls its models queues the run."""
    import fcntl
    import json

    from evaluator.background_pull import pulls_dir
    from evaluator.config import RunConfig
    from evaluator.jobs import get_job, start_job, wait_job

    status = pulls_dir() / "status.json"
    status.write_text(json.dumps({"pid": 1, "models": {"minilm-l6": {"status": "pulling"}}}))
    with open(pulls_dir() / "pull.lock", "a") as lock:  # this process plays the pulling child
        fcntl.flock(lock, fcntl.LOCK_EX)
        cfg = RunConfig(suites=("finance",), models=("minilm-l6",), variants=("fp32",), tasks=("numeracy",),
                        limit=3, store=str(tmp_path / "w.sqlite"), models_file=str(ROOT / "models.yaml"))
        job = start_job(cfg, wait_for_pull=("minilm-l6",))
        assert job.status == "queued" and "background pull of minilm-l6" in job.current
        time.sleep(4)  # the child is up and still waiting
        now = get_job(job.job_id)
        assert now.status == "queued" and now.pid and "background pull of minilm-l6" in now.current
        status.write_text(json.dumps({"pid": 1, "models": {"minilm-l6": {"status": "ready"}}}))
        done = wait_job(job.job_id, 400)
    assert done.status == "finished", (done.error, done.log_tail())
    assert done.cells_done == 1  # only the selected task


def test_a_queued_job_can_be_removed_without_running(home, tmp_path):
    from evaluator.config import RunConfig
    from evaluator.jobs import cancel_job, start_job, wait_job

    proc = _fake_running_job(home)
    try:
        cfg = RunConfig(suites=("finance",), models=("minilm-l6",), variants=("fp32",), limit=3, repeats=1,
                        store=str(tmp_path / "q2.sqlite"), models_file=str(ROOT / "models.yaml"))
        job = start_job(cfg)
        assert job.status == "queued"
        time.sleep(1.0)
        cancel_job(job.job_id)
        done = wait_job(job.job_id, 60)
        assert done.status == "cancelled" and not done.run_id
    finally:
        proc.kill()
        proc.wait()


def test_pull_of_the_large_model_asks_first_and_shows_its_size(app, home):
    from evaluator.models import list_local, load_registry

    status = {r["name"]: r["status"] for r in list_local(load_registry(ROOT / "models.yaml"))}
    if status.get("qwen2.5-1.5b") != "not pulled":
        pytest.skip("qwen2.5-1.5b is pulled here")
    at = app()
    assert "1.1 GB to download" in texts(at)
    at.button(key="pull_qwen2.5-1.5b").click().run()
    clean(at)
    assert any("Pull **qwen2.5-1.5b**?" in w.value for w in at.warning)
    assert any(b.key == "pull_yes_qwen2.5-1.5b" for b in at.button)
    at.button(key="pull_no_qwen2.5-1.5b").click().run()
    assert not any(b.key == "pull_yes_qwen2.5-1.5b" for b in at.button)


def test_csv_with_an_unclosed_quote_is_an_error_naming_its_line(app):
    at = app()
    data = b'text,label\nthe market rallied,positive\n"shares fell,negative\nprofits rose,positive\n'
    at.file_uploader(key="up_table").set_value(("bad.csv", data, "text/csv")).run()
    clean(at)
    assert any("bad.csv, line 3" in e.value and "closing quote" in e.value for e in at.error), texts(at)
    assert not any(getattr(s, "key", None) == "tbl_label" for s in at.selectbox)


# ----------------------------------------------------------------------------------------- other pages
def test_items_page_shows_all_answers_and_says_when_a_equals_b(app, tmp_path):
    path, (rid,) = _store_with_cells(tmp_path / "items.sqlite")
    at = app(path, page="items", run=rid, suite="finance", task="headline-sentiment", a="minilm-l6:fp32",
             b="minilm-l6:fp32")
    clean(at)
    assert "asks for minilm-l6:fp32 as both A and B" in texts(at)
    at.segmented_control(key="items_show").set_value("all").run()
    clean(at)
    assert "All 6 items, with both answers" in texts(at)
    assert len(at.dataframe[0].value) == 6
    # the same cell as A and B, chosen by hand: said, and its answers shown
    at.selectbox(key=f"items_b_{rid}_finance_headline-sentiment").set_value("minilm-l6:fp32").run()
    clean(at)
    assert "A and B are the same cell" in texts(at) and "All 6 answers of minilm-l6:fp32" in texts(at)


def test_items_page_no_green_arrow_for_no_difference(app, tmp_path):
    path, (rid,) = _store_with_cells(tmp_path / "same.sqlite")
    at = app(path, page="items", run=rid, suite="finance", task="headline-sentiment", a="minilm-l6:fp32",
             b="minilm-l6:bf16")
    clean(at)
    m = next(x for x in at.metric if x.label.startswith("Accuracy B"))
    assert m.delta != "+0.0 pts"


def test_frontier_shows_hardware_meter_and_watts_per_core(app, tmp_path):
    path, (rid,) = _store_with_cells(tmp_path / "front.sqlite")
    at = app(path, page="frontier", run=rid)
    clean(at)
    body = texts(at)
    assert "Measured on Test CPU 9000 (2 cores, 2 threads, cpu)" in body
    assert "meter **auto**" in body and "12.5 W per busy core" in body


def test_runs_comparison_speaks_plainly(app, tmp_path):
    path, (ra, rb) = _store_with_cells(tmp_path / "cmp.sqlite", n_runs=2, limits=(None, 6))
    at = app(path, page="runs", view="compare", a=ra, b=rb)
    clean(at)
    changed = at.dataframe[1].value
    assert "items per task" in set(changed["what"])
    assert "None" not in set(changed["run A"]) | set(changed["run B"])
    assert not any(w.startswith("config.") for w in changed["what"])
    assert "today" in " ".join(at.dataframe[0].value["created"]) or "20" in " ".join(at.dataframe[0].value["created"])

