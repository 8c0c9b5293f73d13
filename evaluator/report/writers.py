r"""Shareable reports: one self-contained HTML file, a GitHub-flavoured Markdown summary, PNG charts, badges.

The HTML report inlines plotly.js once and makes no external request (no CDN, no web fonts, no
remote images). It is built by small functions that return HTML fragments; every user-supplied
string (suite, task, model and variant names, errors, prompts, meter details) goes through
:func:`_e` (``html.escape``), and the chart JSON has every ``<`` written as ``\u003c`` so no string
can close the ``<script>`` element it sits in. The Markdown summary escapes control characters (an ANSI
sequence in a model name is shown as ``\x1b``, not run by the terminal that prints the CI log). Every
file is written atomically (evaluator/safeio.py).
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator import textsafe
from evaluator.errors import FrugalError, OutputError
from evaluator.measure import MIN_WINDOWS
from evaluator.meters import METHOD_LABELS
from evaluator.pareto import left_out_note, recommend
from evaluator.records import CellResult, SuitePoint
from evaluator.report.badge import grade_colour, point_badge_svg, safe_name, write_badges
from evaluator.report.plots import energy_axis_title, frontier_figure
from evaluator.safeio import atomic_render, atomic_write
from evaluator.textsafe import term
from evaluator.units import cell_label, fmt_joules

if TYPE_CHECKING:
    from evaluator.records import RunResult

log = logging.getLogger("frugal.report")

PLOTLY_CONFIG = {"responsive": True, "displaylogo": False, "showLink": False,
                 "modeBarButtonsToRemove": ["sendDataToCloud", "select2d", "lasso2d"],
                 "toImageButtonOptions": {"format": "png", "scale": 2}}


# --------------------------------------------------------------------------------------- helpers
class Html(str):
    """A string that is already safe HTML (built here from escaped parts); everything else is escaped."""


def _e(value: Any) -> str:
    """Escape any value for HTML text or attributes; ``None`` becomes an en dash."""
    if isinstance(value, Html):
        return value
    if value is None:
        return "\u2013"
    return html.escape(str(value), quote=True)


def _num(value: float | int | None, fmt: str = ",.2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    return format(value, fmt)


def _pct(value: float | None, digits: int = 1) -> str:
    return "\u2013" if value is None else f"{value * 100:.{digits}f}"


def _ci_pct(lo: float | None, hi: float | None) -> str:
    return "\u2013" if lo is None or hi is None else f"{lo * 100:.1f}\u2013{hi * 100:.1f}"


def _yes(value: bool | None) -> str:
    return "\u2013" if value is None else ("yes" if value else "no")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> Html:
    """An HTML table; headers and cells are escaped unless they are :class:`Html`."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Html(f'<div class="scroll"><table class="{_e(cls)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")


def _dl(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A definition list of (term, value) pairs, both escaped unless Html."""
    return Html("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs) + "</dl>")


def _section(anchor: str, title: str, body: str) -> Html:
    return Html(f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>')


def _grade_chip(grade: str) -> Html:
    return Html(f'<span class="grade" style="background:{_e(grade_colour(grade))}">{_e(grade or "?")}</span>')


def _ok_cells(result: RunResult) -> list[CellResult]:
    return [c for c in result.cells if c.status == "ok"]


def _suites(result: RunResult) -> list[str]:
    return list(dict.fromkeys([c.suite for c in result.cells] + list(result.frontiers)))


# ------------------------------------------------------------------------------- energy wording
def energy_methods(result: RunResult) -> list[str]:
    """Energy methods used by the run's ok cells, sorted."""
    return sorted({c.energy_method or "unknown" for c in _ok_cells(result)})


def energy_statement(result: RunResult) -> str:
    """One plain sentence: measured or estimated, by which method (plain text, not escaped)."""
    methods = energy_methods(result)
    cells = _ok_cells(result)
    if not cells:
        return "No cell finished, so there are no energy figures."
    estimate = any(c.is_estimate for c in cells)
    measured = any(not c.is_estimate for c in cells)
    names = ", ".join(METHOD_LABELS.get(m, m) for m in methods)
    if len(methods) > 1:
        return (f"Energy methods are MIXED in this run ({names}); figures from different methods are not "
                f"directly comparable.")
    if estimate and not measured:
        part = (result.meter.get("parts", {}) or {}).get("estimate", {}) if isinstance(result.meter, dict) else {}
        wpc = part.get("watts_per_core")
        how = METHOD_LABELS.get(methods[0], methods[0]).removeprefix("estimate: ")
        detail = f"; {wpc:g} W per busy core: {part.get('watts_per_core_source', '')}" if wpc else ""
        return (f"Energy is an ESTIMATE on this machine, not a measurement ({how}{detail}). "
                f"No energy counter (RAPL, NVML) was readable.")
    return f"Energy is MEASURED with a hardware counter ({names})."


# ------------------------------------------------------------------------------------ sections
def _context_section(result: RunResult) -> Html:
    env, meter = result.environment or {}, result.meter or {}
    carbon = meter.get("carbon", {}) or {}
    hardware = [
        ("CPU", f"{env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} logical cores)"),
        ("GPU", env.get("gpu") or "none"), ("device", env.get("device")), ("threads", env.get("threads")),
        ("platform", env.get("platform")),
    ]
    versions = [(k, env.get(k)) for k in ("frugal", "python", "torch", "transformers") if k in env]
    idle = meter.get("idle_power_w")
    measuring = [
        ("meter", meter.get("meter")), ("energy method", meter.get("energy_method")),
        ("figures are", "an ESTIMATE" if meter.get("is_estimate", True) else "MEASURED"),
        ("idle power", f"{idle:.2f} W" if isinstance(idle, int | float) else idle),
        ("idle note", meter.get("idle_note")),
    ]
    for name, why in (meter.get("probes") or {}).items():
        measuring.append((f"probe {name}", why))
    for name, part in (meter.get("parts") or {}).items():
        if isinstance(part, dict):
            for k, v in part.items():
                if k not in ("meter", "is_estimate"):
                    measuring.append((f"{name}: {k}", v))
    shown = {"meter", "energy_method", "is_estimate", "idle_power_w", "idle_note", "probes", "parts", "carbon",
             "not_used"}
    for k, v in meter.items():
        if k not in shown:
            measuring.append((k, json.dumps(v, default=str) if isinstance(v, dict | list) else v))
    carbon_rows = [("grid intensity", f"{carbon.get('g_per_kwh', '?')} gCO2e/kWh"), ("source", carbon.get("source")),
                   ("PUE", carbon.get("pue"))]
    n_failed = len(result.failed)
    run_rows = [("run id", result.run_id), ("status", result.status), ("date", env.get("date")),
                ("cells", f"{len(result.cells)} ({n_failed} failed)"), ("store", result.store_path)]
    body = (f'<p class="lead">{_e(energy_statement(result))}</p><div class="grid">'
            f"<div><h3>Run</h3>{_dl(run_rows)}</div><div><h3>Hardware</h3>{_dl(hardware)}</div>"
            f"<div><h3>Software</h3>{_dl(versions)}</div><div><h3>Carbon (derived)</h3>{_dl(carbon_rows)}</div>"
            f'</div><h3>Energy measurement</h3>{_dl(measuring)}')
    return _section("context", "Run context", body)


def _figure_script(fig: Any, div_id: str) -> Html:
    """A div and an inline script that draws ``fig``; no string in the JSON can close the script."""
    import plotly.io as pio

    data = pio.to_json(fig, validate=False, pretty=False).replace("<", "\\u003c")
    config = json.dumps(PLOTLY_CONFIG)
    return Html(f'<div id="{div_id}" class="plot"></div><script>(function(){{var f={data};'
                f'Plotly.newPlot("{div_id}",f.data,f.layout,{config});}})();</script>')


def _suite_section(suite: str, index: int, points: list[SuitePoint], result: RunResult, tol: float) -> Html:
    rec = recommend(points, tol)
    rec_html = (f'<p class="rec"><strong>Recommendation</strong> (within {tol:g} pts of the best): '
                f"{_e(rec.text)}</p>") if rec else \
        '<p class="rec warn">No complete (model, variant) point in this suite.</p>'
    incomplete = sorted({(c.model, c.variant) for c in result.cells if c.suite == suite}
                        - {(p.model, p.variant) for p in points})
    note = ""
    left = left_out_note(result.cells, suite)
    if left:
        note += f'<p class="muted">{_e(left)}</p>'
    if incomplete:
        note += ('<p class="warn">Not plotted (a task failed, so the suite point would be incomplete): '
                + ", ".join(f"{_e(m)} [{_e(v)}]" for m, v in incomplete) + "</p>")
    chart = _figure_script(frontier_figure(points, f"{suite}: accuracy vs energy", tol), f"plot-{index}") \
        if points else ""
    rows = []
    race = race_notes(result.cells, suite)
    for p in sorted(points, key=lambda p: p.energy_j_per_1k):
        status = "frontier" if p.on_frontier else ("indistinguishable" if p.indistinguishable else "dominated")
        if p.above_chance is False:
            status += " \u00b7 NOT above chance"
        seen, why = race.get((p.model, p.variant), (str(p.n_items), ""))
        rows.append([p.model, p.variant, _pct(p.accuracy), _ci_pct(p.accuracy_ci_low, p.accuracy_ci_high),
                     fmt_joules(p.energy_j_per_1k), p.energy_method, Html(point_badge_svg(p)), status, seen,
                     p.tasks] + ([why or "saw every item"] if race else []))
    table = _table(["Model", "Variant", "Accuracy (%)", "95% CI (%)", "Energy (J / 1,000 items)", "Energy method",
                    "Energy label", "Pareto", "Items (n)", "Tasks"] + (["Adaptive evaluation"] if race else []),
                   rows, "points")
    if race:
        table = Html('<p class="muted">Adaptive evaluation: items in rounds, in one seeded order shared by every '
                     "point; a point stopped early once it was out of contention for the recommendation (off "
                     "the frontier or below the best by more than the tolerance, or dearer than the leader and "
                     "not more than the tolerance better), and a decided suite stopped whole (paired tests, 95 % "
                     "with a correction for the number of tests). Its figures are those of the items it "
                     "saw.</p>" + table)
    body = (f"{rec_html}{note}<p class=\"muted\">{_e(energy_axis_title(points))}. Suite accuracy is the mean of "
            f"its tasks; energy labels A (least) to E (most) are placed on a log scale between this suite's lowest "
            f"and highest energy in this run, among points better than chance at 95 % (\"NOT above chance\": "
            f"no label).</p>{chart}{table}")
    return _section(f"suite-{index}", f"Suite: {suite}", body)


def race_notes(cells: Sequence[CellResult], suite: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Per (model, variant) of an adaptive run's suite: 'seen of available' items and why it stopped.

    Empty when the run was not adaptive.
    """
    out: dict[tuple[str, str], tuple[str, str]] = {}
    by: dict[tuple[str, str], list[CellResult]] = {}
    for c in cells:
        if c.suite == suite and c.status == "ok" and c.items_available is not None:
            by.setdefault((c.model, c.variant), []).append(c)
    for key, cs in by.items():
        seen, avail = sum(c.n_items for c in cs), sum(c.items_available or 0 for c in cs)
        why = next((c.stopped_reason for c in cs if c.stopped_reason), "")
        rnd = next((c.stopped_after_round for c in cs if c.stopped_after_round), None)
        out[key] = (f"{seen} of {avail}", f"stopped after round {rnd}: {why}" if rnd and why else why)
    return out


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()) if k != "accuracy") or "\u2013"


CELL_HEADERS = (
    "Suite", "Task", "Model", "Variant", "Status", "Items (n)", "Items available", "Stopped early",
    "Correct (n)", "Accuracy (%)", "95% CI (%)", "Other metrics", "Scoring", "Energy (J, these items)",
    "Active energy (J)", "Energy 95% CI (J)", "J / item", "J / 1,000 items", "J / correct", "Energy method",
    "Estimate", "Stable", "Carbon (gCO2e)", "Duration (s)", "CPU time (s)", "Repeats", "Windows",
    "Passes / window", "Deterministic", "Params", "Non-zero params", "Size (MB)", "Peak RSS (MB)",
    "Weight dtype", "Load (s)", "Batch", "Reused", "On frontier", "Backend",
    "Fallback kernel",
)


def _cell_row(c: CellResult) -> list[Any]:
    ci = "\u2013" if c.energy_ci_low is None else f"{fmt_joules(c.energy_ci_low)}\u2013{fmt_joules(c.energy_ci_high)}"
    stable = _yes(c.energy_is_stable) + (f" ({c.energy_unstable_reason})" if c.energy_unstable_reason else "")
    stopped = (f"after round {c.stopped_after_round}: {c.stopped_reason}" if c.stopped_after_round
               else (c.stopped_reason or "\u2013"))
    return [c.suite, c.task, c.model, c.variant, c.status, c.n_items,
            "\u2013" if c.items_available is None else c.items_available, stopped, c.n_correct, _pct(c.accuracy),
            _ci_pct(c.accuracy_ci_low, c.accuracy_ci_high), _metrics_text(c.metrics), c.scoring_method or "\u2013",
            fmt_joules(c.energy_j), fmt_joules(c.active_energy_j), ci, fmt_joules(c.energy_j_per_item),
            fmt_joules(c.energy_j_per_1k), fmt_joules(c.energy_j_per_correct), c.energy_method or "\u2013",
            _yes(c.is_estimate) if c.status == "ok" else "\u2013", stable,
            _num(c.gco2e, ".3g"), _num(c.duration_s, ".3f"), _num(c.cpu_time_s, ".3f"), c.repeats,
            len(c.energy_windows) or "\u2013", c.passes_per_window, _yes(c.deterministic), _num(c.params, ","),
            _num(c.nonzero_params, ","),
            _num(c.size_mb, ".1f"), _num(c.peak_rss_mb, ".0f"), c.weight_dtype, _num(c.load_s, ".2f"),
            c.batch_size, _yes(c.reused), _yes(c.on_frontier), c.backend or "\u2013",
            f"yes: {c.fallback_reason}" if c.fallback_kernel else "no"]


def _cells_section(result: RunResult) -> Html:
    body = ('<p class="muted">One row per (suite, task, model, variant). Energy is that of scoring the cell\'s '
            "items once (with --repeats N, the mean over N passes); its 95 % interval comes from the measured "
            "windows' energy per item (docs/methodology.md, \"Energy intervals\"); active energy subtracts idle "
            "power x duration.</p>" + _table(CELL_HEADERS, [_cell_row(c) for c in result.cells], "cells"))
    return _section("cells", "All cells", body)


def _tasks_section(result: RunResult) -> Html:
    by_task: dict[tuple[str, str], list[CellResult]] = defaultdict(list)
    for c in result.cells:
        by_task[(c.suite, c.task)].append(c)
    parts = []
    for (suite, task), cells in by_task.items():
        ok = [c for c in cells if c.status == "ok" and c.accuracy is not None]
        best = max((c.accuracy for c in ok), default=None)
        rows = []
        for c in sorted(cells, key=lambda c: (c.status != "ok", -(c.accuracy or 0), c.energy_j_per_1k or 0)):
            acc = _pct(c.accuracy)
            if best is not None and c.accuracy == best:
                acc = Html(f"<strong>{_e(acc)}</strong>")
            rows.append([c.model, c.variant, c.status, c.n_items, acc, _ci_pct(c.accuracy_ci_low, c.accuracy_ci_high),
                         _metrics_text(c.metrics), fmt_joules(c.energy_j_per_1k), fmt_joules(c.energy_j_per_correct),
                         c.scoring_method or "\u2013"])
        prompt = next((c.prompt_template for c in cells if c.prompt_template), "")
        prompt_html = (f"<details><summary>Prompt template</summary><pre>{_e(prompt)}</pre></details>"
                       if prompt else "")
        parts.append(f"<h3>{_e(suite)} / {_e(task)}</h3>" + _table(
            ["Model", "Variant", "Status", "Items (n)", "Accuracy (%)", "95% CI (%)", "Other metrics",
             "J / 1,000 items", "J / correct", "Scoring"], rows, "tasks") + prompt_html)
    return _section("tasks", "Per-task breakdown", "".join(parts) or "<p>No tasks.</p>")


def _generation_section(result: RunResult) -> Html:
    """Generated answers: energy per answered query and per correct answer, the prefill/decode split, speed."""
    cells = [c for c in _ok_cells(result) if c.task_type == "generation"]
    if not cells:
        return Html("")
    rows = []
    for c in sorted(cells, key=lambda c: (c.suite, c.task, c.energy_j_per_1k or 0)):
        rows.append([f"{c.suite}/{c.task}", c.model, c.variant, _pct(c.accuracy),
                     _num(c.energy_j_per_item, ",.3f"), _num(c.energy_j_per_correct, ",.3f"),
                     _num(c.energy_j_per_token, ",.4f"), _pct(c.prefill_energy_share),
                     _num(c.time_to_first_token_s, ",.3f"), _num(c.decode_tokens_per_s, ",.1f"),
                     _num(c.decode_energy_j_per_token, ",.4f"),
                     _num(c.generated_tokens / c.n_items if c.generated_tokens and c.n_items else None, ",.1f"),
                     _pct(c.truncation_rate), f"{c.num_fewshot}-shot" + (", chat" if c.chat_template else "")])
    body = (f"<p>{_e(energy_statement(result))} Energy per answered query is the cell's energy per item (the "
            "frontier's J / 1,000 items are per 1,000 answered queries); per correct answer divides by the right "
            "answers only. Prefill is measured apart (the same prompts with max_new_tokens=1); decode = total - "
            "prefill. J / token divides the whole query's energy (prefill included) by its generated tokens; "
            "decode J / token is the decode phase alone over the tokens after each answer's first, as are decode "
            "tokens/s (blank where the decode phase is inside the noise of the subtraction). Time to first token is "
            "the prefill time of one batch. Truncated: stopped by max_new_tokens.</p>"
            + _table(["Task", "Model", "Variant", "Accuracy", "J / query", "J / correct", "J / token",
                      "Prefill share", "TTFT (s)", "Decode tok/s", "Decode J / token", "Tokens / answer", "Truncated",
                      "Prompt"], rows))
    return _section("generation", "Generated answers", body)


def _failed_section(result: RunResult) -> Html:
    failed = result.failed
    if not failed:
        return _section("failed", "Failed cells", "<p>None: every cell finished.</p>")
    rows = [[c.suite, c.task, c.model, c.variant, Html(f'<pre class="err">{_e(c.error or "no reason recorded")}</pre>')]
            for c in failed]
    body = (f'<p class="warn">{len(failed)} cell(s) failed. A failed task leaves its (model, variant) suite '
            "point incomplete, so that point is not plotted.</p>" + _table(["Suite", "Task", "Model", "Variant",
                                                                             "Reason"], rows, "failed"))
    return _section("failed", "Failed cells", body)


def _span(values: Sequence[int]) -> str:
    """'3' or '1-5' for a sorted list of whole numbers."""
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def rules(result: RunResult) -> list[tuple[str, str, str]]:
    """Which measurement rules held in this run: (rule, verdict, detail), plain text."""
    ok = _ok_cells(result)
    meter = result.meter or {}
    out: list[tuple[str, str, str]] = []
    methods = energy_methods(result)
    if not ok:
        return [("Any figures", "no", "no cell finished")]
    if all(not c.is_estimate for c in ok):
        out.append(("Energy measured by a counter", "held", f"method: {', '.join(methods)}"))
    else:
        why = "; ".join(str(x) for x in meter.get("not_used", []) or []) or "no counter selected"
        out.append(("Energy measured by a counter", "NOT held: estimate",
                    f"energy is an estimate on this machine ({', '.join(methods)}); {why}"))
    per_suite_mixed = [s for s, pts in result.frontiers.items() if len({p.energy_method for p in pts}) > 1]
    out.append(("One energy method per chart", "held" if not per_suite_mixed else "NOT held",
                "every chart uses one method" if not per_suite_mixed else
                f"mixed methods in: {', '.join(per_suite_mixed)} (the axis title says so)"))
    out.append(("Steady state only", "held (by design)",
                "model loading and one warm-up batch happen outside the measured window"))
    windows = sorted({len(c.energy_windows) for c in ok if c.energy_windows})
    out.append(("Window long enough for the meter", "held (by design)",
                "each item is scored once, batch by batch, in windows of at least the meter's minimum length (a "
                f"pass of fewer than {MIN_WINDOWS} batches is cut into smaller ones, one per window; a cell of "
                f"fewer than {MIN_WINDOWS} items is scored again until it fills them); "
                + (f"{_span(windows)} window(s) per cell; " if windows else "")
                + "the energy interval comes from the windows' energy per item"))
    idle = meter.get("idle_power_w")
    if any(not c.is_estimate for c in ok):
        out.append(("Idle baseline subtracted", "held" if idle else "NOT held",
                    f"idle power {idle if idle is not None else '?'} W measured before the run; active energy = "
                    "gross - idle power x duration"))
    else:
        out.append(("Idle baseline subtracted", "not applicable",
                    str(meter.get("idle_note") or "the estimate excludes idle draw")))
    reps = sorted({c.repeats for c in ok})
    out.append(("Repeats with a 95% interval", "held" if reps[0] >= 3 else "NOT held",
                f"{_span(reps)} measured repeat(s) per cell" + (
                    "" if reps[0] >= 2 else "; with one repeat the energy interval is the value itself")))
    unstable = [c for c in ok if not c.energy_is_stable]
    out.append(("Stable energy readings", "held" if not unstable else f"NOT held in {len(unstable)} cell(s)",
                "; ".join(f"{cell_label(c.suite, c.task, c.model, c.variant)}: {c.energy_unstable_reason}"
                          for c in unstable[:5]) or "no cell flagged unstable"))
    nondet = [c for c in ok if c.deterministic is False]
    out.append(("Deterministic predictions across repeats", "held" if not nondet else
                f"NOT held in {len(nondet)} cell(s)",
                "accuracy is from the first pass; later passes are compared with it" if not nondet else
                ", ".join(cell_label(c.suite, c.task, c.model, c.variant) for c in nondet[:5])))
    comps = sorted({k for c in ok for k in c.energy_components_j})
    out.append(("Scope: components reported", "held" if comps else "partly",
                f"components: {', '.join(comps) or 'total only'}" + ("" if "gpu" in comps else "; no GPU energy")))
    carbon = meter.get("carbon", {}) or {}
    out.append(("Carbon derived, not measured", "held",
                f"gCO2e = kWh x {carbon.get('g_per_kwh', '?')} g/kWh ({carbon.get('source', '?')}) x PUE "
                f"{carbon.get('pue', '?')}"))
    return out


def _method_section(result: RunResult, tol: float) -> Html:
    rows = [[r, Html(f'<span class="{"good" if v.startswith("held") else "bad" if v.startswith("NOT") else ""}">'
                     f"{_e(v)}</span>"), d] for r, v, d in rules(result)]
    text = f"""
<ul>
<li><b>Accuracy</b>: per task, the share of items answered correctly (n and a 95% Wilson interval). Multiple
choice on causal LMs scores each choice by its summed log-likelihood (acc; acc_norm is length-normalised);
encoders use zero-shot similarity or a small probe trained on the task's train split. Suite accuracy is the
mean over tasks; its 95% interval uses the tasks' binomial variances (normal approximation).</li>
<li><b>Energy</b>: {_e(energy_statement(result))} Each cell is measured in named windows after the model is loaded
and warmed up; a window repeats the scoring pass until it is long enough for the meter; the energy of a pass
is the window's energy divided by the passes. Repeats give a mean and a 95% t-interval. Figures are
normalised per item, per 1,000 items and per correct answer.</li>
<li><b>Idle</b>: idle power is measured before the run with counter meters and subtracted to give active
energy; the estimate counts only this process's CPU time, so idle draw is not in it.</li>
<li><b>Carbon</b> is derived: kWh x grid intensity x PUE. Energy comes first; carbon is a conversion.</li>
<li><b>Pareto</b>: a point is on the frontier when no other point has lower-or-equal energy and
higher-or-equal accuracy with one strictly better. A point off the frontier whose accuracy interval overlaps
the frontier points that dominate it is <i>indistinguishable</i> (open marker). The recommendation names the
lowest-energy point within {tol:g} points of the best accuracy and states the saving as a ratio.</li>
<li><b>Comparing runs</b>: per-item predictions are stored so <code>frugal compare</code> can run an exact
McNemar test on the same items.</li>
</ul>"""
    body = (text + "<h3>Which rules held in this run</h3>" + _table(["Rule", "Verdict", "Detail"], rows, "rules"))
    return _section("methodology", "Methodology in brief", body)


CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#ffffff;--soft:#f6f8fa}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:var(--bg);margin:0;line-height:1.45;font-size:15px}
main{max-width:1200px;margin:0 auto;padding:24px}
header{border-bottom:1px solid var(--line);margin-bottom:16px}
h1{font-size:26px;margin:0 0 6px}h2{font-size:21px;border-bottom:1px solid var(--line);padding-bottom:4px;
margin-top:36px}h3{font-size:16px;margin:18px 0 6px}
nav a{margin-right:14px}a{color:#0969da}
.lead{font-size:16px;background:#fff8c5;border:1px solid #d4a72c66;padding:8px 12px;border-radius:6px}
.rec{background:#dafbe1;border:1px solid #4ac26b66;padding:8px 12px;border-radius:6px}
.warn{color:#9a6700}.muted{color:var(--muted);font-size:13px}.good{color:#1a7f37;font-weight:600}
.bad{color:#cf222e;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px 24px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;font-size:13px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}
th{background:var(--soft);position:sticky;top:0}
table.cells{font-size:12px;white-space:nowrap}
table.rules td:nth-child(2){white-space:nowrap}
pre{background:var(--soft);padding:6px;border-radius:4px;white-space:pre-wrap;margin:4px 0;font-size:12px}
pre.err{max-width:640px;margin:0;color:#cf222e}
.plot{width:100%;min-height:500px}
.grade{display:inline-block;color:#fff;font-weight:700;border-radius:3px;padding:0 6px}
ul.recs li{margin:4px 0}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""


def render_report_html(result: RunResult, tolerance_pts: float = 2.0) -> str:
    """The full report as one HTML string (plotly.js inlined once)."""
    from plotly.offline import get_plotlyjs

    suites = _suites(result)
    suite_html = "".join(_suite_section(s, i, result.frontiers.get(s, []), result, tolerance_pts)
                         for i, s in enumerate(suites))
    recs = []
    for i, s in enumerate(suites):
        rec = recommend(result.frontiers.get(s, []), tolerance_pts)
        recs.append(f'<li><a href="#suite-{i}">{_e(s)}</a>: {_e(rec.text) if rec else "no complete points"}</li>')
    nav = ('<nav><a href="#context">Context</a>' + "".join(f'<a href="#suite-{i}">{_e(s)}</a>'
                                                          for i, s in enumerate(suites))
           + '<a href="#tasks">Tasks</a><a href="#cells">All cells</a><a href="#failed">Failed</a>'
           '<a href="#methodology">Methodology</a></nav>')
    date = (result.environment or {}).get("date", "")
    title = f"Frugal report: run {result.run_id}"
    js = get_plotlyjs()
    if "</script" in js.lower():  # pragma: no cover - would break the page
        raise FrugalError("the bundled plotly.js contains '</script'; cannot inline it safely")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{js}</script></head><body><main>'
        f"<header><h1>{_e(title)}</h1><p class=\"muted\">{_e(result.status)} \u00b7 {_e(date)} \u00b7 "
        f"{len(result.cells)} cells, {len(result.failed)} failed</p>{nav}"
        f'<ul class="recs">{"".join(recs)}</ul></header>'
        f"{_context_section(result)}{suite_html}{_tasks_section(result)}{_generation_section(result)}"
        f"{_cells_section(result)}"
        f"{_failed_section(result)}{_method_section(result, tolerance_pts)}"
        f"<footer>Generated by Frugal {_e((result.environment or {}).get('frugal', ''))}. Self-contained: "
        "this file makes no network requests.</footer></main></body></html>\n"
    )


def write_report_html(result: RunResult, path: Path | str, tolerance_pts: float = 2.0) -> Path:
    """Write the self-contained HTML report; returns its path."""
    return atomic_write(Path(path), render_report_html(result, tolerance_pts))


# ------------------------------------------------------------------------------------- markdown
def md_escape(text: Any) -> str:
    """Escape a user string for a GFM table cell: HTML-escaped, Markdown punctuation and ``|`` backslashed."""
    return textsafe.md_escape(html.escape(str(text), quote=False).replace("\r", " ").replace("\n", " "))


def render_summary_md(result: RunResult, tolerance_pts: float = 2.0) -> str:
    """GitHub-flavoured Markdown summary (for $GITHUB_STEP_SUMMARY and merge-request comments)."""
    lines = [f"## Frugal: run {md_escape(result.run_id)} ({md_escape(result.status)})", "",
             f"**Energy:** {md_escape(energy_statement(result))}"]
    carbon = (result.meter or {}).get("carbon", {}) or {}
    if carbon:
        lines.append(f"Carbon is derived: {md_escape(carbon.get('g_per_kwh', '?'))} gCO2e/kWh "
                     f"({md_escape(carbon.get('source', '?'))}), PUE {md_escape(carbon.get('pue', '?'))}.")
    for suite in _suites(result):
        points = result.frontiers.get(suite, [])
        rec = recommend(points, tolerance_pts)
        lines += ["", f"### {md_escape(suite)}", "",
                  f"> **Recommendation** (within {tolerance_pts:g} pts of the best): "
                  + (md_escape(rec.text) if rec else "no complete (model, variant) point."), ""]
        if points:
            lines += [f"_{md_escape(energy_axis_title(points))}_", "",
                      "| Model | Variant | Accuracy (%) | 95% CI (%) | J / 1,000 items | Grade | Frontier |",
                      "|---|---|--:|:-:|--:|:-:|:-:|"]
            for p in sorted(points, key=lambda p: p.energy_j_per_1k):
                front = "yes" if p.on_frontier else ("\u2248 (CI overlaps)" if p.indistinguishable else "no")
                if p.above_chance is False:
                    front += " \u00b7 NOT above chance"
                lines.append(f"| {md_escape(p.model)} | {md_escape(p.variant)} | {_pct(p.accuracy)} | "
                             f"{_ci_pct(p.accuracy_ci_low, p.accuracy_ci_high)} | {fmt_joules(p.energy_j_per_1k)} | "
                             f"{md_escape(p.grade or '?')}{' (est.)' if p.is_estimate else ''} | {front} |")
    slow = [c for c in result.cells if c.status == "ok" and c.fallback_kernel]
    if slow:  # their energy and time are the fallback's, not the method's (METHODOLOGY "Kernels")
        lines += ["", f"### Cells on a fallback kernel ({len(slow)})", "", "| Suite | Task | Model | Variant | Why |",
                  "|---|---|---|---|---|"]
        lines += [f"| {md_escape(c.suite)} | {md_escape(c.task)} | {md_escape(c.model)} | {md_escape(c.variant)} | "
                  f"{md_escape(c.fallback_reason or '')} |" for c in slow]
    lines += generation_markdown(result)
    if result.failed:
        lines += ["", f"### Failed cells ({len(result.failed)})", "", "| Suite | Task | Model | Variant | Reason |",
                  "|---|---|---|---|---|"]
        for c in result.failed:
            reason = (c.error or "no reason recorded")[:300]
            lines.append(f"| {md_escape(c.suite)} | {md_escape(c.task)} | {md_escape(c.model)} | "
                         f"{md_escape(c.variant)} | {md_escape(reason)} |")
    lines += ["", "Grades A (least energy) to E (most) are relative to each suite in this run. "
              "Full details: report.html in the run's output folder.", ""]
    return "\n".join(lines)


def generation_markdown(result: RunResult) -> list[str]:
    """Summary lines for generated answers: energy per query and per correct answer, prefill share, speed."""
    cells = [c for c in _ok_cells(result) if c.task_type == "generation"]
    if not cells:
        return []
    lines = ["", f"### Generated answers ({len(cells)} cells)", "",
             "| Task | Model | Variant | Accuracy (%) | J / query | J / correct | J / token | Prefill share | "
             "Decode tok/s | Decode J / token | Truncated |", "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in sorted(cells, key=lambda c: (c.suite, c.task, c.energy_j_per_1k or 0)):
        lines.append(f"| {md_escape(c.suite)}/{md_escape(c.task)} | {md_escape(c.model)} | {md_escape(c.variant)} | "
                     f"{_pct(c.accuracy)} | {_num(c.energy_j_per_item, ',.3f')} | "
                     f"{_num(c.energy_j_per_correct, ',.3f')} | "
                     f"{_num(c.energy_j_per_token, ',.4f')} | {_pct(c.prefill_energy_share)} | "
                     f"{_num(c.decode_tokens_per_s, ',.1f')} | {_num(c.decode_energy_j_per_token, ',.4f')} | "
                     f"{_pct(c.truncation_rate)} |")
    return lines


def write_summary_md(result: RunResult, path: Path | str, tolerance_pts: float = 2.0,
                     gate_failures: Sequence[str] | None = None) -> Path:
    """Write summary.md (with the gates section when ``gate_failures`` is given), atomically; returns its path."""
    text = render_summary_md(result, tolerance_pts)
    if gate_failures is not None:
        text += gates_markdown(gate_failures)
    return atomic_write(Path(path), term(text, multiline=True))


def gates_markdown(failures: Sequence[str]) -> str:
    """A Markdown block with gate results, for appending to summary.md."""
    if not failures:
        return "\n### Gates\n\nAll gates passed.\n"
    return "\n### Gates\n\n" + "\n".join(f"- :x: {md_escape(f)}" for f in failures) + "\n"


# ------------------------------------------------------------------------------------------ PNG
def write_frontier_pngs(result: RunResult, out: Path | str, tolerance_pts: float = 2.0) -> list[Path]:
    """Write ``frontier-<suite>.png`` per suite with points, via kaleido (needs Chrome/Chromium)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs, paths = [], []
    for suite in _suites(result):
        points = result.frontiers.get(suite, [])
        if not points:
            continue
        figs.append(frontier_figure(points, f"{suite}: accuracy vs energy", tolerance_pts))
        paths.append(out / f"frontier-{safe_name(suite)}.png")
    if not figs:
        return []
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise FrugalError("PNG charts need the 'kaleido' package (pip install kaleido) and Chromium "
                          "(apt-get install -y chromium)") from None
    import plotly.io as pio

    try:
        atomic_render(paths, lambda tmps: pio.write_images(figs, tmps, format="png", width=1000, height=560,
                                                           scale=1))
    except OutputError:
        raise
    except Exception as exc:  # kaleido raises its own types when no browser can be started
        raise FrugalError(f"could not write PNG charts ({type(exc).__name__}: {str(exc)[:300]}). Kaleido renders "
                          "with Chrome/Chromium: install it (apt-get install -y chromium on Debian/Ubuntu, or "
                          "`plotly_get_chrome`) and make sure it is on PATH") from exc
    return paths


def write_reports(result: RunResult, out: Path | str, tolerance_pts: float = 2.0) -> list[Path]:
    """report.html, summary.md, frontier-<suite>.png (skipped with a warning without Chromium) and badges."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_report_html(result, out / "report.html", tolerance_pts),
             write_summary_md(result, out / "summary.md", tolerance_pts)]
    try:
        paths += write_frontier_pngs(result, out, tolerance_pts)
    except OutputError:
        raise  # a full disk or a permission: the run must say so, not skip a chart
    except FrugalError as exc:
        log.warning("frontier PNGs skipped: %s", exc)
    paths += write_badges(result, out)
    return paths


__all__ = ["energy_statement", "gates_markdown", "md_escape", "render_report_html", "render_summary_md", "rules",
           "write_frontier_pngs", "write_report_html", "write_reports", "write_summary_md"]
