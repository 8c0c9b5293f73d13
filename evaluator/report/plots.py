"""Plotly figures for the reports and the app: accuracy vs energy with the Pareto frontier.

Pure functions over :class:`~evaluator.records.SuitePoint` lists; nothing here touches disk. Every
user-supplied string that plotly renders (names in legends, hover text, titles) is HTML-escaped,
because plotly interprets a subset of HTML in its text.

>>> from evaluator.records import SuitePoint
>>> p = SuitePoint("s", "m", "fp32", 0.8, 0.7, 0.9, 120.0, "estimate", True, 40, 2, on_frontier=True, grade="A")
>>> fig = frontier_figure([p], title="s")
>>> fig.layout.xaxis.type
'log'
>>> energy_axis_title([p])
'Energy per 1,000 items (J, estimate: CPU time x W/core)'
"""

from __future__ import annotations

import html
import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evaluator.meters import METHOD_LABELS, method_label
from evaluator.pareto import recommend
from evaluator.records import SuitePoint
from evaluator.units import fmt_joules

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Colours for models (colour-blind-friendly first: Okabe-Ito, then Plotly's and D3's qualitative sets).
PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000",
    "#636EFA", "#EF553B", "#00A67E", "#AB63FA", "#E377C2", "#1F77B4", "#FF7F0E", "#2CA02C",
    "#D62728", "#9467BD", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF", "#6A3D9A", "#B15928",
)
#: Marker symbols for variants (filled; the "-open" form marks indistinguishable points).
#: Ordered so that the first ones differ most in outline (square, diamond, pentagon and hexagon look alike
#: at marker size: they come last).
SYMBOLS: tuple[str, ...] = (
    "circle", "triangle-up", "square", "x", "star", "cross", "triangle-down", "diamond", "hourglass",
    "hexagram", "bowtie", "triangle-left", "triangle-right", "pentagon", "hexagon", "star-diamond",
)
#: Fixed symbols for common variants, so they look the same in every chart.
KNOWN_SYMBOLS: dict[str, str] = {"fp32": "circle", "bf16": "square", "fp16": "diamond",
                                 "prune-structured-25": "triangle-up", "int8-weight-only": "x", "gguf-q4": "star",
                                 "ort-int8": "cross"}
FRONTIER_COLOUR = "#444444"


def _stable_slots(names: Sequence[str], size: int) -> dict[str, int]:
    """Map names to palette slots: a hash picks the preferred slot, collisions probe onward.

    The same name gets the same slot across figures unless two names of one figure collide.
    """
    out: dict[str, int] = {}
    used: set[int] = set()
    for name in sorted(set(names)):
        slot = zlib.crc32(name.encode("utf-8")) % size
        if len(used) < size:
            while slot in used:
                slot = (slot + 1) % size
        used.add(slot)
        out[name] = slot
    return out


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """A deterministic colour per model name."""
    return {m: PALETTE[i] for m, i in _stable_slots(models, len(PALETTE)).items()}


def variant_symbols(variants: Sequence[str]) -> dict[str, str]:
    """A deterministic marker symbol per variant name (fixed ones for fp32, bf16 and fp16)."""
    known = {v: KNOWN_SYMBOLS[v] for v in variants if v in KNOWN_SYMBOLS}
    rest = [s for s in SYMBOLS if s not in known.values()]
    others = _stable_slots([v for v in variants if v not in known], len(rest))
    return {**known, **{v: rest[i] for v, i in others.items()}}


