"""The estimate meter: process CPU time x power per busy core (+ RAM power), labelled an estimate.

Used when no energy counter is readable (no RAPL, no NVML), as on machines without access to
power counters. The figure is ``energy_j = cpu_time_s * watts_per_core + duration_s * ram_w``
where ``ram_w = peak_rss_gb * ram_w_per_gb``; ``peak_rss_gb`` is the window's peak resident memory less
what the run holds for other loaded models meanwhile (``held_rss_mb``, an adaptive run's pool).
``watts_per_core`` comes from :data:`CPU_WATTS_PER_CORE` by CPU model (TDP divided by physical cores, a
common first-order approximation for a fully busy core), else :data:`DEFAULT_WATTS_PER_CORE`; both can be overridden.
It counts only this process's CPU time: it ignores GPU energy, other processes and idle draw.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from typing import Any

from evaluator.meters.base import Measurement, Meter, peak_rss_mb

#: Watts per busy physical core, TDP / cores, for common CPU families (regex on the model name).
#: Sources: vendor TDP figures (Intel ARK, AMD product pages), divided by the core count.
CPU_WATTS_PER_CORE: tuple[tuple[str, float, str], ...] = (
    (r"Xeon.*Platinum 84\d\d", 350 / 56, "Xeon Platinum 8480+: 350 W TDP / 56 cores"),
    (r"Xeon.*Platinum 83\d\d", 270 / 40, "Xeon Platinum 8380: 270 W TDP / 40 cores"),
    (r"Xeon.*Platinum 81\d\d|Xeon.*Platinum 82\d\d", 205 / 28, "Xeon Platinum 8280: 205 W / 28 cores"),
    (r"Xeon", 7.0, "generic Xeon: ~7 W per core (TDP/cores of recent parts)"),
    (r"EPYC 9\d\d4", 360 / 96, "EPYC 9654: 360 W TDP / 96 cores"),
    (r"EPYC 7\d\d3", 280 / 64, "EPYC 7763: 280 W TDP / 64 cores"),
    (r"EPYC", 4.5, "generic EPYC: ~4.5 W per core"),
    (r"Apple M\d", 5.0, "Apple M-series performance core: ~5 W"),
    (r"Core\(TM\) i[3579]|Core i[3579]|Core\(TM\) Ultra", 125 / 8, "desktop Core: 125 W / 8 P-cores"),
    (r"Ryzen", 105 / 8, "Ryzen desktop: 105 W / 8 cores"),
)
#: Used when the CPU model matches nothing above.
DEFAULT_WATTS_PER_CORE = 7.5
#: RAM power per GB of resident memory (codecarbon's figure: 3 W per 8 GB).
DEFAULT_RAM_W_PER_GB = 0.375


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def watts_per_core_for(model: str) -> tuple[float, str]:
    """Look up the power per busy core for a CPU model name; return (watts, source)."""
    for pattern, watts, source in CPU_WATTS_PER_CORE:
        if re.search(pattern, model):
            return watts, source
    return DEFAULT_WATTS_PER_CORE, f"default {DEFAULT_WATTS_PER_CORE} W per core (CPU not in table)"


@dataclass(frozen=True)
class EstimateConfig:
    """Overrides for the estimate; None means 'look up / default'."""

    watts_per_core: float | None = None
    ram_w_per_gb: float = DEFAULT_RAM_W_PER_GB


class EstimateMeter(Meter):
    """CPU-time x watts-per-core estimate. Always available; always labelled an estimate."""

    name = "estimate"

    def __init__(self, config: EstimateConfig | None = None) -> None:
        super().__init__()
        config = config or EstimateConfig()
        self.cpu = cpu_model()
        if config.watts_per_core is not None:
            if config.watts_per_core <= 0:
                raise ValueError("watts_per_core must be positive")
            self.watts_per_core, self.source = config.watts_per_core, "set by the user"
        else:
            self.watts_per_core, self.source = watts_per_core_for(self.cpu)
        self.ram_w_per_gb = config.ram_w_per_gb

    def _begin(self) -> Any:
        return None

    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        cpu_j = cpu_time_s * self.watts_per_core
        ram_j = duration_s * (max(0.0, peak_rss_mb() - self.held_rss_mb) / 1024.0) * self.ram_w_per_gb
        return Measurement(
            window=window,
            energy_j=cpu_j + ram_j,
            duration_s=duration_s,
            cpu_time_s=cpu_time_s,
            energy_method="estimate",
            is_estimate=True,
            components_j={"cpu": cpu_j, "dram": ram_j},
            details={"watts_per_core": self.watts_per_core, "ram_w_per_gb": self.ram_w_per_gb,
                     "held_rss_mb": self.held_rss_mb},
        )

    def context(self) -> dict[str, Any]:
        """Describe how the estimate is formed."""
        return {
            "meter": self.name,
            "is_estimate": True,
            "cpu_model": self.cpu,
            "watts_per_core": self.watts_per_core,
            "watts_per_core_source": self.source,
            "ram_w_per_gb": self.ram_w_per_gb,
            "formula": "cpu_time_s * watts_per_core + duration_s * (peak_rss_gb - held_rss_gb) * ram_w_per_gb",
        }
