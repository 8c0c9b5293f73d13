"""The measurement protocol of one cell: warm-up, measured windows, idle subtraction, intervals.

The scoring pass is prepared outside the window (tokenised, probe trained) and warmed up on one batch
(once per loaded model and kind of pass, scoring or generation: the runner's later cells of that kind
skip it).
Then each item is scored once (``repeats=1``, the default): the pass runs batch by batch, and the
batches are grouped into measured **windows**, each at least the meter's minimum window long (a counter's
update period; one batch per window with the estimate). A pass of fewer batches than :data:`MIN_WINDOWS`
(a cell of one batch, an adaptive race's first round) runs in that many smaller batches instead, each item
still scored once; a pass that still falls short of the windows (a counter's window longer than the
pass, or fewer items than windows) is repeated until it fills them, so that every cell has an interval.
``repeats=N`` scores the whole pass N times (the windows of every pass pool together), for users who want
whole-pass repeats.

Energy for the cell's items is their count times the energy per item over all windows (sum of energy /
sum of items scored). Its 95 % interval is the t-interval of the per-item energy of the windows, times
the item count: a window's energy per item varies with the noise of the meter *and* with the items it
holds (long and short prompts), so the interval is wider than the repeat-to-repeat spread of whole passes,
never narrower (docs/methodology.md, "Energy intervals"). Accuracy comes from each item's first score;
an item scored again must agree (``deterministic``). Active energy subtracts the idle baseline times the
duration. Every NaN/inf score fails the cell instead of being scored.

Windows are kept (:class:`Window`), so measurements of the same cell on more items add up: an adaptive
round or a later run that extends a stored cell measures only the new items, and :func:`combine` pools
the windows (evaluator/adaptive.py).

A scoring pass with a prefill (generation) gets a prefill window after each measured one, over the same
items: the same prompts with max_new_tokens=1, as optimum-benchmark's energy_star scenario does, repeated
up to the meter's minimum window too. Decode = total - prefill (:func:`phase_figures`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from evaluator.failures import check_finite
from evaluator.stats import mean_ci

if TYPE_CHECKING:
    from evaluator.meters import Meter
    from evaluator.tasks.base import ItemScore, ScoringPass

#: A cell's pass is repeated until it has filled this many measured windows (an interval needs >= 2).
MIN_WINDOWS = 2


@dataclass(frozen=True)
class Window:
    """One measured window: the items scored in it and what the meter read (totals, not per item)."""

    items: int
    energy_j: float
    duration_s: float
    cpu_time_s: float
    components_j: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in the cell)."""
        return {**asdict(self), "components_j": dict(self.components_j)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Window:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["items"]), float(d["energy_j"]), float(d["duration_s"]), float(d["cpu_time_s"]),
                   dict(d.get("components_j") or {}))


@dataclass(frozen=True)
class Measured:
    """Energy and time for the cell's items, with provenance, and each item's first score."""

    scores: list[ItemScore]
    energy_j: float
    energy_ci_low: float
    energy_ci_high: float
    active_energy_j: float
    duration_s: float
    duration_ci_low: float
    duration_ci_high: float
    cpu_time_s: float
    #: Whole passes per window (1 when a pass spans several windows; more when a short pass is repeated).
    passes_per_window: int
    repeats: int
    deterministic: bool | None
    energy_method: str
    is_estimate: bool
    components_j: dict[str, float] = field(default_factory=dict)
    unstable_reason: str | None = None
    peak_rss_mb: float | None = None
    #: For the cell's items (generation only): prefill energy and duration.
    prefill_energy_j: float | None = None
    prefill_duration_s: float | None = None
    windows: tuple[Window, ...] = ()
    prefill_windows: tuple[Window, ...] = ()
    idle_w: float = 0.0


