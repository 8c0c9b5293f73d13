"""The measurement protocol of one cell: warm-up, measured windows, repeats, idle subtraction, intervals.

The scoring pass is prepared outside the window (tokenised, probe trained) and warmed up on one batch.
Then ``repeats`` windows are measured, each repeating the pass until the meter's minimum window is
reached. Accuracy comes from the first pass; later passes must agree (``deterministic``). Energy per
pass is the mean over windows with a 95 % interval; active energy subtracts the idle baseline times
the duration. Every NaN/inf score fails the cell instead of being scored.
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


def measure(meter: Meter, window: str, scoring: ScoringPass, repeats: int, idle_w: float) -> Measured:
    """Warm up, then measure ``repeats`` windows of whole passes; per-pass figures."""
    scoring.warm()
    reset_peak_rss()
    energies, durations, cpu_times, passes = [], [], [], 1
    comp_sum: dict[str, float] = {}
    unstable: list[str] = []
    first, deterministic, last_m = None, True, None
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
        elif [s.pred for s in scores] != [s.pred for s in first]:
            deterministic = False
        energies.append((m.energy_j or 0.0) / n)
        durations.append(m.duration_s / n)
        cpu_times.append(m.cpu_time_s / n)
        for k, v in dict(m.components_j).items():  # per pass, averaged over the repeats below
            comp_sum[k] = comp_sum.get(k, 0.0) + v / n
        if not m.is_stable:
            unstable.append(m.unstable_reason or f"repeat {r} unstable")
    assert first is not None and last_m is not None
    e_mean, e_lo, e_hi = mean_ci(energies)
    d_mean, d_lo, d_hi = mean_ci(durations)
    return Measured(
        scores=first, energy_j=e_mean, energy_ci_low=e_lo, energy_ci_high=e_hi,
        active_energy_j=max(0.0, e_mean - idle_w * d_mean), duration_s=d_mean, duration_ci_low=d_lo,
        duration_ci_high=d_hi, cpu_time_s=statistics.fmean(cpu_times), passes_per_window=passes, repeats=repeats,
        deterministic=deterministic if repeats > 1 else None, energy_method=last_m.energy_method,
        is_estimate=last_m.is_estimate, components_j={k: v / repeats for k, v in comp_sum.items()},
        unstable_reason="; ".join(dict.fromkeys(unstable)) or None, peak_rss_mb=peak_rss_mb())


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
