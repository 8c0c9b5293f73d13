"""Helpers shared by the pages: the store handle, cached loaders, the run picker, permalinks, downloads.

Only display code lives here; everything that computes a result is in ``evaluator``.
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

#: Run statuses that mean "still being written".
LIVE = ("running",)
PAGE_FILES = {"run": "app_pages/run.py", "frontier": "app_pages/frontier.py", "items": "app_pages/items.py",
              "runs": "app_pages/runs.py"}
QUICK_DEMO = {"suites": ("finance", "health", "climate"), "models": ("minilm-l6", "smollm2-135m"),
              "variants": ("fp32", "bf16"), "limit": 10, "repeats": 1, "meter": "auto"}


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
        st.error(f"Cannot read the results store {store_path()}: {exc}")
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
        st.error(f"No run {run_id!r} in {store_path()}.")
        return None
    try:
        return load_run(run_id, store_path(), run_version(rows[run_id]))
    except FrugalError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - shown without a traceback
        st.error(f"Cannot load run {run_id}: {type(exc).__name__}: {exc}")
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


@st.cache_data(ttl=10, show_spinner=False)
def model_rows(models_file: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(registry as plain dicts by name, list_local rows)."""
    from dataclasses import asdict

    from evaluator.models import list_local, load_registry

    reg = load_registry(models_file)
    return {k: asdict(v) for k, v in reg.items()}, list_local(reg)


def models_file() -> str:
    """Return the models.yaml the app (and its jobs) use, as an absolute path."""
    from evaluator.models import default_registry_path

    return str(Path(default_registry_path()).resolve())


# -------------------------------------------------------------------------------------- messages
def show_error(exc: BaseException, what: str = "") -> None:
    """One clear line; a FrugalError's own message, anything else with its type; never a traceback."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, FrugalError):
        st.error(f"{prefix}{exc}")
    else:
        st.error(f"{prefix}{type(exc).__name__}: {exc}")


def fmt_status(status: str) -> str:
    """Format a run or job status with an icon (Markdown)."""
    icons = {"finished": ":green[:material/check_circle:]", "finished-with-failures": ":orange[:material/warning:]",
             "running": ":blue[:material/pending:]", "starting": ":blue[:material/pending:]",
             "cancelling": ":gray[:material/stop_circle:]", "cancelled": ":gray[:material/stop_circle:]",
             "interrupted": ":red[:material/error:]", "failed": ":red[:material/error:]",
             "died": ":red[:material/error:]"}
    return f"{icons.get(status, '')} {status}".strip()


def run_label(row: dict[str, Any]) -> str:
    """How a run is named in pickers."""
    cfg = row.get("config") or {}
    suites = ", ".join(Path(s).name for s in cfg.get("suites", []))
    return (f"{row['run_id']} · {row['status']} · {row.get('done') or 0}/{row.get('planned_cells') or 0} cells"
            f" · {suites}")


def empty_state(message: str) -> None:
    """No runs yet: say so and point at the Run page."""
    st.info(message)
    st.page_link(PAGE_FILES["run"], label="Go to the Run page and start the quick demo", icon=":material/play_circle:")


def run_picker(runs: list[dict[str, Any]], key: str = "run", label: str = "Run",
               prefer_results: bool = True) -> str | None:
    """Show a selectbox of runs; the default comes from ``?run=``, else the newest run with cells."""
    if not runs:
        return None
    ids = [r["run_id"] for r in runs]
    by_id = {r["run_id"]: r for r in runs}
    wanted = st.query_params.get(key)
    if wanted and wanted not in by_id:
        st.warning(f"Run {wanted!r} from the link is not in this store; showing the newest run instead.")
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
    failed = [c for c in result.cells if c.status != "ok" and (suite is None or c.suite == suite)]
    if not failed:
        return
    with st.expander(f"{len(failed)} cell(s) failed — the reasons", expanded=len(failed) <= 6,
                     icon=":material/warning:"):
        for c in failed:
            st.markdown(f"**{c.suite}/{c.task} · {c.model} [{c.variant}]**: {first_line(c.error)}")


def first_line(text: str | None, limit: int = 400) -> str:
    """Return the message part of an error, one paragraph, capped."""
    if not text:
        return "no reason recorded"
    text = text.strip().split("\nTraceback")[0].strip()
    return text if len(text) <= limit else text[:limit] + "…"
