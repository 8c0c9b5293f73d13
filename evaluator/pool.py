"""Loaded models kept between adaptive rounds, within the memory the machine has free.

An adaptive run (evaluator/runner.py) visits every (model, variant) still racing once a round. Loading a
model again each round costs its load (and, for a pruned or quantized variant, the transform) and a new
warm-up batch; on the six-model grid of docs/benchmarks.md §12 the loads alone were 218 s of a 950 s
replayed race. The pool keeps what a round loaded, and before each new load frees the models used longest
ago until the machine's free memory covers what that load is expected to need:

- a load's **need** is the growth of the process's peak resident memory it caused, measured the first time
  the (model, variant) loads in the run (``record_need``); before that it is unknown, and a first load asks
  for ``unknown_share`` of the machine's memory (by default half);
- **free memory** is the kernel's MemAvailable (Linux); where it cannot be read the pool keeps one model,
  as the runner did before it (the model a round ends with, which begins the next);
- the model freed first is the one **used longest ago**: rounds alternate their order, so that is the one
  the next round reaches last;
- a model whose points have all stopped is freed at once (``drop``).

On an accelerator the memory that matters is the device's, which this module does not read: the runner
builds the pool with ``max_models=1`` there.

Pure bookkeeping over two callables (free and total memory) so that tests can drive it; it never imports
a backend.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from evaluator.measure import proc_field_mb

#: Why ``release`` frees a model.
END = "the run is over"
#: Free memory a load leaves untouched beyond its expected need (MiB).
RESERVE_MB = 1024.0


def meminfo_mb(field_name: str, path: str = "/proc/meminfo") -> float | None:
    """A /proc/meminfo field in MiB (``MemAvailable``, ``MemTotal``), or None where it cannot be read."""
    return proc_field_mb(field_name, path)


def available_mb() -> float | None:
    """Memory the kernel could hand out now without swapping (MiB), or None."""
    return meminfo_mb("MemAvailable")


def total_mb() -> float | None:
    """The machine's memory (MiB), or None."""
    return meminfo_mb("MemTotal")


@dataclass
class Loaded:
    """A loaded model and what the run learnt loading it."""

    key: Hashable
    model: Any
    load_s: float
    footprint: dict[str, Any] = field(default_factory=dict)
    #: kinds of pass (score, generate) this loaded model has run: no warm-up batch again
    warmed: set[str] = field(default_factory=set)
    #: how much the process's resident memory grew with this load (MiB; 0 unknown)
    resident_mb: float = 0.0

    def close(self) -> None:
        """Close the model and free its memory."""
        self.model.close()
        self.model = None


class ModelPool:
    """Loaded models not in use, most recently used last; see the module docstring."""

    def __init__(self, max_models: int | None = None, free: Callable[[], float | None] | None = None,
                 total: Callable[[], float | None] | None = None, reserve_mb: float = RESERVE_MB,
                 unknown_share: float = 0.5, on_free: Callable[[Loaded, str], None] | None = None) -> None:
        if max_models is not None and max_models < 1:
            raise ValueError("max_models must be at least 1 (or None: as memory allows)")
        self.max_models = max_models
        self._free = free or (lambda: available_mb())
        self._total = total or (lambda: total_mb())
        self.reserve_mb, self.unknown_share = reserve_mb, unknown_share
        self._held: OrderedDict[Hashable, Loaded] = OrderedDict()
        self._need: dict[Hashable, float] = {}
        self._on_free = on_free or (lambda _e, _why: None)
        #: how many models the pool handed back instead of a new load, and how many it freed for room
        self.hits = 0
        self.evictions = 0

    # -------------------------------------------------------------------------------- what it holds
    @property
    def keys(self) -> list[Hashable]:
        """The models held, used longest ago first."""
        return list(self._held)

    def held_mb(self) -> float:
        """Resident memory of the models held (not in use), as each load grew it (MiB)."""
        return sum(e.resident_mb for e in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def take(self, key: Hashable) -> Loaded | None:
        """The held model for ``key`` (no longer held: the caller uses it, then ``put``s it back), or None."""
        entry = self._held.pop(key, None)
        if entry is not None:
            self.hits += 1
        return entry

    def put(self, entry: Loaded) -> None:
        """Hold a model the caller is done with, as the most recently used."""
        if entry.key in self._held:  # (never two copies of one model)
            self._close(self._held.pop(entry.key), "replaced")
        self._held[entry.key] = entry
        if self.max_models is not None:
            while len(self._held) > self.max_models:
                self._close(self._held.popitem(last=False)[1], "the pool holds at most "
                            f"{self.max_models} model{'s' if self.max_models != 1 else ''}")

    def drop(self, key: Hashable, why: str = "no longer needed") -> bool:
        """Free ``key``'s model if held (all its points have stopped); whether it was held."""
        entry = self._held.pop(key, None)
        if entry is None:
            return False
        self._close(entry, why)
        return True

    def release(self) -> None:
        """Free every model held (the end of the run)."""
        while self._held:
            self._close(self._held.popitem(last=False)[1], END)

    # ------------------------------------------------------------------------------------ memory
    def record_need(self, key: Hashable, mb: float | None) -> None:
        """What loading ``key`` took: the growth of the peak resident memory its load caused (MiB)."""
        if mb is not None and mb >= 0:
            self._need[key] = max(mb, self._need.get(key, 0.0))

    def need_mb(self, key: Hashable) -> float | None:
        """Memory a load of ``key`` is expected to take (MiB): measured, else a share of the machine's."""
        if key in self._need:
            return self._need[key]
        total = self._total()
        return None if total is None else total * self.unknown_share

    def make_room(self, key: Hashable) -> int:
        """Before loading ``key``: free the models used longest ago until free memory covers its need.

        Returns how many were freed. Where free memory cannot be read, frees all but none: the pool then
        holds at most one model (the one that begins the next round), freed before any load.
        """
        freed = 0
        while self._held:
            free, need = self._free(), self.need_mb(key)
            if free is not None and need is not None and free >= need + self.reserve_mb:
                break
            what = ("free memory unknown" if free is None or need is None else
                    f"{free:.0f} MiB free, loading {key} needs about {need:.0f} + {self.reserve_mb:.0f} MiB")
            self._close(self._held.popitem(last=False)[1], what)
            self.evictions += 1
            freed += 1
        return freed

    def _close(self, entry: Loaded, why: str) -> None:
        self._on_free(entry, why)
        entry.close()
        gc.collect()
