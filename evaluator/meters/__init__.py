"""Meter registry: one dict of built-ins, imported lazily on first use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from evaluator.errors import FrugalError, close_matches
from evaluator.meters.base import Measurement, Meter

#: name -> ("module:Class", one-line description)
METERS: dict[str, tuple[str, str]] = {
    "estimate": ("evaluator.meters.estimate:EstimateMeter",
                 "process CPU time x watts per core (+ RAM); an estimate, always available"),
    "auto": ("evaluator.meters.auto:AutoMeter",
             "NVML and/or RAPL counters where readable, else the estimate (reasons recorded)"),
    "nvml": ("evaluator.meters.nvml:NvmlMeter",
             "NVIDIA GPU energy counter (power sampling where a GPU has none)"),
    "rapl": ("evaluator.meters.rapl:RaplMeter",
             "Linux powercap RAPL: CPU packages + DRAM; may need read access (root since 5.10)"),
    "codecarbon": ("evaluator.meters.codecarbon_meter:CodecarbonMeter",
                   "codecarbon OfflineEmissionsTracker; an estimate when it falls back to TDP"),
}


#: energy_method -> how a figure of that method is described (axis titles, hovers, badges). A meter's
#: method is its name; "auto" combines the counters it finds ("nvml+rapl") or falls back to "estimate".
METHOD_LABELS: dict[str, str] = {
    "estimate": "estimate: CPU time x W/core",
    "codecarbon": "estimate: codecarbon",
    "rapl": "measured: rapl",
    "nvml": "measured: nvml",
    "nvml+rapl": "measured: nvml+rapl",
}
#: Every energy_method a Measurement may carry ("none": a null measurement).
METHODS = (*METHOD_LABELS, "none")


def method_label(method: str, is_estimate: bool = True) -> str:
    """How ``method`` is described; an unknown method says whether it is an estimate."""
    return METHOD_LABELS.get(method, f"{'estimate' if is_estimate else 'measured'}: {method}")


def meter_choices() -> str:
    """'auto | estimate | ...': the registered meter names, for help texts."""
    return " | ".join(["auto", *(m for m in METERS if m != "auto")])


@dataclass(frozen=True)
class MeterOptions:
    """Settings a meter may use; each meter reads what it needs."""

    watts_per_core: float | None = None
    ram_w_per_gb: float = 0.375
    rapl_root: str | None = None
    sample_interval_s: float = 0.1
    country: str | None = None


def create_meter(name: str, options: MeterOptions | None = None) -> Meter:
    """Build the meter registered under ``name``."""
    options = options or MeterOptions()
    if name not in METERS:
        raise FrugalError(f"unknown meter {name!r}.{close_matches(name, tuple(METERS))}")
    target, _ = METERS[name]
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if hasattr(cls, "from_options"):
        return cls.from_options(options)
    if name == "estimate":
        from evaluator.meters.estimate import EstimateConfig

        return cls(EstimateConfig(options.watts_per_core, options.ram_w_per_gb))
    return cls()


__all__ = ["METERS", "METHODS", "METHOD_LABELS", "Measurement", "Meter", "MeterOptions", "create_meter",
           "meter_choices", "method_label"]
