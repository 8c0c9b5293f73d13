"""Variant registry: one dict of built-ins; compositions are names joined by '+'.

``resolve_variant("prune-structured-25+int8-dynamic")`` returns a :class:`Composite`.
Unknown names raise an error listing close matches; invalid combinations are refused with a reason.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evaluator.errors import FrugalError, close_matches
from evaluator.variants.base import ModelInfo, Variant

#: name -> "module:Class". Heavy imports (torchao, bitsandbytes) happen inside the classes, on use.
VARIANTS: dict[str, str] = {
    "fp32": "evaluator.variants.precision:FP32",
    "bf16": "evaluator.variants.precision:BF16",
    "fp16": "evaluator.variants.precision:FP16",
    "int8-dynamic": "evaluator.variants.quant:Int8Dynamic",
    "int8-weight-only": "evaluator.variants.quant:Int8WeightOnly",
    "bnb-int8": "evaluator.variants.quant:BnbInt8",
    "bnb-nf4": "evaluator.variants.quant:BnbNF4",
    "prune-magnitude-30": "evaluator.variants.prune:PruneMagnitude30",
    "prune-magnitude-50": "evaluator.variants.prune:PruneMagnitude50",
    "prune-structured-25": "evaluator.variants.prune:PruneStructured25",
    "prune-structured-50": "evaluator.variants.prune:PruneStructured50",
    "gguf-q4": "evaluator.variants.runtimes:GgufQ4",
    "gguf-q8_0": "evaluator.variants.runtimes:GgufQ8",
    "gguf-f16": "evaluator.variants.runtimes:GgufF16",
    "ort-fp32": "evaluator.variants.runtimes:OrtFP32",
    "ort-int8": "evaluator.variants.runtimes:OrtInt8",
    "ort-int4": "evaluator.variants.runtimes:OrtInt4",
    "ov-fp32": "evaluator.variants.runtimes:OvFP32",
    "ov-int8": "evaluator.variants.runtimes:OvInt8",
    "ov-int4": "evaluator.variants.runtimes:OvInt4",
    "fake": "evaluator.variants.fake:Fake",
    "fake-lite": "evaluator.variants.fake:FakeLite",
}

#: Order in which ``apply`` steps run: pruning reshapes float weights, so it precedes quantization.
APPLY_ORDER = {"precision": 0, "pruning": 1, "quantization": 2}


def variant_class(name: str) -> type[Variant]:
    """The class registered under ``name``."""
    if name not in VARIANTS:
        raise FrugalError(f"unknown variant {name!r}.{close_matches(name, tuple(VARIANTS))}")
    mod, cls = VARIANTS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


@dataclass(frozen=True)
class Composite:
    """Variants applied in order: load-time ones merge their kwargs, then each ``apply`` runs."""

    name: str
    parts: tuple[Variant, ...]

    @property
    def backend(self) -> str:
        """The backend (runtime) every part applies to: the first one they all share."""
        common = [b for b in self.parts[0].backends if all(b in p.backends for p in self.parts)]
        return common[0]

    @property
    def description(self) -> str:
        """Descriptions of the parts, joined."""
        return " + ".join(p.description for p in self.parts)

    def fallback(self, device: str, flags: Iterable[str]) -> str | None:
        """Why this composition runs on a fallback kernel on ``device`` with CPU ``flags`` (parts joined), or None."""
        why = [w for p in self.parts if (w := p.fallback(device, flags))]
        return "; ".join(why) or None

    def check(self, info: ModelInfo) -> None:
        """Every part must apply."""
        for p in self.parts:
            p.check(info)

    def load_kwargs(self, info: ModelInfo) -> dict[str, Any]:
        """Merged load-time settings."""
        out: dict[str, Any] = {}
        for p in self.parts:
            out.update(p.load_kwargs(info))
        return out

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Post-load transforms: precision, then pruning, then quantization (``APPLY_ORDER``)."""
        for p in sorted(self.parts, key=lambda p: APPLY_ORDER.get(p.group, len(APPLY_ORDER))):
            model = p.apply(model, info)
        return model

    def record(self) -> dict[str, Any]:
        """Recorded parameters of every part."""
        return {"name": self.name, "parts": [p.record() for p in self.parts]}


def resolve_variant(spec: str) -> Composite:
    """Parse 'a+b+c' into a validated composition."""
    names = [s.strip() for s in spec.split("+") if s.strip()]
    if not names:
        raise FrugalError("empty variant name")
    parts = tuple(variant_class(n)() for n in names)
    if not [b for b in parts[0].backends if all(b in p.backends for p in parts)]:
        on = ", ".join(f"{p.name} ({'/'.join(p.backends)})" for p in parts)
        raise FrugalError(f"variant {spec!r}: its parts run on different backends: {on}")
    groups = [p.group for p in parts]
    for g in ("precision", "quantization", "pruning"):
        if groups.count(g) > 1:
            raise FrugalError(f"variant {spec!r}: at most one {g} variant in a composition")
    q = next((p for p in parts if p.group == "quantization"), None)
    if q is not None and "precision" in groups:
        prec = next(p for p in parts if p.group == "precision")
        if not getattr(q, "composes_with_precision", False):
            alone = "combine it with pruning only" if getattr(q, "quantizes_after_load", False) else \
                "it composes with no other variant"
            raise FrugalError(f"variant {spec!r}: {q.name} fixes its own precision; {alone}")
        why = getattr(q, "incompatible_precisions", {}).get(prec.name)
        if why:
            raise FrugalError(f"variant {spec!r}: {q.name} with {prec.name} is refused: {why}")
    if q is not None and "pruning" in groups:
        if not getattr(q, "quantizes_after_load", False):
            raise FrugalError(f"variant {spec!r}: {q.name} quantizes while loading, so the model it hands "
                              f"over can no longer be pruned; combine pruning with int8-dynamic or "
                              f"int8-weight-only instead")
        # Pruning runs in apply(); the quantization must wait for it instead of happening at load.
        parts = tuple(dataclasses.replace(p, post_load=True) if p is q else p for p in parts)
    loads = [p for p in parts if p.at_load]
    if len([p for p in loads if p.load_kwargs.__qualname__ != Variant.load_kwargs.__qualname__]) > 2:
        raise FrugalError(f"variant {spec!r}: too many load-time variants")
    return Composite("+".join(names), parts)


def list_variants(include_test: bool = False) -> list[tuple[str, str, str, str]]:
    """(name, group, description, backend) for every registered variant (the fake backend's only if asked)."""
    rows = []
    for name in VARIANTS:
        cls = variant_class(name)
        if cls.backends == ("fake",) and not include_test:
            continue
        rows.append((name, cls.group, cls.description, cls.backends[0]))
    return rows


__all__ = ["APPLY_ORDER", "VARIANTS", "Composite", "ModelInfo", "Variant", "list_variants", "resolve_variant"]
