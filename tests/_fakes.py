"""Fakes at the hardware edge, shared by the meter tests: NVML backends that subclass the real one."""

from __future__ import annotations

from typing import Any

from evaluator.errors import FrugalError
from evaluator.meters.nvml import NvmlBackend


class FakeNvml(NvmlBackend):
    """GPUs with settable energy counters (None: no counter) and constant power draws."""

    def __init__(self, energy_mj: list[int | None], power_mw: list[int] | None = None) -> None:
        super().__init__()
        self.energy_mj = list(energy_mj)
        self.power = list(power_mw or [0] * len(energy_mj))
        self.inits = 0

    def init(self) -> None:
        self.inits += 1

    def shutdown(self) -> None:
        self.inits -= 1

    def device_count(self) -> int:
        return len(self.energy_mj)

    def handle(self, index: int) -> Any:
        return index

    def name(self, handle: Any) -> str:
        return f"Fake GPU {handle}"

    def total_energy_mj(self, handle: Any) -> int | None:
        return self.energy_mj[handle]

    def power_mw(self, handle: Any) -> int:
        return self.power[handle]


class NoDriver(NvmlBackend):
    """NVML that fails to load, as on a machine without an NVIDIA driver."""

    def init(self) -> None:
        raise FrugalError("NVML: NVML Shared Library Not Found (no NVIDIA driver?)")
