"""Helpers shared by the pages: store handle, cached loaders, run picker, permalinks, downloads, actions.

The two actions are the ones every page's empty state offers (start a run, start the quick demo).

Nothing here computes a result: results come from ``evaluator``, and the actions are thin calls into
``evaluator.jobs`` (which starts, queues and watches the background job), shown with their errors.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from evaluator.errors import FrugalError
from evaluator.textsafe import md_escape

#: Run statuses that mean "still being written".
LIVE = ("running",)
PAGE_FILES = {"run": "app_pages/run.py", "frontier": "app_pages/frontier.py", "items": "app_pages/items.py",
              "runs": "app_pages/runs.py"}
#: The Run page's one-click demo: the two models `make app` pulls, full precision beside a real compression
#: (structured pruning, which saves work on any CPU; bf16 on an AVX2-only CPU would only show its fallback
#: kernel). Small enough to finish in about a minute here; `make demo` is the adaptive run on every item.
QUICK_DEMO = {"suites": ("finance", "health", "climate"), "models": ("minilm-l6", "smollm2-135m"),
              # the suites' choice tasks (demo.yaml's); their generative tasks take minutes more
              "tasks": ("headline-sentiment", "numeracy", "triage", "yes-no-maybe", "claim-evidence",
                        "report-relevance"),
              "variants": ("fp32", "prune-structured-25"), "limit": 24, "repeats": 1, "meter": "auto"}


def md(text: Any) -> str:
    """Escape a user-supplied string (a name, an error, item text) for st.markdown and friends.

    The characters that make links, images, emphasis, code, tables, headings, maths, HTML and Streamlit's
    ``:colour[...]`` directives get a backslash (evaluator.textsafe.md_escape), so the text is shown as
    typed: a model called ``![x](http://host/t.png)`` or ``<img src=...>`` can neither load anything nor
    change the layout.
    """
    return md_escape(text)


# ------------------------------------------------------------------------------------------ store
def store_path() -> str:
    """FRUGAL_STORE, else the library default (FRUGAL_HOME/results.sqlite)."""
    from evaluator.store import default_store_path

    return str(os.environ.get("FRUGAL_STORE") or default_store_path())


def get_store() -> Any:
    """Open a Store handle (cheap: one SQLite file, opened per call)."""
    from evaluator.store import Store

    return Store(store_path())


@st.cache_data(ttl=2, show_spinner=False)
def list_runs(path: str) -> list[dict[str, Any]]:
    """List stored runs, newest first (cached for two seconds)."""
    from evaluator.store import Store

    return Store(path).list_runs()


def runs_now() -> list[dict[str, Any]]:
    """List the runs of the current store; an unreadable store is shown as an error, not a traceback."""
    try:
        return list_runs(store_path())
    except Exception as exc:  # noqa: BLE001 - shown to the user
        st.error(f"Cannot read the results store {md(store_path())}: {md(exc)}")
        return []


@st.cache_data(show_spinner="Loading the run…", max_entries=32)
def load_run(run_id: str, path: str, version: str) -> Any:
    """Load a stored run as a RunResult; ``version`` (status + cells done) invalidates the cache while it runs."""
    from evaluator.runner import load_result

    _ = version
    return load_result(run_id, path)


def run_version(row: dict[str, Any]) -> str:
    """Return a token that changes whenever a run gains a cell or changes status."""
    return f"{row.get('status')}:{row.get('done')}:{row.get('finished_at')}"


def get_result(run_id: str) -> Any:
    """Return the RunResult of a run of the current store (cached), or None with an error shown."""
    rows = {r["run_id"]: r for r in runs_now()}
    if run_id not in rows:
        st.error(f"No run {md(repr(run_id))} in {md(store_path())}.")
        return None
    try:
        return load_run(run_id, store_path(), run_version(rows[run_id]))
    except FrugalError as exc:
        st.error(md(exc))
    except Exception as exc:  # noqa: BLE001 - shown without a traceback
        st.error(f"Cannot load run {md(run_id)}: {type(exc).__name__}: {md(exc)}")
    return None


@st.cache_data(show_spinner=False, max_entries=16)
def suite_item_texts(ref: str) -> dict[str, Any]:
    """{"name": suite name, "tasks": {task: {item_id: {"text", "choices", "gold"}}}} for one suite reference."""
    from evaluator.suite import load_suite

    suite = load_suite(ref)
    tasks = {}
    for t in suite.tasks:
        tasks[t.name] = {it.id: {"text": t.render_encoder_input(it) if t.encoder_input else
                                 " ".join(str(v) for v in it.fields.values()),
                                 "choices": list(it.choices), "gold": it.gold} for it in t.items}
    return {"name": suite.name, "tasks": tasks}


@st.cache_resource(show_spinner=False, max_entries=8)
def _registry(models_file: str, mtime_ns: int) -> dict[str, Any]:
    """The parsed models.yaml, one shared object per file version (a resource: never copied per session).

    Model *weights* are never loaded in the app's process: every run is a job in its own process (so a
    cancel can kill it and its memory goes back to the system); the app only needs the registry.
    """
    from evaluator.models import load_registry

    _ = mtime_ns
    return load_registry(models_file)


def registry(models_file: str) -> dict[str, Any]:
    """models.yaml as ModelSpecs, cached until the file changes."""
    try:
        mtime = Path(models_file).stat().st_mtime_ns
    except OSError:
        mtime = -1  # load_registry raises the clear error
    return _registry(models_file, mtime)


@st.cache_data(ttl=10, show_spinner=False)
def model_rows(models_file: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(registry as plain dicts by name, list_local rows)."""
    from dataclasses import asdict

    from evaluator.models import list_local

    reg = registry(models_file)
    return {k: asdict(v) for k, v in reg.items()}, list_local(reg)


