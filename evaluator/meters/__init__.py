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


__all__ = ["METERS", "Measurement", "Meter", "MeterOptions", "create_meter"]
