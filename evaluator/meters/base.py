"""The Meter seam: energy in named windows.

A meter has two required methods, ``begin(window)`` and ``end(window) -> Measurement``.
Every Measurement says how its energy was obtained (``energy_method``) and whether it is an
estimate; a meter that cannot measure returns a labelled estimate or a null measurement,
never a silent guess.
"""

from __future__ import annotations

import abc
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Measurement:
    """Energy and time of one named window. Units are in the field names."""

    window: str
    energy_j: float | None
    duration_s: float
    cpu_time_s: float
    energy_method: str
    is_estimate: bool
    components_j: Mapping[str, float] = field(default_factory=dict)
    is_stable: bool = True
    unstable_reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def power_w(self) -> float | None:
        """Mean power over the window, or None when energy is unknown."""
        if self.energy_j is None or self.duration_s <= 0:
            return None
        return self.energy_j / self.duration_s


def counter_measurement(window: str, method: str, components_j: Mapping[str, float], duration_s: float,
                        cpu_time_s: float, min_window_s: float, details: Mapping[str, Any]) -> Measurement:
    """The Measurement of a hardware counter (NVML, RAPL): the sum of its components.

    It is marked unstable when the window was shorter than the counter resolves.
    """
    short = duration_s < min_window_s
    return Measurement(
        window=window, energy_j=sum(components_j.values()), duration_s=duration_s, cpu_time_s=cpu_time_s,
        energy_method=method, is_estimate=False, components_j=dict(components_j), is_stable=not short,
        unstable_reason=(f"window {duration_s:.3f} s is shorter than the {min_window_s} s a {method.upper()} "
                         "reading needs; repeat the work to lengthen it") if short else None,
        details=details)


def process_cpu_time_s() -> float:
    """User + system CPU time of this process and its threads, in seconds."""
    return time.process_time()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Meter(abc.ABC):
    """Measures energy in named windows; subclasses implement ``_begin`` and ``_end``.

    ``begin``/``end`` synchronise the accelerator at both edges and record wall and CPU time;
    the subclass only reads its counter.
    """

    name: ClassVar[str] = "base"
    #: True when readings come from a hardware counter (window should last >= min_window_s).
    is_counter: ClassVar[bool] = False
    #: Shortest window the counter resolves reliably, in seconds.
    min_window_s: ClassVar[float] = 0.0

    def __init__(self) -> None:
        self._open: dict[str, tuple[float, float, Any]] = {}
        #: Resident memory (MB) the run holds for other loaded models while this meter measures a cell (an
        #: adaptive run's pool, evaluator/pool.py): not the cell's, so a meter that models RAM power from
        #: this process's resident memory (the estimate) leaves it out. Counters measure what they measure.
        self.held_rss_mb = 0.0

    def hold_rss(self, mb: float) -> None:
        """Set :attr:`held_rss_mb` for the windows that follow (0: none held)."""
        self.held_rss_mb = max(0.0, float(mb))

    def begin(self, window: str) -> None:
        """Open a named window."""
        if window in self._open:
            raise RuntimeError(f"meter window {window!r} is already open")
        _synchronize()
        self._open[window] = (time.perf_counter(), process_cpu_time_s(), self._begin())

    def end(self, window: str) -> Measurement:
        """Close a named window and return its Measurement."""
        if window not in self._open:
            raise RuntimeError(f"meter window {window!r} was never opened")
        _synchronize()
        t0, c0, state = self._open.pop(window)
        duration_s = time.perf_counter() - t0
        cpu_s = process_cpu_time_s() - c0
        return self._end(window, state, duration_s, cpu_s)

    def context(self) -> dict[str, Any]:
        """What a reader needs to interpret this meter's figures (stored with the run)."""
        return {"meter": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, handles)."""

    @abc.abstractmethod
    def _begin(self) -> Any:
        """Read the counter at the start of a window; return any state needed at the end."""

    @abc.abstractmethod
    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        """Read the counter at the end of a window and build the Measurement."""


def _synchronize() -> None:
    """Wait for queued GPU work so the window covers it (no-op without CUDA)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
