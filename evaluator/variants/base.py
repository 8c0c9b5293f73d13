"""The Variant seam: a named transform of a model, as load-time settings and/or a post-load step.

A variant belongs to a backend (``backends``: the runtimes it applies to, ``torch`` for all of today's),
and has at most three parts: ``load_kwargs`` (merged into ``from_pretrained``: dtype,
quantization config, device map), ``apply`` (a transform of the loaded model, e.g. pruning) and
``check`` (refuse a model it cannot apply to, with a reason). Parameters are recorded with results.

A variant also declares the hardware its fast kernel needs (``cpu_needs``: any one of these instruction
sets, named as :data:`evaluator.environment.CPU_FLAGS` records them; ``cpu_fallback``: no fast CPU kernel
at all). :meth:`Variant.fallback` says, for a device and the CPU's flags, why a cell would measure a
fallback kernel rather than the method (METHODOLOGY "Kernels"), or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evaluator.errors import VariantNotApplicable


@dataclass(frozen=True)
class ModelInfo:
    """What a variant may need to know about the model it transforms."""

    name: str
    kind: str  # "encoder" | "causal-lm"
    device: str  # "cpu" | "cuda"


@dataclass(frozen=True)
class Variant:
    """Base class. Subclasses set ``name``/``description``/``group`` and override what they need."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    #: "precision" | "quantization" | "pruning"; at most one variant per group in a composition,
    #: except that pruning composes with precision or quantization.
    group: ClassVar[str] = "precision"
    #: True when the transform happens at load time (so it must come first in a composition).
    at_load: ClassVar[bool] = False
    #: Backends (runtimes) this variant applies to; a composition runs on the first one all parts share.
    backends: ClassVar[tuple[str, ...]] = ("torch",)
    #: CPU instruction sets (any one) its fast kernel needs; empty: none beyond the runtime's own baseline.
    cpu_needs: ClassVar[tuple[str, ...]] = ()
    #: True when no CPU has a fast kernel for it (bitsandbytes on CPU): every CPU cell is a fallback.
    cpu_fallback: ClassVar[bool] = False
    #: What runs instead, and the slowdown against fp32 measured on AVX2-only CPUs (docs/benchmarks.md §4).
    fallback_why: ClassVar[str] = ""
    fallback_slowdown: ClassVar[float] = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def fallback(self, device: str, flags: Iterable[str]) -> str | None:
        """Why this variant runs on a fallback kernel on ``device`` with CPU ``flags``; None: its fast path."""
        if device != "cpu":
            return None
        if self.cpu_fallback or (self.cpu_needs and not set(self.cpu_needs) & set(flags)):
            return f"{self.name}: {self.fallback_why}"
        return None

    def check(self, info: ModelInfo) -> None:
        """Raise VariantNotApplicable when this variant cannot apply to the model."""

    def load_kwargs(self, info: ModelInfo) -> dict[str, Any]:
        """Extra ``from_pretrained`` keyword arguments."""
        return {}

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Transform a loaded model; return it (possibly a new object)."""
        return model

    def record(self) -> dict[str, Any]:
        """What is stored with each result."""
        return {"name": self.name, "group": self.group, **self.params}


def refuse(info: ModelInfo, why: str) -> VariantNotApplicable:
    """A uniform refusal message."""
    return VariantNotApplicable(f"variant does not apply to {info.name} ({info.kind}, {info.device}): {why}")
