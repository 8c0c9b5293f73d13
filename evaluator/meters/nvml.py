"""The NVML meter: NVIDIA GPU energy from the driver's counters.

Per visible GPU it reads ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver
loaded; Volta and newer, updated about every 100 ms) at both window edges. A GPU without that
counter is sampled instead: a background thread reads ``nvmlDeviceGetPowerUsage`` (milliwatts)
every ``sample_interval_s`` and integrates it (trapezoid rule). ``details["modes"]`` says which
method each GPU used.

Visible GPUs follow ``CUDA_VISIBLE_DEVICES`` when it lists integer indices (taken as NVML
indices, which match CUDA's order under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``); components are named
``gpu0``, ``gpu1``... in that order, so ``gpu0`` is ``cuda:0``. Other forms (UUIDs, MIG) fall
back to every GPU, and ``context()`` says so. pynvml (package ``nvidia-ml-py``) is imported on
first use.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from evaluator.errors import FrugalError
from evaluator.meters.base import Measurement, Meter, counter_measurement

COUNTER, SAMPLING = "counter", "power-sampling"


class NvmlBackend:
    """The only code that calls pynvml; tests subclass it with a fake."""

    def __init__(self) -> None:
        """Hold no NVML state until :meth:`init`."""
        self._nvml: Any = None

    def init(self) -> None:
        """Load NVML; raise FrugalError saying why it is not usable."""
        try:
            import pynvml
        except ImportError as exc:
            raise FrugalError("NVML: pynvml not installed (pip install nvidia-ml-py)") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise FrugalError(f"NVML: {exc} (no NVIDIA driver?)") from exc
        self._nvml = pynvml

    def shutdown(self) -> None:
        """Release NVML (reference-counted by the driver)."""
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def device_count(self) -> int:
        """Count the GPUs NVML sees (all of them, whatever CUDA_VISIBLE_DEVICES says)."""
        return int(self._nvml.nvmlDeviceGetCount())

    def handle(self, index: int) -> Any:
        """Device handle for an NVML index."""
        return self._nvml.nvmlDeviceGetHandleByIndex(index)

    def name(self, handle: Any) -> str:
        """Product name of a device."""
        name = self._nvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)

    def total_energy_mj(self, handle: Any) -> int | None:
        """Energy counter in millijoules, or None when the device has no such counter."""
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except nvml.NVMLError as exc:
            if exc.value in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                return None
            raise

    def power_mw(self, handle: Any) -> int:
        """Read the current power draw in milliwatts."""
        return int(self._nvml.nvmlDeviceGetPowerUsage(handle))


def visible_indices(count: int, env: str | None) -> tuple[list[int], str]:
    """NVML indices visible to CUDA under ``CUDA_VISIBLE_DEVICES``, and how they were chosen."""
    if env is None:
        return list(range(count)), "all GPUs (CUDA_VISIBLE_DEVICES unset)"
    indices: list[int] = []
    for part in (p.strip() for p in env.split(",")):
        if not part.lstrip("-").isdigit():
            if indices or part == "":
                break  # CUDA stops at the first invalid entry
            return list(range(count)), f"all GPUs (CUDA_VISIBLE_DEVICES={env!r} is not indices)"
        index = int(part)
        if index < 0 or index >= count:
            break
        indices.append(index)
    return indices, f"CUDA_VISIBLE_DEVICES={env!r}"


@dataclass(frozen=True)
class Gpu:
    """One measured GPU."""

    key: str  # "gpu0" = cuda:0
    nvml_index: int
    name: str
    handle: Any
    mode: str  # COUNTER or SAMPLING


class NvmlMeter(Meter):
    """GPU energy from NVML counters (or integrated power samples where there is no counter)."""

    name = "nvml"
    is_counter = True
    min_window_s = 1.0

    def __init__(self, backend: NvmlBackend | None = None, sample_interval_s: float = 0.1) -> None:
        """Open NVML and find the visible GPUs; raise FrugalError when there is none."""
        super().__init__()
        if sample_interval_s <= 0:
            raise FrugalError("sample_interval_s must be positive")
        self.backend = backend or NvmlBackend()
        self.sample_interval_s = sample_interval_s
        self.backend.init()
        indices, self.visibility = visible_indices(self.backend.device_count(),
                                                   os.environ.get("CUDA_VISIBLE_DEVICES"))
        if not indices:
            self.backend.shutdown()
            raise FrugalError(f"NVML: no NVIDIA GPU visible ({self.visibility})")
        self.gpus: list[Gpu] = []
        for pos, index in enumerate(indices):
            handle = self.backend.handle(index)
            mode = COUNTER if self.backend.total_energy_mj(handle) is not None else SAMPLING
            self.gpus.append(Gpu(f"gpu{pos}", index, self.backend.name(handle), handle, mode))
        self._lock = threading.Lock()
        self._sampled = [g for g in self.gpus if g.mode == SAMPLING]
        self._cum_j = {g.key: 0.0 for g in self._sampled}
        self._last: dict[str, tuple[float, float]] = {}  # key -> (time_s, power_w)
        self._samples = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = 0  # windows open (counted here: AutoMeter calls _begin/_end directly)

    @classmethod
    def from_options(cls, options: Any) -> NvmlMeter:
        """Build from MeterOptions (``sample_interval_s``)."""
        return cls(sample_interval_s=getattr(options, "sample_interval_s", 0.1))

    @classmethod
    def available(cls, backend: NvmlBackend | None = None) -> tuple[bool, str]:
        """Whether NVML sees a visible GPU, and why not when it does not."""
        backend = backend or NvmlBackend()
        try:
            backend.init()
        except FrugalError as exc:
            return False, str(exc).removeprefix("NVML: ")
        try:
            indices, note = visible_indices(backend.device_count(),
                                            os.environ.get("CUDA_VISIBLE_DEVICES"))
        finally:
            backend.shutdown()
        return (True, "ok") if indices else (False, f"no NVIDIA GPU visible ({note})")

    def _sample(self) -> tuple[dict[str, float], int]:
        """Take one power sample of each sampled GPU and integrate since the last one."""
        with self._lock:
            for gpu in self._sampled:
                now_s, power_w = time.perf_counter(), self.backend.power_mw(gpu.handle) / 1000.0
                if gpu.key in self._last:
                    then_s, then_w = self._last[gpu.key]
                    self._cum_j[gpu.key] += (then_w + power_w) / 2.0 * (now_s - then_s)
                self._last[gpu.key] = (now_s, power_w)
            self._samples += 1
            return dict(self._cum_j), self._samples

    def _sampler_loop(self) -> None:
        while not self._stop.wait(self.sample_interval_s):
            self._sample()

    def _read(self) -> dict[str, Any]:
        counters = {g.key: self.backend.total_energy_mj(g.handle) for g in self.gpus
                    if g.mode == COUNTER}
        sampled = self._sample() if self._sampled else ({}, 0)
        return {"mj": counters, "sampled_j": sampled[0], "samples": sampled[1]}

    def _begin(self) -> Any:
        state = self._read()
        self._active += 1
        if self._sampled and (self._sampler is None or not self._sampler.is_alive()):
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sampler_loop, name="nvml-power-sampler",
                                             daemon=True)
            self._sampler.start()
        return state

    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        end = self._read()
        self._active -= 1
        if self._active <= 0:
            self._stop_sampler()
        components_j: dict[str, float] = {}
        for gpu in self.gpus:
            if gpu.mode == COUNTER:
                components_j[gpu.key] = (end["mj"][gpu.key] - state["mj"][gpu.key]) / 1000.0
            else:
                components_j[gpu.key] = end["sampled_j"][gpu.key] - state["sampled_j"][gpu.key]
        return counter_measurement(
            window, "nvml", components_j, duration_s, cpu_time_s, self.min_window_s,
            {"modes": {g.key: g.mode for g in self.gpus},
             "power_samples": end["samples"] - state["samples"] if self._sampled else 0,
             "sample_interval_s": self.sample_interval_s if self._sampled else None})

    def context(self) -> dict[str, Any]:
        """GPUs measured, how, and which were visible."""
        return {
            "meter": self.name,
            "is_estimate": False,
            "gpus": {g.key: {"nvml_index": g.nvml_index, "name": g.name, "mode": g.mode}
                     for g in self.gpus},
            "visibility": self.visibility,
            "sample_interval_s": self.sample_interval_s,
            "scope": "whole GPU (all processes on it)",
        }

    def _stop_sampler(self) -> None:
        self._stop.set()
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.join(timeout=1.0 + self.sample_interval_s)

    def close(self) -> None:
        """Stop the sampler and release NVML."""
        self._stop_sampler()
        self.backend.shutdown()
