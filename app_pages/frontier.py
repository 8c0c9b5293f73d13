"""Frontier page: per suite, accuracy vs energy with the Pareto frontier.

Also the recommendation sentence (with a tolerance slider), energy grades, and every cell in a sortable table.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages import common as C

st.title("Frontier")
st.caption("Which model is good enough for how much energy: each point is a (model, variant) averaged over "
           "a suite's tasks. Points on the dotted line are on the Pareto frontier: nothing else is both more "
           "accurate and cheaper.")

GRADE_HELP = ("A–E by position of each point's energy on a log scale between the suite's lowest (A) and highest "
              "(E) energy per 1,000 items.")


def _method(p: Any) -> str:
    m = p.energy_method or "?"
    return m if "estimate" in m or not p.is_estimate else f"{m} (estimate)"


def _chance(above: bool | None, chance: float | None) -> str:
    """'yes', or 'NO (chance 25%)' for a cell whose 95 % interval does not clear a random guess."""
    if above is None:
        return "–"
    return "yes" if above else f"NO (chance {chance:.0%})"


def points_frame(points: list[Any], cells: list[Any] | None = None) -> Any:
    """One row per (model, variant) point; with an adaptive run's cells, the items each saw and why it stopped."""
    import pandas as pd

    from evaluator.report.writers import race_notes

    race = race_notes(cells or [], points[0].suite) if points else {}
    rows = [{"grade": p.grade, "model": p.model, "variant": p.variant, "accuracy %": round(p.accuracy * 100, 1),
             "95% CI": f"{p.accuracy_ci_low:.0%}–{p.accuracy_ci_high:.0%}",
             "J / 1k items": round(p.energy_j_per_1k, 2), "energy method": _method(p),
             "on frontier": "yes" if p.on_frontier else ("≈ (CI overlaps)" if p.indistinguishable else "no"),
             "above chance": _chance(p.above_chance, p.chance_accuracy),
             "items": p.n_items, "tasks": p.tasks} for p in sorted(points, key=lambda p: p.energy_j_per_1k)]
    mine = [c for c in cells or [] if points and c.suite == points[0].suite and c.backend]
    if mine:  # the runtime beside each point, and whether it ran on a fallback kernel here
        backend = {(c.model, c.variant): c.backend for c in mine}
        slow = {(c.model, c.variant): (c.fallback_reason or "yes") for c in mine if c.fallback_kernel}
        for row in rows:
            key = (row["model"], row["variant"])
            row["backend"], row["fallback kernel"] = backend.get(key, ""), slow.get(key, "")
    if race:
        for row in rows:
            seen, why = race.get((row["model"], row["variant"]), ("", ""))
            row["items"] = seen
            row["adaptive evaluation"] = why or "saw every item"
    return pd.DataFrame(rows)


def cells_frame(cells: list[Any]) -> Any:
    """One row per cell, every number with its unit in the column name."""
    import pandas as pd

    rows = []
    for c in cells:
        rows.append({
            "task": c.task, "model": c.model, "variant": c.variant, "status": c.status,
            "accuracy %": None if c.accuracy is None else round(c.accuracy * 100, 1),
            "n items": c.n_items, "stopped early": c.stopped_reason or "", "energy J": c.energy_j,
            "J / 1k items": c.energy_j_per_1k,
            "energy method": c.energy_method, "duration s": c.duration_s, "size MB": c.size_mb,
            "peak RSS MB": c.peak_rss_mb, "gCO2e": c.gco2e, "scoring": c.scoring_method,
            "above chance": _chance(c.above_chance, c.chance_accuracy),
            "on frontier": c.on_frontier, "reused": c.reused, "backend": c.backend,
            "fallback kernel": (c.fallback_reason or "yes") if c.fallback_kernel else "",
            "reason": C.first_line(c.error, 300) if c.status != "ok" else ""})
    return pd.DataFrame(rows)


def _no_grade(p: Any) -> str:
    return "not above chance" if p.above_chance is False else "–"


def grade_badges(points: list[Any]) -> None:
    """Energy grades as small coloured labels."""
    colours = {"A": "green", "B": "blue", "C": "orange", "D": "orange", "E": "red"}
    parts = [f":{colours.get(p.grade, 'gray')}-badge[{p.grade or _no_grade(p)}] {C.md(p.model)} {C.md(p.variant)}"
             for p in sorted(points, key=lambda p: (p.grade or "Z", p.energy_j_per_1k))]
    st.markdown("**Energy grades** &nbsp; " + " &nbsp; ".join(parts), help=GRADE_HELP)