def models_file() -> str:
    """Return the models.yaml the app (and its jobs) use, as an absolute path."""
    from evaluator.models import default_registry_path

    return str(Path(default_registry_path()).resolve())


# -------------------------------------------------------------------------------------- messages
def show_error(exc: BaseException, what: str = "") -> None:
    """One clear line; a FrugalError's own message, anything else with its type; never a traceback."""
    prefix = f"{md(what)}: " if what else ""
    if isinstance(exc, FrugalError):
        st.error(f"{prefix}{md(exc)}")
    else:
        st.error(f"{prefix}{type(exc).__name__}: {md(exc)}")


def fmt_status(status: str) -> str:
    """Format a run or job status with an icon (Markdown)."""
    icons = {"finished": ":green[:material/check_circle:]", "finished-with-failures": ":orange[:material/warning:]",
             "running": ":blue[:material/pending:]", "starting": ":blue[:material/pending:]",
             "cancelling": ":gray[:material/stop_circle:]", "cancelled": ":gray[:material/stop_circle:]",
             "interrupted": ":red[:material/error:]", "failed": ":red[:material/error:]",
             "died": ":red[:material/error:]"}
    return f"{icons.get(status, '')} {status}".strip()


def friendly_time(iso: str | None) -> str:
    """'today 14:03' / 'yesterday 09:12' / '3 Dec 14:03' / '3 Dec 2025' in local time, from a stored ISO time."""
    from datetime import datetime, timedelta

    if not iso:
        return "–"
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if t.tzinfo is not None:
        t = t.astimezone()
    now = datetime.now(t.tzinfo)
    if t.date() == now.date():
        return f"today {t:%H:%M}"
    if t.date() == (now - timedelta(days=1)).date():
        return f"yesterday {t:%H:%M}"
    return f"{t.day} {t:%b %H:%M}" if t.year == now.year else f"{t.day} {t:%b %Y}"


def now_iso() -> str:
    """The current UTC time as stored (ISO, seconds)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one stored ISO time to another (None when either is missing)."""
    from datetime import datetime

    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except (TypeError, ValueError):
        return None