def _si(value: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:g}"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values 1-2-5 x 10^k between lo and hi (only powers of ten over wide ranges), with SI labels.

    >>> log_ticks(450, 2100)[1]
    ['500', '1k', '2k']
    """
    if not (lo > 0 and hi >= lo):
        return [], []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if k1 - k0 <= 4 else (1,)
    every = max(1, math.ceil((k1 - k0 + 1) / 10))
    vals = [m * 10.0**k for k in range(k0, k1 + 1) if (k - k0) % every == 0 for m in steps if lo <= m * 10.0**k <= hi]
    if len(vals) < 2:  # a narrow range: its ends and middle, rounded
        vals = sorted({float(f"{v:.2g}") for v in (lo, math.sqrt(lo * hi), hi)})
    return vals, [_si(v) for v in vals]


def _split_methods(points: Sequence[SuitePoint]) -> list[str]:
    methods: set[str] = set()
    for p in points:
        if p.energy_method in METHOD_LABELS or not p.energy_method:
            methods.add(p.energy_method or "unknown")
        else:  # a point whose tasks used different methods: "estimate+rapl"
            methods.update(p.energy_method.split("+"))
    return sorted(methods)


def energy_axis_title(points: Sequence[SuitePoint]) -> str:
    """Axis title saying whether energy is measured or estimated, and how; mixed methods are called out."""
    methods = _split_methods(points)
    base = "Energy per 1,000 items"
    if not methods:
        return f"{base} (J)"
    if len(methods) == 1:
        m = methods[0]
        label = method_label(m, any(p.is_estimate for p in points))
        return f"{base} (J, {html.escape(label)})"
    return f"{base} (J, MIXED methods: {html.escape(', '.join(methods))}; not directly comparable)"


def hover_text(p: SuitePoint) -> str:
    """Every figure of one point, as plotly hover HTML (names escaped)."""
    status = "on the frontier" if p.on_frontier else (
        "indistinguishable from the frontier (CI overlaps)" if p.indistinguishable else "dominated")
    chance = ("" if p.above_chance is not False else
              f"NOT above chance ({p.chance_accuracy:.0%}) at 95%: no energy grade")
    from evaluator.variants import VARIANTS, variant_class  # what the variant's fast kernel needs, if anything

    parts = [(n, variant_class(n)) for n in p.variant.split("+") if n in VARIANTS]
    needs = [f"{n}: " + ("no fast CPU kernel" if c.cpu_fallback else "fast kernel needs " + " or ".join(c.cpu_needs))
             for n, c in parts if c.cpu_needs or c.cpu_fallback]
    fallback = ("fallback kernel where the CPU lacks it (see the cells' fallback flag): " + "; ".join(needs)
                if needs else "")
    return "<br>".join([x for x in [
        f"<b>{html.escape(p.model)}</b> [{html.escape(p.variant)}]",
        f"accuracy {p.accuracy:.1%} (95% CI {p.accuracy_ci_low:.1%} to {p.accuracy_ci_high:.1%})",
        f"energy {fmt_joules(p.energy_j_per_1k)} J per 1,000 items "
        f"({html.escape(method_label(p.energy_method or '?', p.is_estimate))})",
        f"energy grade {html.escape(p.grade or '-')}",
        chance,
        f"n = {p.n_items} items over {p.tasks} task(s)",
        status,
        html.escape(fallback),
    ] if x])



def _plottable(p: SuitePoint) -> bool:
    e = p.energy_j_per_1k
    return e is not None and math.isfinite(e) and e > 0 and p.accuracy is not None and math.isfinite(p.accuracy)


def frontier_figure(points: list[SuitePoint], title: str = "", tolerance_pts: float | None = None) -> go.Figure:
    """Accuracy (%, with 95 % CI bars) vs energy per 1,000 items (log x), with the Pareto frontier.

    Colour = model, marker symbol = variant, open marker = not on the frontier but statistically
    indistinguishable from it. With ``tolerance_pts`` the band within that many points of the best
    accuracy is shaded and the recommended point is labelled.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    shown = [p for p in points if _plottable(p)]
    hidden = len(points) - len(shown)
    colours = model_colours([p.model for p in shown])
    symbols = variant_symbols([p.variant for p in shown])
    label_points = len(shown) <= 40

    for model in sorted(colours):
        pts = sorted((p for p in shown if p.model == model), key=lambda p: (p.energy_j_per_1k, p.variant))
        acc = [p.accuracy * 100 for p in pts]
        fig.add_trace(go.Scatter(
            x=[p.energy_j_per_1k for p in pts], y=acc, mode="markers",
            name=html.escape(model), legendgroup="models", legendgrouptitle_text="Model (colour)",
            marker={"color": colours[model], "size": [14 if p.on_frontier else 11 for p in pts],
                    "symbol": [symbols[p.variant] + ("-open" if p.indistinguishable else "") for p in pts],
                    "line": {"width": [2 if p.on_frontier or p.indistinguishable else 0.5 for p in pts],
                             "color": [FRONTIER_COLOUR if p.on_frontier else colours[model] for p in pts]}},
            error_y={"type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": colours[model],
                     "array": [(p.accuracy_ci_high - p.accuracy) * 100 for p in pts],
                     "arrayminus": [(p.accuracy - p.accuracy_ci_low) * 100 for p in pts]},
            text=[hover_text(p) for p in pts], hovertemplate="%{text}<extra></extra>",
        ))

    front = sorted((p for p in shown if p.on_frontier), key=lambda p: (p.energy_j_per_1k, -p.accuracy))
    if front:
        fig.add_trace(go.Scatter(
            x=[p.energy_j_per_1k for p in front], y=[p.accuracy * 100 for p in front],
            mode="lines+text" if label_points else "lines", line={"shape": "hv", "color": FRONTIER_COLOUR,
                                                                  "width": 1.5, "dash": "dot"},
            text=[html.escape(p.label) for p in front] if label_points else None,
            # above the step line, and inward at the ends (leftmost to the right, the others to the left)
            textposition=["top right" if i == 0 and len(front) > 1 else "top left" for i in range(len(front))],
            textfont={"size": 11, "color": FRONTIER_COLOUR},
            name="Pareto frontier", legendgroup="key", legendgrouptitle_text="Key", hoverinfo="skip"))
    for variant in sorted(symbols):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=html.escape(variant), legendgroup="variants",
            legendgrouptitle_text="Variant (symbol)",
            marker={"symbol": symbols[variant], "color": "#555555", "size": 12}, hoverinfo="skip"))
    if any(p.indistinguishable for p in shown):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name="open marker: CI overlaps the frontier (indistinguishable)",
            legendgroup="key", legendgrouptitle_text="Key",
            marker={"symbol": "circle-open", "color": "#888888", "size": 10, "line": {"width": 2}},
            hoverinfo="skip"))

    rec = recommend(shown, tolerance_pts) if tolerance_pts is not None and shown else None
    if rec is not None:
        top = rec.best.accuracy * 100
        fig.add_hrect(y0=top - tolerance_pts, y1=top, fillcolor="#2ca02c", opacity=0.08, line_width=0,
                      layer="below")
        # the label points away from the nearer edge, so it is never cut off at the plot's right side
        lo_e = min(math.log10(p.energy_j_per_1k) for p in shown)
        hi_e = max(math.log10(p.energy_j_per_1k) for p in shown)
        right_half = math.log10(rec.choice.energy_j_per_1k) > (lo_e + hi_e) / 2
        fig.add_annotation(
            x=math.log10(rec.choice.energy_j_per_1k), y=rec.choice.accuracy * 100, xref="x", yref="y",
            text=f"recommended: {html.escape(rec.choice.label)}", showarrow=True, arrowhead=2,
            ax=-50 if right_half else 50, ay=40, xanchor="right" if right_half else "left",
            font={"size": 11, "color": "#1a7f37"}, bgcolor="rgba(255,255,255,0.8)")

    notes = []
    if tolerance_pts is not None and rec is not None:
        notes.append(f"shaded: within {tolerance_pts:g} pts of the best accuracy")
    if hidden:
        notes.append(f"{hidden} point(s) without a positive energy figure not shown")
    if not shown:
        notes.append("no complete (model, variant) points to plot")
    if notes:
        fig.add_annotation(text="; ".join(notes), xref="paper", yref="paper", x=0, y=-0.2, showarrow=False,
                           xanchor="left", font={"size": 11, "color": "#555555"})
    fig.update_layout(
        title={"text": html.escape(title)} if title else None, template="plotly_white", height=500,
        margin={"l": 70, "r": 20, "t": 60 if title else 30, "b": 90},
        legend={"groupclick": "toggleitem", "font": {"size": 11}}, hovermode="closest",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"},
    )
    xaxis: dict = {}
    if shown:
        lo = min(p.energy_j_per_1k for p in shown)
        hi = max(p.energy_j_per_1k for p in shown)
        pad = max(0.2, 0.12 * (math.log10(hi) - math.log10(lo)))  # room for labels at both ends
        ticks, labels = log_ticks(lo / 10**pad, hi * 10**pad)
        xaxis = {"range": [math.log10(lo) - pad, math.log10(hi) + pad], "tickvals": ticks, "ticktext": labels}
    fig.update_xaxes(type="log", title_text=energy_axis_title(shown), showgrid=True, gridcolor="#eeeeee", **xaxis)
    fig.update_yaxes(title_text="Accuracy (%, 95% CI)", showgrid=True, gridcolor="#eeeeee",
                     rangemode="tozero" if not shown else "normal")
    return fig


__all__ = ["energy_axis_title", "frontier_figure", "hover_text", "log_ticks", "model_colours", "variant_symbols"]