def badge_downloads(points: list[Any], suite: str) -> None:
    """The energy label of one (model, variant) of this suite as an SVG or PNG badge, for a README or a slide."""
    if not points:
        return
    from evaluator.report.badge import badge_filename, point_badge_png, point_badge_svg

    with st.expander("Energy label badges (SVG / PNG)", icon=":material/label:"):
        # graded points first (A first): the default is never a point that earned no grade
        ordered = sorted(points, key=lambda p: (p.grade or "Z", p.energy_j_per_1k))
        by_name = {f"{p.model} {p.variant}": p for p in ordered}
        pick = st.selectbox("Badge for", list(by_name), key=f"badge_pick_{suite}")
        p = by_name[pick]
        svg = point_badge_svg(p)
        png = point_badge_png(p)
        import io

        from PIL import Image

        from evaluator.report.badge import PNG_SCALE

        st.image(png, caption=f"{pick} on {suite}: energy grade {p.grade or _no_grade(p)}, {p.accuracy:.0%} accuracy",
                 width=Image.open(io.BytesIO(png)).width // PNG_SCALE)
        cols = st.columns(2)
        stem = badge_filename(p)[:-4]
        cols[0].download_button("badge.svg", data=svg.encode(), file_name=f"{stem}.svg", mime="image/svg+xml",
                                icon=":material/download:", on_click="ignore", width="stretch",
                                key=f"badge_svg_{suite}")
        cols[1].download_button("badge.png", data=png, file_name=f"{stem}.png", mime="image/png",
                                icon=":material/download:", on_click="ignore", width="stretch",
                                key=f"badge_png_{suite}")


def _find(d: Any, key: str) -> Any:
    """The first value of ``key`` in a nested dict (the auto meter nests its parts' contexts)."""
    if isinstance(d, dict):
        if d.get(key) not in (None, ""):
            return d[key]
        for v in d.values():
            found = _find(v, key)
            if found not in (None, ""):
                return found
    elif isinstance(d, list | tuple):
        for v in d:
            found = _find(v, key)
            if found not in (None, ""):
                return found
    return None


def hardware_line(env: dict[str, Any], meter: dict[str, Any]) -> str:
    """'Measured on AMD EPYC 7B13 (2 cores, 2 threads, cpu) · meter auto → estimate · 10.0 W per core (TDP table)'."""
    cpu = env.get("cpu_model") or _find(meter, "cpu_model") or "an unknown CPU"
    bits = [f"{env['cpu_count']} cores" if env.get("cpu_count") else None,
            f"{env['threads']} threads" if env.get("threads") else None, env.get("device")]
    hw = f"{C.md(cpu)} ({', '.join(str(b) for b in bits if b)})" if any(bits) else C.md(cpu)
    if env.get("gpu"):
        hw += f" + {C.md(env['gpu'])}"
    name = meter.get("meter") or "?"
    method = meter.get("energy_method") or _find(meter, "energy_method")
    line = f"Measured on {hw} · meter **{C.md(name)}**" + (f" ({C.md(method)})" if method and method != name else "")
    wpc = _find(meter, "watts_per_core")
    if wpc is not None:
        src = _find(meter, "watts_per_core_source")
        try:
            line += f" · {float(wpc):.1f} W per busy core" + (f" ({C.md(src)})" if src else "")
        except (TypeError, ValueError):
            pass
    idle = meter.get("idle_power_w")
    if isinstance(idle, int | float) and idle:
        line += f" · idle {idle:.1f} W subtracted"
    return line


def measured_on(result: Any) -> None:
    """Hardware, meter and the watts-per-core figure the energy rests on, next to the estimate warning."""
    st.caption(":material/memory: " + hardware_line(result.environment or {}, result.meter or {})
               + ". Full details: Runs page → Settings, environment and meter.")


def suite_view(result: Any, suite: str, tolerance: float) -> None:
    """Figure, recommendation, grades and table of one suite."""
    from evaluator.pareto import recommend

    points = result.frontiers.get(suite, [])
    cells = [c for c in result.cells if c.suite == suite]
    rec = recommend(points, tolerance) if points else None
    if rec is not None:
        st.success(f"**Recommendation.** {C.md(rec.text)}", icon=":material/recommend:")
    else:
        st.warning(f"No complete (model, variant) point in suite {C.md(suite)}: every point needs all of the suite's "
                   "tasks to have finished. See the failed cells below.")
    if points:
        try:
            from evaluator.report.plots import frontier_figure

            fig = frontier_figure(points, title=f"{suite}: accuracy vs energy", tolerance_pts=tolerance)
            # legend under the plot: the plot keeps the full width, also on a narrow window
            fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0, "xanchor": "left"},
                              height=620, margin={"b": 190})
            st.plotly_chart(fig, width="stretch", key=f"fig_{suite}", config={"displaylogo": False})
        except ImportError:
            st.info("The plot module is not installed in this version; the table below has the same numbers.")
        except Exception as exc:  # noqa: BLE001
            C.show_error(exc, "Cannot draw the frontier")
        if any(p.is_estimate for p in points):
            st.caption(":orange[:material/warning:] Energy here is an **estimate** (no hardware counter was "
                       "readable on the machine "
                       "that ran it): compare points with each other, not with measured figures.")
        measured_on(result)
        grade_badges(points)
        if any(c.stopped_reason for c in cells):
            st.caption(":material/speed: **Adaptive evaluation**: points stopped early once they were out of "
                       "contention for the recommendation, and a decided suite stopped whole (paired tests at 95 %, "
                       "corrected for the number of tests); their figures are those of the items they saw. See "
                       "*adaptive evaluation* below.")
        st.dataframe(points_frame(points, cells), hide_index=True, width="stretch",
                     column_config={"grade": st.column_config.TextColumn("grade", help=GRADE_HELP)})
    C.failed_cells_box(result, suite)
    st.markdown("##### All cells of this suite")
    st.caption("Click a column header to sort.")
    st.dataframe(cells_frame(cells), hide_index=True, width="stretch",
                 column_config={"energy J": st.column_config.NumberColumn(format="%.3f"),
                                "J / 1k items": st.column_config.NumberColumn(format="%.2f"),
                                "duration s": st.column_config.NumberColumn(format="%.3f"),
                                "size MB": st.column_config.NumberColumn(format="%.1f"),
                                "peak RSS MB": st.column_config.NumberColumn(format="%.0f"),
                                "gCO2e": st.column_config.NumberColumn(format="%.4f")})


