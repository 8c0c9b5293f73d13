"""The codecarbon meter: energy as codecarbon's ``OfflineEmissionsTracker`` reports it.

One tracker per window, started in ``begin`` and stopped in ``end``. Offline only (the online
``EmissionsTracker`` reaches for the network), nothing written to disk (no emissions.csv), and
codecarbon's log quietened to errors. codecarbon needs a country for its own carbon figure, which
Frugal does not use (carbon is derived in :mod:`evaluator.carbon`); it defaults to ``"USA"``.

codecarbon measures the CPU with RAPL / Power Gadget / Windows EMI / powermetrics where it can,
and otherwise falls back to a model (``cpu_load``: TDP x load, or a ``constant``); its RAM figure
is always a model. ``is_estimate`` is therefore True unless the CPU was measured and no modelled
RAM energy was added; ``details`` names each mode.
"""

from __future__ import annotations

import logging
from typing import Any

from evaluator.errors import FrugalError
from evaluator.meters.base import Measurement, Meter

DEFAULT_COUNTRY_ISO3 = "USA"
#: codecarbon CPU modes that read a hardware counter; every other mode is a model.
MEASURED_CPU_MODES = frozenset({"intel_rapl", "intel_power_gadget", "windows_emi",
                                "powermetrics", "raspberry"})
J_PER_KWH = 3.6e6


def hardware_modes(tracker: Any) -> dict[str, str]:
    """How codecarbon tracks each part ("cpu", "gpu", "ram"), from its started tracker."""
    modes: dict[str, str] = {}
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "CPU":
            modes["cpu"] = str(getattr(hw, "_mode", "unknown"))
        elif kind == "AppleSiliconChip":
            modes["gpu" if "GPU" in str(getattr(hw, "chip_part", "")) else "cpu"] = "powermetrics"
        elif kind == "Raspberry":
            modes["ram" if "RAM" in str(getattr(hw, "chip_part", "")) else "cpu"] = "raspberry"
        elif kind == "RAM":
            modes["ram"] = "model"
        elif kind == "GPU":
            modes["gpu"] = "nvml/amdsmi"
    modes.setdefault("cpu", "unknown")
    return modes


class CodecarbonMeter(Meter):
    """Wraps codecarbon's OfflineEmissionsTracker; labelled an estimate when codecarbon modelled."""

    name = "codecarbon"

    def __init__(self, country_iso_code: str = DEFAULT_COUNTRY_ISO3,
                 measure_power_secs: float = 1.0, tracking_mode: str = "machine") -> None:
        """Import codecarbon and detect the hardware; ``tracking_mode`` is codecarbon's."""
        super().__init__()
        if tracking_mode not in ("machine", "process"):
            raise FrugalError(f"codecarbon tracking_mode must be 'machine' or 'process', "
                              f"not {tracking_mode!r}")
        self.country_iso_code = country_iso_code.upper()
        self.measure_power_secs = measure_power_secs
        self.tracking_mode = tracking_mode
        self._modes: dict[str, str] = {}
        quiet = logging.getLogger("codecarbon")
        quiet.setLevel(logging.ERROR)  # before the import, which already logs
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            raise FrugalError("codecarbon is not installed (pip install codecarbon)") from exc
        quiet.setLevel(logging.ERROR)
        self._tracker_cls = OfflineEmissionsTracker
        # Detect the hardware now (codecarbon caches it per process), not inside the first window.
        probe = self._new_tracker()
        try:
            probe.get_detected_hardware()
        except Exception as exc:  # codecarbon swallows errors in __init__ and fails later
            raise FrugalError(f"codecarbon could not start: {exc!r}") from exc
        self._modes = hardware_modes(probe)

    def _new_tracker(self) -> Any:
        return self._tracker_cls(
            country_iso_code=self.country_iso_code,
            measure_power_secs=self.measure_power_secs,
            tracking_mode=self.tracking_mode,
            output_methods=[],  # the non-deprecated save_to_file=False: no emissions.csv
            log_level="error",
            allow_multiple_runs=True,  # no global lock file
            pue=1.0,
        )

    @classmethod
    def from_options(cls, options: Any) -> CodecarbonMeter:
        """Build from MeterOptions (an alpha-3 ``country`` if the options carry one)."""
        country = getattr(options, "country", None)
        if not (isinstance(country, str) and len(country) == 3 and country.isalpha()):
            country = DEFAULT_COUNTRY_ISO3
        return cls(country_iso_code=country)

    def _begin(self) -> Any:
        tracker = self._new_tracker()
        tracker.start()
        return tracker

    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        tracker = state
        tracker.stop()
        self._modes = hardware_modes(tracker)
        data = getattr(tracker, "final_emissions_data", None)
        details: dict[str, Any] = {"modes": dict(self._modes),
                                   "country_iso_code": self.country_iso_code}
        if data is None:  # codecarbon swallows its own exceptions; say so instead of guessing
            return Measurement(window=window, energy_j=None, duration_s=duration_s,
                               cpu_time_s=cpu_time_s, energy_method="codecarbon", is_estimate=True,
                               is_stable=False, unstable_reason="codecarbon returned no data",
                               details=details)
        components_j = {"cpu": data.cpu_energy * J_PER_KWH, "gpu": data.gpu_energy * J_PER_KWH,
                        "dram": data.ram_energy * J_PER_KWH}
        cpu_measured = self._modes["cpu"] in MEASURED_CPU_MODES
        ram_modelled = self._modes.get("ram") == "model" and components_j["dram"] > 0
        details["estimated_parts"] = [p for p, est in (("cpu", not cpu_measured),
                                                       ("dram", ram_modelled)) if est]
        return Measurement(
            window=window,
            energy_j=data.energy_consumed * J_PER_KWH,
            duration_s=duration_s,
            cpu_time_s=cpu_time_s,
            energy_method="codecarbon",
            is_estimate=not cpu_measured or ram_modelled,
            components_j=components_j,
            details=details,
        )

    def context(self) -> dict[str, Any]:
        """Describe codecarbon's version, tracking modes and settings."""
        import codecarbon

        return {
            "meter": self.name,
            "codecarbon_version": codecarbon.__version__,
            "modes": dict(self._modes),
            "tracking_mode": self.tracking_mode,
            "measure_power_secs": self.measure_power_secs,
            "country_iso_code": self.country_iso_code,
        }
