"""The measurement protocol of one cell: warm-up, measured windows, repeats, idle subtraction, intervals.

The scoring pass is prepared outside the window (tokenised, probe trained) and warmed up on one batch.
Then ``repeats`` windows are measured, each repeating the pass until the meter's minimum window is
reached. Accuracy comes from the first pass; later passes must agree (``deterministic``). Energy per
pass is the mean over windows with a 95 % interval; active energy subtracts the idle baseline times
the duration. Every NaN/inf score fails the cell instead of being scored.

A scoring pass with a ``prefill`` (generation) gets a second window after each measured one, as
optimum-benchmark's energy_star scenario does: the same prompts with max_new_tokens=1, repeated until the
meter's minimum window too. Decode = total - prefill (:func:`phase_figures`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evaluator.failures import check_finite
from evaluator.stats import mean_ci

if TYPE_CHECKING:
    from evaluator.meters import Meter
    from evaluator.tasks.base import ItemScore, ScoringPass


@dataclass(frozen=True)
class Measured:
    """Energy and time per scoring pass of one cell, with its provenance, and the first pass's scores."""

    scores: list[ItemScore]
    energy_j: float
    energy_ci_low: float
    energy_ci_high: float
    active_energy_j: float
    duration_s: float
    duration_ci_low: float
    duration_ci_high: float
    cpu_time_s: float
    passes_per_window: int
    repeats: int
    deterministic: bool | None
    energy_method: str
    is_estimate: bool
    components_j: dict[str, float] = field(default_factory=dict)
    unstable_reason: str | None = None
    peak_rss_mb: float | None = None
    #: Per prefill pass (generation only): energy and duration, mean over the repeats.
    prefill_energy_j: float | None = None
    prefill_duration_s: float | None = None


def measure(meter: Meter, window: str, scoring: ScoringPass, repeats: int, idle_w: float) -> Measured:
    """Warm up, then measure ``repeats`` windows of whole passes; per-pass figures."""
    scoring.warm()
    reset_peak_rss()
    energies, durations, cpu_times, passes = [], [], [], 1
    comp_sum: dict[str, float] = {}
    unstable: list[str] = []
    first, deterministic, last_m = None, True, None
    pre_e: list[float] = []
    pre_d: list[float] = []
    for r in range(repeats):
        meter.begin(f"{window}:{r}")
        t_start = time.perf_counter()
        n = 0
        while True:
            scores = scoring.run()
            check_finite([x for s in scores for x in s.scores], "scores")  # never score NaN/inf silently
            n += 1
            if time.perf_counter() - t_start >= meter.min_window_s:
                break
        m = meter.end(f"{window}:{r}")
        last_m, passes = m, n
        if first is None:
            first = scores
        elif [(s.pred, s.output) for s in scores] != [(s.pred, s.output) for s in first]:
            deterministic = False
        energies.append((m.energy_j or 0.0) / n)
        durations.append(m.duration_s / n)
        cpu_times.append(m.cpu_time_s / n)
        for k, v in dict(m.components_j).items():  # per pass, averaged over the repeats below
            comp_sum[k] = comp_sum.get(k, 0.0) + v / n
        if not m.is_stable:
            unstable.append(m.unstable_reason or f"repeat {r} unstable")
        if scoring.prefill is not None:
            e, d, why = _prefill_window(meter, f"{window}:prefill:{r}", scoring.prefill)
            pre_e.append(e)
            pre_d.append(d)
            if why:
                unstable.append(f"prefill: {why}")
    assert first is not None and last_m is not None
    e_mean, e_lo, e_hi = mean_ci(energies)
    d_mean, d_lo, d_hi = mean_ci(durations)
    if pre_e and statistics.fmean(pre_e) >= e_mean:  # noise larger than the decode phase: say so, keep the row
        unstable.append("prefill window measured at least as much energy as the whole pass: the decode split "
                        "is within the noise (more repeats or a longer window)")
    return Measured(
        scores=first, energy_j=e_mean, energy_ci_low=e_lo, energy_ci_high=e_hi,
        active_energy_j=max(0.0, e_mean - idle_w * d_mean), duration_s=d_mean, duration_ci_low=d_lo,
        duration_ci_high=d_hi, cpu_time_s=statistics.fmean(cpu_times), passes_per_window=passes, repeats=repeats,
        deterministic=deterministic if repeats > 1 else None, energy_method=last_m.energy_method,
        is_estimate=last_m.is_estimate, components_j={k: v / repeats for k, v in comp_sum.items()},
        unstable_reason="; ".join(dict.fromkeys(unstable)) or None, peak_rss_mb=peak_rss_mb(),
        prefill_energy_j=statistics.fmean(pre_e) if pre_e else None,
        prefill_duration_s=statistics.fmean(pre_d) if pre_d else None)


def _prefill_window(meter: Meter, name: str, prefill: Any) -> tuple[float, float, str | None]:
    """One window of whole prefill passes: energy and duration per pass, and why it is unstable if it is."""
    meter.begin(name)
    t_start, n = time.perf_counter(), 0
    while True:
        prefill()
        n += 1
        if time.perf_counter() - t_start >= meter.min_window_s:
            break
    m = meter.end(name)
    return (m.energy_j or 0.0) / n, m.duration_s / n, None if m.is_stable else (m.unstable_reason or "unstable")


def phase_figures(m: Measured, generated_tokens: int | None, n_items: int, batches: int) -> dict[str, Any]:
    """Prefill/decode split and speed of a generation cell, per pass (empty without a prefill window).

    decode = total - prefill (clamped at 0); J per generated token; time to first token = prefill duration
    per batch (a batch's prompts get their first token together); decode tokens/s counts the tokens after
    each answer's first (the prefill pass makes that one).

    >>> m = Measured([], 10.0, 9.0, 11.0, 10.0, 2.0, 1.9, 2.1, 2.0, 1, 1, None, "estimate", True,
    ...              prefill_energy_j=2.0, prefill_duration_s=0.5)
    >>> f = phase_figures(m, 40, 10, 2)
    >>> f["decode_energy_j"], f["prefill_energy_share"], f["energy_j_per_token"], f["time_to_first_token_s"]
    (8.0, 0.2, 0.25, 0.25)
    >>> f["decode_tokens_per_s"]
    20.0
    """
    if m.prefill_energy_j is None or m.prefill_duration_s is None:
        return {}
    decode_e = max(0.0, m.energy_j - m.prefill_energy_j)
    decode_s = max(0.0, m.duration_s - m.prefill_duration_s)
    after_first = max(0, (generated_tokens or 0) - n_items)
    return {"prefill_energy_j": m.prefill_energy_j, "decode_energy_j": decode_e,
            "prefill_energy_share": m.prefill_energy_j / m.energy_j if m.energy_j else None,
            "prefill_duration_s": m.prefill_duration_s, "decode_duration_s": decode_s,
            "energy_j_per_token": m.energy_j / generated_tokens if generated_tokens else None,
            "time_to_first_token_s": m.prefill_duration_s / batches if batches else None,
            "decode_tokens_per_s": after_first / decode_s if decode_s > 0 else None}


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


def peak_rss_mb() -> float | None:
    """Peak resident set size since the last reset, in MB (Linux), else None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