run_id, result, _runs, row = C.pick_run_or_stop(
    "No runs yet. The quick demo (two small models, three suites) takes a few minutes.")
st.caption(f"{C.fmt_status(result.status)} · {row.get('done') or 0}/{row.get('planned_cells') or 0} cells · "
           f"run {run_id} · created {C.friendly_time(row.get('created_at'))}")
if result.status in C.LIVE:
    st.info("This run is still going: the page shows the cells stored so far. Reload to see more.")
suites = list(dict.fromkeys([c.suite for c in result.cells]))
if not suites:
    st.info("This run has no stored cells yet.")
    st.stop()
wanted = st.query_params.get("suite")
if wanted and wanted not in suites:
    st.warning(f"Suite {C.md(repr(wanted))} from the link is not in this run.")
    wanted = None
cols = st.columns([2, 1])
suite = cols[0].selectbox("Suite", suites, index=suites.index(wanted) if wanted else 0, key=f"suite_{run_id}")
default_tol = float((row.get("config") or {}).get("tolerance_pts") or 2.0)
linked_tol = C.tolerance_param(default_tol)
if st.session_state.get("_linked_tol") != linked_tol:  # first visit, or a link asks for another tolerance
    st.session_state["tolerance"] = linked_tol
    st.session_state["_linked_tol"] = linked_tol
tol = cols[1].slider("Tolerance (accuracy points)", 0.0, 20.0, step=0.5, key="tolerance",
                     help="How many points of accuracy you would give up for energy: the recommendation is the "
                     "lowest-energy point within this distance of the best accuracy.")
st.session_state["_linked_tol"] = tol
C.set_params(run=run_id, suite=suite, tol=None if tol == default_tol else f"{tol:g}")
suite_view(result, suite, tol)
st.divider()
C.download_buttons(run_id, tol, key="frontier_dl")
badge_downloads(result.frontiers.get(suite, []), suite)
C.permalink("frontier", run=run_id, suite=suite, tol=None if tol == default_tol else f"{tol:g}")
