"""The auto meter: the best counters this machine offers, else a labelled estimate.

Probes, in this fixed order, NVML (GPU) then RAPL (CPU packages + DRAM) and measures with every
one that is usable, reporting ``gpu0``..., ``cpu`` and ``dram`` as separate components
(``energy_method`` "nvml+rapl", "nvml" or "rapl"). When neither is usable it behaves exactly as
the estimate meter (``energy_method`` "estimate", ``is_estimate`` True). ``context()`` records why
each counter was or was not used, e.g. ``"rapl: /sys/class/powercap absent (...)"``.
"""

from __future__ import annotations

from typing import Any

from evaluator.errors import FrugalError
from evaluator.meters.base import Measurement, Meter
from evaluator.meters.estimate import EstimateConfig, EstimateMeter
from evaluator.meters.nvml import NvmlBackend, NvmlMeter
from evaluator.meters.rapl import RaplMeter


class AutoMeter(Meter):
    """NVML and/or RAPL where usable; otherwise the estimate, with the reasons recorded."""

    name = "auto"

    def __init__(self, rapl_root: str | None = None, estimate: EstimateConfig | None = None,
                 sample_interval_s: float = 0.1, nvml_backend: NvmlBackend | None = None) -> None:
        """Probe NVML then RAPL; fall back to the estimate (configured by ``estimate``)."""
        super().__init__()
        self.reasons: dict[str, str] = {}
        self.parts: list[Meter] = []
        probes = (
            ("nvml", lambda: NvmlMeter.available(nvml_backend),
             lambda: NvmlMeter(nvml_backend, sample_interval_s)),
            ("rapl", lambda: RaplMeter.available(rapl_root), lambda: RaplMeter(rapl_root)),
        )
        for label, probe, build in probes:
            ok, why = probe()
            if ok:
                try:
                    self.parts.append(build())
                    why = "used"
                except FrugalError as exc:
                    why = str(exc)
            self.reasons[label] = why
        self.fallback = None if self.parts else EstimateMeter(estimate)
        self.method = "+".join(p.name for p in self.parts) or "estimate"
        self.is_counter = bool(self.parts)  # type: ignore[misc]
        self.min_window_s = max((p.min_window_s for p in self.parts), default=0.0)  # type: ignore[misc]

    @classmethod
    def from_options(cls, options: Any) -> AutoMeter:
        """Build from MeterOptions (rapl_root, sample_interval_s, estimate settings)."""
        return cls(rapl_root=options.rapl_root,
                   estimate=EstimateConfig(options.watts_per_core, options.ram_w_per_gb),
                   sample_interval_s=options.sample_interval_s)

    def hold_rss(self, mb: float) -> None:
        """Set the held memory here and on the meters it is made of (the estimate fallback among them)."""
        super().hold_rss(mb)
        for part in [*self.parts, *([self.fallback] if self.fallback is not None else [])]:
            part.hold_rss(mb)

    def _begin(self) -> Any:
        if self.fallback is not None:
            return self.fallback._begin()
        return [part._begin() for part in self.parts]

    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        if self.fallback is not None:
            return self.fallback._end(window, state, duration_s, cpu_time_s)
        results = [part._end(window, s, duration_s, cpu_time_s)
                   for part, s in zip(self.parts, state, strict=True)]
        components_j = {k: v for m in results for k, v in m.components_j.items()}
        unstable = [f"{m.energy_method}: {m.unstable_reason}" for m in results if not m.is_stable]
        return Measurement(
            window=window,
            energy_j=sum(m.energy_j or 0.0 for m in results),
            duration_s=duration_s,
            cpu_time_s=cpu_time_s,
            energy_method=self.method,
            is_estimate=any(m.is_estimate for m in results),
            components_j=components_j,
            is_stable=not unstable,
            unstable_reason="; ".join(unstable) or None,
            details={m.energy_method: dict(m.details) for m in results},
        )

    def context(self) -> dict[str, Any]:
        """Which counters were used, why the others were not, and each part's own context."""
        inner = [self.fallback] if self.fallback is not None else self.parts
        return {
            "meter": self.name,
            "energy_method": self.method,
            "is_estimate": self.fallback is not None,
            "probes": dict(self.reasons),
            "not_used": [f"{k}: {v}" for k, v in self.reasons.items() if v != "used"],
            "parts": {m.name: m.context() for m in inner},
        }

    def close(self) -> None:
        """Close every part."""
        for part in self.parts:
            part.close()