def pass_chunks(start: int, stop: int, chunk: int, repeats: int, min_windows: int = MIN_WINDOWS
                ) -> list[tuple[int, int]]:
    """The batches one pass over items ``start:stop`` is scored in.

    Batches of ``chunk`` items; a single pass (``repeats`` 1) of fewer batches than ``min_windows`` that has
    at least ``min_windows`` items is cut into smaller batches, one per window, so that no item is scored
    twice. The planner counts the items a cell scores from the same batches.

    >>> pass_chunks(0, 40, 16, 1), pass_chunks(0, 5, 16, 1), pass_chunks(0, 5, 16, 3), pass_chunks(0, 1, 16, 1)
    ([(0, 16), (16, 32), (32, 40)], [(0, 3), (3, 5)], [(0, 5)], [(0, 1)])
    """
    step = max(1, chunk)
    if repeats == 1 and -(-(stop - start) // step) < min_windows <= stop - start:
        step = -(-(stop - start) // min_windows)
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


def measure(meter: Meter, window: str, scoring: ScoringPass, repeats: int, idle_w: float,
            start: int = 0, stop: int | None = None, min_windows: int = MIN_WINDOWS, warm: bool = True) -> Measured:
    """Warm up, then score items ``start:stop`` of the pass ``repeats`` times in at least ``min_windows`` windows.

    An adaptive round asks for fewer windows when the cell already has some (the cell's windows pool).
    ``warm=False``: the loaded model has already run a pass of this kind (scoring or generation) for an
    earlier cell, so its first batch is no colder than the rest; no warm-up batch.
    """
    stop = scoring.n_items if stop is None else stop
    if not 0 <= start < stop <= scoring.n_items:
        raise ValueError(f"no items to measure in {start}:{stop} of {scoring.n_items}")
    chunks = pass_chunks(start, stop, scoring.chunk, repeats, min_windows)
    if warm:
        scoring.warm()
    reset_peak_rss()
    first: dict[int, list[ItemScore]] = {}
    deterministic: bool | None = None
    windows: list[Window] = []
    pre_windows: list[Window] = []
    unstable: list[str] = []
    method, estimate = "", True
    need, done = repeats * len(chunks), 0
    while done < need or len(windows) < min_windows:
        name = f"{window}:{len(windows)}"
        meter.begin(name)
        t_start, items, ran = time.perf_counter(), 0, []
        while True:
            c = done % len(chunks)
            a, b = chunks[c]
            scores = scoring.run_items(a, b)
            check_finite([x for s in scores for x in s.scores], "scores")  # never score NaN/inf silently
            if c not in first:
                first[c] = scores
            elif [(s.pred, s.output) for s in scores] != [(s.pred, s.output) for s in first[c]]:
                deterministic = False
            elif deterministic is None:
                deterministic = True
            done, items = done + 1, items + (b - a)
            ran.append((a, b))
            if time.perf_counter() - t_start >= meter.min_window_s:
                break
        m = meter.end(name)
        method, estimate = m.energy_method, m.is_estimate
        windows.append(Window(items, m.energy_j or 0.0, m.duration_s, m.cpu_time_s, dict(m.components_j)))
        if not m.is_stable:
            unstable.append(m.unstable_reason or f"window {len(windows) - 1} unstable")
        if scoring.prefill_items is not None:
            w, why = _prefill_window(meter, f"{window}:prefill:{len(windows) - 1}", scoring, ran)
            pre_windows.append(w)
            if why:
                unstable.append(f"prefill: {why}")
    scores = [s for c in range(len(chunks)) for s in first[c]]
    return summarise(scores, windows, pre_windows, repeats=repeats, deterministic=deterministic,
                     energy_method=method, is_estimate=estimate, unstable=unstable, idle_w=idle_w,
                     peak_rss=peak_rss_mb(), passes_per_window=max(1, round(sum(w.items for w in windows)
                                                                            / len(windows) / (stop - start))))


def summarise(scores: Sequence[ItemScore], windows: Sequence[Window], prefill_windows: Sequence[Window] = (), *,
              repeats: int = 1, deterministic: bool | None = None, energy_method: str = "",
              is_estimate: bool = True, unstable: Sequence[str] = (), idle_w: float = 0.0,
              peak_rss: float | None = None, passes_per_window: int = 1) -> Measured:
    """Figures for ``len(scores)`` items from the windows that measured them.

    >>> w = [Window(10, 20.0, 1.0, 1.0), Window(10, 22.0, 1.1, 1.1), Window(10, 18.0, 0.9, 0.9)]
    >>> m = summarise([None] * 30, w)
    >>> m.energy_j, round(m.energy_ci_low, 1), round(m.energy_ci_high, 1)
    (60.0, 45.1, 74.9)
    """
    n = len(scores)
    if not windows or n == 0:
        raise ValueError("a measurement needs at least one window and one item")
    scored = sum(w.items for w in windows)
    energy, duration, cpu = _pooled(windows, n, "energy_j"), _pooled(windows, n, "duration_s"), \
        _pooled(windows, n, "cpu_time_s")
    comps: dict[str, float] = {}
    for w in windows:
        for k, v in w.components_j.items():
            comps[k] = comps.get(k, 0.0) + v * n / scored
    pre_e = _pooled(prefill_windows, n, "energy_j")[0] if prefill_windows else None
    pre_d = _pooled(prefill_windows, n, "duration_s")[0] if prefill_windows else None
    why = list(unstable)
    if pre_e is not None and pre_e >= energy[0]:  # noise larger than the decode phase: say so, keep the row
        why.append("prefill window measured at least as much energy as the whole pass: the decode split "
                   "is within the noise (more repeats or a longer window)")
    return Measured(
        scores=list(scores), energy_j=energy[0], energy_ci_low=energy[1], energy_ci_high=energy[2],
        active_energy_j=max(0.0, energy[0] - idle_w * duration[0]), duration_s=duration[0],
        duration_ci_low=duration[1], duration_ci_high=duration[2], cpu_time_s=cpu[0],
        passes_per_window=passes_per_window, repeats=repeats, deterministic=deterministic,
        energy_method=energy_method, is_estimate=is_estimate, components_j=comps,
        unstable_reason="; ".join(dict.fromkeys(why)) or None, peak_rss_mb=peak_rss,
        prefill_energy_j=pre_e, prefill_duration_s=pre_d, windows=tuple(windows),
        prefill_windows=tuple(prefill_windows), idle_w=idle_w)


def _pooled(windows: Sequence[Window], n: int, attr: str) -> tuple[float, float, float]:
    """``n`` items' total (pooled per-item rate x n) and the t-interval of the windows' per-item rates x n."""
    total = sum(getattr(w, attr) for w in windows) / sum(w.items for w in windows) * n
    mean, lo, hi = mean_ci([getattr(w, attr) / w.items for w in windows])
    half_lo, half_hi = (mean - lo) * n, (hi - mean) * n
    return total, max(0.0, min(total, total - half_lo)), max(total, total + half_hi)


def combine(parts: Sequence[Measured]) -> Measured:
    """One measurement of the union of several measurements' items (rounds, or a stored cell extended).

    Windows pool; each part's items keep their scores; the provenance must agree.
    """
    if not parts:
        raise ValueError("nothing to combine")
    if len(parts) == 1:
        return parts[0]
    methods = {p.energy_method for p in parts}
    if len(methods) != 1:
        raise ValueError(f"cannot pool energy measured by different methods: {sorted(methods)}")
    dets = [p.deterministic for p in parts if p.deterministic is not None]
    rss = [p.peak_rss_mb for p in parts if p.peak_rss_mb is not None]
    return summarise([s for p in parts for s in p.scores], [w for p in parts for w in p.windows],
                     [w for p in parts for w in p.prefill_windows], repeats=parts[0].repeats,
                     deterministic=all(dets) if dets else None, energy_method=parts[0].energy_method,
                     is_estimate=any(p.is_estimate for p in parts),
                     unstable=[p.unstable_reason for p in parts if p.unstable_reason], idle_w=parts[-1].idle_w,
                     peak_rss=max(rss) if rss else None, passes_per_window=max(p.passes_per_window for p in parts))


def _prefill_window(meter: Meter, name: str, scoring: ScoringPass, ran: Sequence[tuple[int, int]]
                    ) -> tuple[Window, str | None]:
    """The prefill of the chunks a window ran, repeated to the meter's minimum window; why it is unstable."""
    assert scoring.prefill_items is not None
    meter.begin(name)
    t_start, items = time.perf_counter(), 0
    while True:
        for a, b in ran:
            scoring.prefill_items(a, b)
            items += b - a
        if time.perf_counter() - t_start >= meter.min_window_s:
            break
    m = meter.end(name)
    return (Window(items, m.energy_j or 0.0, m.duration_s, m.cpu_time_s, dict(m.components_j)),
            None if m.is_stable else (m.unstable_reason or "unstable"))


#: A decode phase shorter than this share of the pass is inside the noise of subtracting two separately
#: measured windows (the pass and the prefill-only pass): no decode tokens/s is given for it.
MIN_DECODE_SHARE = 0.05


def phase_figures(m: Measured, generated_tokens: int | None, n_items: int, batches: int) -> dict[str, Any]:
    """Prefill/decode split and speed of a generation cell, per pass (empty without a prefill window).

    decode = total - prefill (clamped at 0); J per generated token (the whole query's energy over its tokens,
    prefill included); time to first token = prefill duration per batch (a batch's prompts get their first
    token together). Decode tokens/s and decode J per token (optimum-benchmark's decode efficiency: the
    decode phase alone) count the tokens after each answer's first (the prefill pass makes that one), and
    are not given for a decode phase inside the noise of the subtraction.

    >>> m = Measured([], 10.0, 9.0, 11.0, 10.0, 2.0, 1.9, 2.1, 2.0, 1, 1, None, "estimate", True,
    ...              prefill_energy_j=2.0, prefill_duration_s=0.5)
    >>> f = phase_figures(m, 40, 10, 2)
    >>> f["decode_energy_j"], f["prefill_energy_share"], f["energy_j_per_token"], f["time_to_first_token_s"]
    (8.0, 0.2, 0.25, 0.25)
    >>> f["decode_tokens_per_s"], f["decode_energy_j_per_token"]
    (20.0, 0.26666666666666666)
    >>> from dataclasses import replace
    >>> noisy = replace(m, prefill_duration_s=1.97)  # decode 0.03 s of 2.0: noise, not a speed
    >>> g = phase_figures(noisy, 40, 10, 2)
    >>> g["decode_tokens_per_s"] is None, g["decode_energy_j_per_token"] is None
    (True, True)
    """
    if m.prefill_energy_j is None or m.prefill_duration_s is None:
        return {}
    decode_e = max(0.0, m.energy_j - m.prefill_energy_j)
    decode_s = max(0.0, m.duration_s - m.prefill_duration_s)
    after_first = max(0, (generated_tokens or 0) - n_items)
    resolved = bool(m.duration_s) and decode_s >= MIN_DECODE_SHARE * m.duration_s and after_first > 0
    return {"prefill_energy_j": m.prefill_energy_j, "decode_energy_j": decode_e,
            "prefill_energy_share": m.prefill_energy_j / m.energy_j if m.energy_j else None,
            "prefill_duration_s": m.prefill_duration_s, "decode_duration_s": decode_s,
            "energy_j_per_token": m.energy_j / generated_tokens if generated_tokens else None,
            "time_to_first_token_s": m.prefill_duration_s / batches if batches else None,
            "decode_tokens_per_s": after_first / decode_s if resolved else None,
            "decode_energy_j_per_token": decode_e / after_first if resolved else None}


def idle_power_w(meter: Meter, seconds: float) -> float:
    """Mean power over ``seconds`` of doing nothing (the idle baseline); 0 when not measured."""
    if seconds <= 0:
        return 0.0
    meter.begin("idle")
    time.sleep(seconds)
    return meter.end("idle").power_w or 0.0


def energy_per_item(energy_j: float, n_items: int, n_correct: int) -> dict[str, Any]:
    """Per item, per 1,000 items and per correct answer (None with no correct answer).

    >>> energy_per_item(2.0, 4, 1)
    {'energy_j_per_item': 0.5, 'energy_j_per_1k': 500.0, 'energy_j_per_correct': 2.0}
    """
    return {"energy_j_per_item": energy_j / n_items, "energy_j_per_1k": energy_j / n_items * 1000,
            "energy_j_per_correct": (energy_j / n_correct) if n_correct else None}


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter of this process (so the peak is the cell's own)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def proc_field_mb(field_name: str, path: str = "/proc/self/status") -> float | None:
    """A ``Name:  N kB`` field of a /proc file (the process status, /proc/meminfo) in MiB, or None."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float | None:
    """Peak resident set size since the last reset, in MB (Linux), else None."""
    return proc_field_mb("VmHWM")


def rss_mb() -> float | None:
    """Resident set size now, in MB (Linux), else None."""
    return proc_field_mb("VmRSS")