def fmt_duration(s: float | None) -> str:
    """'45 s' / '2 min 49 s' / '1 h 05 min'."""
    if s is None:
        return "–"
    s = max(0, round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def run_name(row: dict[str, Any]) -> str:
    """A friendly name for a run: what it ran and when ('finance, health · minilm-l6 +1 · today 14:03')."""
    cfg = row.get("config") or {}
    suites = ", ".join(Path(s).name for s in cfg.get("suites", [])) or "?"
    models = list(cfg.get("models", []))
    who = models[0] + (f" +{len(models) - 1}" if len(models) > 1 else "") if models else "?"
    return f"{suites} · {who} · {friendly_time(row.get('created_at'))}"


def run_label(row: dict[str, Any]) -> str:
    """How a run is named in pickers: its friendly name, status, cells, and its id."""
    return (f"{run_name(row)} · {row['status']} · {row.get('done') or 0}/{row.get('planned_cells') or 0} cells"
            f" · {row['run_id']}")


def active_jobs() -> list[Any]:
    """The jobs running or queued now (anyone's); [] when the jobs folder cannot be read."""
    from evaluator.jobs import list_jobs

    try:
        return [j for j in list_jobs() if j.active]
    except OSError:
        return []


def quick_demo_config() -> Any:
    """The quick demo (QUICK_DEMO) in this app's store and models file."""
    from evaluator.config import RunConfig

    return RunConfig(**QUICK_DEMO, store=store_path(), models_file=models_file())


def start_run(config: Any, wait_for_pull: tuple[str, ...] = ()) -> str | None:
    """Start ``config`` as a background job; its id, or None with the reason shown (never a traceback).

    ``wait_for_pull``: models still being pulled in the background; the job waits for them, queued.
    """
    from evaluator.jobs import estimate_seconds, start_job

    try:
        est = estimate_seconds(config)
    except Exception:  # noqa: BLE001 - an estimate never stops a run
        est = None
    try:
        return start_job(config, estimate_s=est, wait_for_pull=wait_for_pull).job_id
    except Exception as exc:  # noqa: BLE001 - FrugalError or anything else: one line on screen
        show_error(exc, "Cannot start the run")
        return None


def start_quick_demo() -> str | None:
    """Start the quick demo; its job id, or None with the reason shown.

    Models still being pulled in the background (``make app`` starts their pull) are waited for by the job
    itself (shown as queued); a model neither in the cache nor being pulled is an error naming it.
    """
    from evaluator.models import list_local

    try:
        status = {r["name"]: r["status"] for r in list_local(registry(models_file()))}
    except FrugalError as exc:
        show_error(exc, "models.yaml")
        return None
    missing = [m for m in QUICK_DEMO["models"] if status.get(m) == "not pulled"]
    if missing:
        from evaluator.background_pull import read_status

        bg = read_status()
        pulling = bg.get("models", {})
        states = [pulling.get(m, {}).get("status") for m in missing]
        if all(x == "ready" for x in states) or (bg.get("alive") and all(x in ("waiting", "pulling", "ready")
                                                                       for x in states)):
            # the job waits, queued, for the pull to finish, then runs: one click is enough
            return start_run(quick_demo_config(), wait_for_pull=tuple(missing))
        st.error(f"Model(s) not pulled yet: {md(', '.join(missing))}. Pull them in the Models section of the Run "
                 "page (or run `frugal models pull NAME`), then start the demo again.")
        return None
    return start_run(quick_demo_config())


def empty_state(message: str) -> None:
    """No runs yet: say so, with a one-click start of the quick demo (the job is then watched on the Run page)."""
    st.info(message)
    cols = st.columns([1, 2], vertical_alignment="center")
    if cols[0].button("Run the quick demo", icon=":material/rocket_launch:", type="primary", key="empty_demo",
                      width="stretch"):
        job_id = start_quick_demo()
        if job_id:
            st.switch_page(PAGE_FILES["run"], query_params={"job": job_id})
    cols[1].page_link(PAGE_FILES["run"], label="Or choose your own grid on the Run page", icon=":material/tune:")


def run_picker(runs: list[dict[str, Any]], key: str = "run", label: str = "Run",
               prefer_results: bool = True) -> str | None:
    """Show a selectbox of runs; the default comes from ``?run=``, else the newest run with cells."""
    if not runs:
        return None
    ids = [r["run_id"] for r in runs]
    by_id = {r["run_id"]: r for r in runs}
    wanted = st.query_params.get(key)
    if wanted and wanted not in by_id:
        st.warning(f"Run {md(repr(wanted))} from the link is not in this store; showing the newest run instead.")
        wanted = None
    default = wanted or next((r["run_id"] for r in runs if prefer_results and (r.get("done") or 0) >
                              (r.get("failed") or 0)), ids[0])
    state_key = f"picker_{key}"
    if st.session_state.get(state_key) not in by_id:  # first visit, or the run was deleted
        st.session_state[state_key] = default
    elif wanted and st.session_state.get(f"_picked_{key}") != wanted:  # a link asks for another run
        st.session_state[state_key] = wanted
    choice = st.selectbox(label, ids, format_func=lambda i: run_label(by_id[i]), key=state_key)
    st.session_state[f"_picked_{key}"] = choice
    return choice


def tolerance_param(default: float) -> float:
    """The recommendation tolerance from ``?tol=`` (accuracy points, 0–20), else ``default``."""
    raw = st.query_params.get("tol")
    if raw is None:
        return default
    try:
        tol = float(raw)
    except ValueError:
        tol = float("nan")
    if not 0.0 <= tol <= 20.0:  # also NaN
        st.warning(f"Tolerance {md(repr(raw))} from the link is not a number of points between 0 and 20; "
                   f"using {default:g}.")
        return default
    return round(tol * 2) / 2  # the slider's 0.5 steps


def pick_run_or_stop(empty_message: str) -> tuple[str, Any, list[dict[str, Any]], dict[str, Any]]:
    """The page's run: (run id, RunResult, all runs, its row). Stops the page with a message when there is none."""
    runs = runs_now()
    if not runs:
        empty_state(empty_message)
        st.stop()
    run_id = run_picker(runs)
    result = get_result(run_id) if run_id else None
    if result is None:
        st.stop()
    return run_id, result, runs, next(r for r in runs if r["run_id"] == run_id)


def set_params(**params: Any) -> None:
    """Make the URL say exactly what is on screen (None removes a parameter)."""
    for k, v in params.items():
        if v is None or v == "":
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def permalink(page: str, **params: Any) -> str:
    """Show the link that reopens this view; returns it."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    try:
        url = st.context.url  # the page's own URL in a browser session; None under AppTest
    except Exception:  # noqa: BLE001
        url = None
    link = f"{(url or '/' + page).split('?')[0]}?{query}"
    st.caption(f":material/link: Permalink to this view: [{link}]({link})")
    return link


# -------------------------------------------------------------------------------------- downloads
def _report_html(run_id: str, path: str, version: str, tolerance: float) -> bytes:
    from evaluator.report.writers import write_report_html

    result = load_run(run_id, path, version)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "report.html"
        write_report_html(result, out, tolerance)
        return out.read_bytes()


@st.cache_data(show_spinner=False, max_entries=16)
def _results_json(run_id: str, path: str, version: str, tolerance: float) -> bytes:
    from evaluator.report import results_dict

    return json.dumps(results_dict(load_run(run_id, path, version), tolerance), indent=2, default=str).encode()


@st.cache_data(show_spinner=False, max_entries=16)
def _results_csv(run_id: str, path: str, version: str) -> bytes:
    from evaluator.report import write_csv

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "results.csv"
        write_csv(load_run(run_id, path, version), out)
        return out.read_bytes()


def has_report_writer() -> bool:
    """Say whether evaluator.report.writers.write_report_html exists."""
    try:
        from evaluator.report.writers import write_report_html  # noqa: F401
    except ImportError:
        return False
    return True


def download_buttons(run_id: str, tolerance: float = 2.0, key: str = "dl") -> None:
    """report.html (built on click), results.json and results.csv of a run."""
    rows = {r["run_id"]: r for r in runs_now()}
    if run_id not in rows:
        return
    version, path = run_version(rows[run_id]), store_path()
    dl = {"icon": ":material/download:", "on_click": "ignore", "width": "stretch"}
    cols = st.columns(3)
    with cols[0]:
        if has_report_writer():
            st.download_button("report.html", data=lambda: _report_html(run_id, path, version, tolerance),
                               file_name=f"frugal-{run_id}-report.html", mime="text/html", key=f"{key}_html", **dl)
        else:
            st.button("report.html", icon=":material/download:", disabled=True, key=f"{key}_html", width="stretch",
                      help="the HTML report writer is not installed in this version")
    with cols[1]:
        try:
            st.download_button("results.json", data=_results_json(run_id, path, version, tolerance),
                               file_name=f"frugal-{run_id}-results.json", mime="application/json",
                               key=f"{key}_json", **dl)
        except Exception as exc:  # noqa: BLE001
            show_error(exc, "results.json")
    with cols[2]:
        try:
            st.download_button("results.csv", data=_results_csv(run_id, path, version),
                               file_name=f"frugal-{run_id}-results.csv", mime="text/csv", key=f"{key}_csv", **dl)
        except Exception as exc:  # noqa: BLE001
            show_error(exc, "results.csv")


def failed_cells_box(result: Any, suite: str | None = None) -> None:
    """Failed cells with their reasons (never a traceback)."""
    failed = [c for c in result.cells if c.status == "failed" and (suite is None or c.suite == suite)]
    if not failed:
        return
    with st.expander(f"{len(failed)} cell(s) failed — the reasons", expanded=len(failed) <= 6,
                     icon=":material/warning:"):
        for c in failed:
            st.markdown(f"**{md(c.suite)}/{md(c.task)} · {md(c.model)} \\[{md(c.variant)}\\]**: "
                        f"{md(first_line(c.error))}")


def first_line(text: str | None, limit: int = 400) -> str:
    """Return the message part of an error, one paragraph, capped."""
    if not text:
        return "no reason recorded"
    text = text.strip().split("\nTraceback")[0].strip()
    return text if len(text) <= limit else text[:limit] + "…"
