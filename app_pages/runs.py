"""Runs page: every stored run; open one, compare two (what changed, which cells moved), delete one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app_pages import common as C

st.title("Runs")
st.caption(f"Stored in `{C.store_path()}` (set FRUGAL_STORE to use another file).")


def runs_frame(runs: list[dict[str, Any]]) -> Any:
    """One row per run."""
    import pandas as pd

    rows = []
    for r in runs:
        cfg = r.get("config") or {}
        rows.append({"run": r["run_id"], "name": C.run_name(r), "status": r["status"],
                     "created": C.friendly_time(r["created_at"]),
                     "cells": f"{r.get('done') or 0}/{r.get('planned_cells') or 0}", "failed": r.get("failed") or 0,
                     "reused": r.get("reused") or 0, "suites": ", ".join(Path(s).name for s in cfg.get("suites", [])),
                     "models": ", ".join(cfg.get("models", [])), "variants": ", ".join(cfg.get("variants", [])),
                     "items/task": cfg.get("limit") or "all", "repeats": cfg.get("repeats"),
                     "meter": cfg.get("meter")})
    return pd.DataFrame(rows)


def flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value}."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


#: Plain names for the settings a comparison shows (anything else: its key, with spaces for dots and dashes).
SETTING_NAMES = {
    "config.suites": "suites", "config.models": "models", "config.variants": "variants",
    "config.limit": "items per task", "config.repeats": "repeats (measured windows)",
    "config.batch_size": "batch size", "config.threads": "threads asked for", "config.device": "device asked for",
    "config.meter": "energy meter asked for", "config.watts_per_core": "watts per core (set by hand)",
    "config.idle_s": "idle measurement (s)", "config.country": "country (grid carbon)",
    "config.grid_intensity": "grid intensity (gCO2e/kWh)", "config.pue": "PUE",
    "config.encoder_method": "encoder scoring method", "config.models_file": "models.yaml used",
    "config.tolerance_pts": "recommendation tolerance (points)", "config.force": "measure again (force)",
    "environment.cpu_model": "CPU", "environment.cpu_count": "CPU cores", "environment.gpu": "GPU",
    "environment.device": "device", "environment.threads": "threads", "environment.platform": "operating system",
    "environment.python": "Python", "environment.torch": "PyTorch", "environment.transformers": "Transformers",
    "environment.frugal": "Frugal version", "meter.meter": "meter", "meter.energy_method": "energy method",
    "meter.watts_per_core": "watts per core", "meter.watts_per_core_source": "watts per core: source",
    "meter.idle_power_w": "idle power (W)", "meter.carbon.g_per_kwh": "grid intensity used (gCO2e/kWh)",
    "meter.carbon.source": "grid intensity: source", "meter.carbon.pue": "PUE used",
}
_DEFAULTS_SHOWN = {"config.limit": "all items", "config.threads": "all cores (default)",
                   "config.watts_per_core": "from the CPU's TDP (default)", "config.country": "not set",
                   "config.grid_intensity": "not set (world average)", "environment.gpu": "none"}


def setting_name(key: str) -> str:
    """A plain name for a flattened settings key."""
    if key in SETTING_NAMES:
        return SETTING_NAMES[key]
    section, _, rest = key.partition(".")
    return f"{rest.replace('.', ' › ').replace('_', ' ')} ({section})"


def setting_value(key: str, value: Any) -> str:
    """A value as a person reads it: no literal None, lists joined, booleans as yes/no."""
    if value is None or value == "":
        return _DEFAULTS_SHOWN.get(key, "–")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(Path(str(v)).name if key == "config.suites" else str(v) for v in value) or "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def what_changed(ra: dict[str, Any], rb: dict[str, Any]) -> list[dict[str, Any]]:
    """List the settings and environment fields that differ between two runs, in plain words."""
    rows = []
    for section in ("config", "environment", "meter"):
        fa, fb = flat(ra.get(section) or {}), flat(rb.get(section) or {})
        for k in sorted(set(fa) | set(fb)):
            if k in ("store", "out", "date") or k.endswith(".date"):
                continue
            if fa.get(k) != fb.get(k):
                key = f"{section}.{k}"
                rows.append({"what": setting_name(key), "run A": setting_value(key, fa.get(k)),
                             "run B": setting_value(key, fb.get(k))})
    return rows


def cells_moved(a: Any, b: Any) -> Any:
    """Cells of both runs joined on (suite, task, model, variant): accuracy and energy deltas."""
    import pandas as pd

    ka = {(c.suite, c.task, c.model, c.variant): c for c in a.cells}
    kb = {(c.suite, c.task, c.model, c.variant): c for c in b.cells}
    rows = []
    for key in list(dict.fromkeys([*ka, *kb])):
        ca, cb = ka.get(key), kb.get(key)
        acc_a = ca.accuracy if ca and ca.status == "ok" else None
        acc_b = cb.accuracy if cb and cb.status == "ok" else None
        e_a = ca.energy_j_per_1k if ca and ca.status == "ok" else None
        e_b = cb.energy_j_per_1k if cb and cb.status == "ok" else None
        where = "both" if ca and cb else ("only in A" if ca else "only in B")
        rows.append({
            "suite": key[0], "task": key[1], "model": key[2], "variant": key[3], "in": where,
            "status A": ca.status if ca else "", "status B": cb.status if cb else "",
            "accuracy A %": None if acc_a is None else round(acc_a * 100, 1),
            "accuracy B %": None if acc_b is None else round(acc_b * 100, 1),
            "Δ accuracy pts": None if acc_a is None or acc_b is None else round((acc_b - acc_a) * 100, 1),
            "J/1k A": e_a, "J/1k B": e_b,
            "Δ energy %": None if not e_a or e_b is None else round((e_b / e_a - 1) * 100, 1),
        })
    return pd.DataFrame(rows)


def open_run(run_id: str, row: dict[str, Any]) -> None:
    """Details of one run: settings, environment, cells, links, downloads, delete."""
    result = C.get_result(run_id)
    if result is None:
        return
    took = C.seconds_between(row.get("created_at"), row.get("finished_at"))
    st.markdown(f"**{C.md(C.run_name(row))}** — {C.fmt_status(result.status)} · created "
                f"{C.friendly_time(row['created_at'])}"
                + (f" · finished {C.friendly_time(row['finished_at'])}" if row.get("finished_at") else "")
                + (f" · took {C.fmt_duration(took)}" if took is not None and took >= 0 else ""))
    st.caption(f"Run id `{run_id}` (what the CLI, the permalinks and the downloads use).")
    links = st.columns(3)
    links[0].page_link(C.PAGE_FILES["frontier"], label="Frontier of this run", icon=":material/scatter_plot:",
                       query_params={"run": run_id})
    links[1].page_link(C.PAGE_FILES["items"], label="Items of this run", icon=":material/compare_arrows:",
                       query_params={"run": run_id})
    C.failed_cells_box(result)
    import pandas as pd

    cells = pd.DataFrame([{"suite": c.suite, "task": c.task, "model": c.model, "variant": c.variant,
                           "status": c.status, "accuracy %": None if c.accuracy is None else round(c.accuracy * 100, 1),
                           "J / 1k items": c.energy_j_per_1k, "energy method": c.energy_method,
                           "duration s": c.duration_s, "reused": c.reused,
                           "reason": C.first_line(c.error, 300) if c.status != "ok" else ""} for c in result.cells])
    st.dataframe(cells, hide_index=True, width="stretch",
                 column_config={"J / 1k items": st.column_config.NumberColumn(format="%.2f"),
                                "duration s": st.column_config.NumberColumn(format="%.3f")})
    with st.expander("Settings, environment and meter"):
        full = C.get_store().get_run(run_id)
        st.json({"config": full.get("config"), "environment": full.get("environment"), "meter": full.get("meter")},
                expanded=1)
    C.download_buttons(run_id, float((row.get("config") or {}).get("tolerance_pts") or 2.0), key="runs_dl")
    delete_box(run_id, row)


def delete_box(run_id: str, row: dict[str, Any]) -> None:
    """Two-step delete: ask, then confirm."""
    pending = st.session_state.get("confirm_delete")
    if row["status"] in C.LIVE:
        st.caption("A running run cannot be deleted; cancel it on the Run page first.")
        return
    if pending != run_id:
        if st.button("Delete this run…", key="delete", icon=":material/delete:"):
            st.session_state["confirm_delete"] = run_id
            st.rerun()
        return
    st.warning(f"Delete run **{run_id}** and its cells from the store? This cannot be undone. "
               "Cells other runs reused from it keep their items.")
    c1, c2 = st.columns(2)
    if c1.button("Yes, delete it", type="primary", key="delete_yes"):
        try:
            C.get_store().delete_run(run_id)
        except Exception as exc:  # noqa: BLE001
            C.show_error(exc, "Cannot delete")
        else:
            st.session_state.pop("confirm_delete", None)
            st.session_state["deleted"] = run_id
            C.list_runs.clear()
            C.load_run.clear()
            if st.query_params.get("run") == run_id:
                del st.query_params["run"]
            st.rerun()
    if c2.button("Cancel", key="delete_no"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()


def compare_view(runs: list[dict[str, Any]]) -> None:
    """Pick two runs: what changed, which cells moved."""
    ids = [r["run_id"] for r in runs]
    by_id = {r["run_id"]: r for r in runs}
    qp = st.query_params
    a_def = ids.index(qp["a"]) if qp.get("a") in by_id else min(1, len(ids) - 1)
    b_def = ids.index(qp["b"]) if qp.get("b") in by_id else 0
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A (before)", ids, index=a_def, format_func=lambda i: C.run_label(by_id[i]), key="cmp_a")
    b = c2.selectbox("Run B (after)", ids, index=b_def, format_func=lambda i: C.run_label(by_id[i]), key="cmp_b")
    C.set_params(view="compare", a=a, b=b, run=None)
    if a == b:
        st.info("Choose two different runs.")
        return
    ra, rb = C.get_result(a), C.get_result(b)
    if ra is None or rb is None:
        return
    store = C.get_store()
    changed = what_changed(store.get_run(a), store.get_run(b))
    st.markdown("##### What changed")
    if changed:
        import pandas as pd

        st.dataframe(pd.DataFrame(changed), hide_index=True, width="stretch")
    else:
        st.caption("Same settings, environment and meter.")
    st.markdown("##### Which cells moved")
    df = cells_moved(ra, rb)
    moved = df[(df["Δ accuracy pts"].fillna(0) != 0) | (df["in"] != "both") | (df["status A"] != df["status B"])]
    st.caption(f"{len(df)} cells; {len(moved)} changed accuracy, status or presence. Δ energy compares energy "
               "per 1,000 items (B vs A).")
    only_moved = st.toggle("Only cells whose accuracy, status or presence changed", value=False, key="cmp_moved")
    st.dataframe(moved if only_moved else df, hide_index=True, width="stretch",
                 column_config={"J/1k A": st.column_config.NumberColumn(format="%.2f"),
                                "J/1k B": st.column_config.NumberColumn(format="%.2f")})
    C.permalink("runs", view="compare", a=a, b=b)


runs = C.runs_now()
if st.session_state.get("deleted"):
    st.success(f"Deleted run {st.session_state.pop('deleted')}.")
if not runs:
    C.empty_state("No stored runs yet.")
    st.stop()
st.dataframe(runs_frame(runs), hide_index=True, width="stretch")
views = ["Open a run", "Compare two runs"]
view = st.segmented_control("View", views, default=views[1] if st.query_params.get("view") == "compare" else views[0],
                            key="runs_view", label_visibility="collapsed") or views[0]
if view == views[0]:
    run_id = C.run_picker(runs, prefer_results=False)
    if run_id:
        C.set_params(run=run_id, view=None, a=None, b=None)
        open_run(run_id, next(r for r in runs if r["run_id"] == run_id))
        C.permalink("runs", run=run_id)
elif len(runs) < 2:
    st.info("Only one run is stored: run another grid to compare.")
else:
    compare_view(runs)
