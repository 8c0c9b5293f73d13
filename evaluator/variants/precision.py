"""Precision variants: fp32, bf16, fp16 (weights and activations cast at load time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluator.variants.base import ModelInfo, Variant


@dataclass(frozen=True)
class _Cast(Variant):
    dtype_name: ClassVar[str] = "float32"
    group: ClassVar[str] = "precision"
    at_load: ClassVar[bool] = True

    def load_kwargs(self, info: ModelInfo) -> dict[str, Any]:
        import torch

        return {"dtype": getattr(torch, self.dtype_name)}

    def record(self) -> dict[str, Any]:
        return {**super().record(), "dtype": self.dtype_name}


@dataclass(frozen=True)
class FP32(_Cast):
    """Full precision (float32): the reference every other variant is compared with."""

    name: ClassVar[str] = "fp32"
    description: ClassVar[str] = "float32 weights and activations (the reference)"
    dtype_name: ClassVar[str] = "float32"


@dataclass(frozen=True)
class BF16(_Cast):
    """bfloat16: fast on CPUs with AVX512-BF16/AMX and on recent GPUs."""

    name: ClassVar[str] = "bf16"
    description: ClassVar[str] = "bfloat16 weights and activations (fast on AMX/AVX512-BF16 CPUs and GPUs)"
    dtype_name: ClassVar[str] = "bfloat16"
    cpu_needs: ClassVar[tuple[str, ...]] = ("avx512_bf16", "amx_bf16")
    fallback_why: ClassVar[str] = ("no native bfloat16 matmul without AVX512_BF16 or AMX "
                                   "(4.5-7x slower than fp32 measured)")
    fallback_slowdown: ClassVar[float] = 5.0


@dataclass(frozen=True)
class FP16(_Cast):
    """float16: half precision; fast on GPUs, little gain on most CPUs."""

    name: ClassVar[str] = "fp16"
    description: ClassVar[str] = "float16 weights and activations (fast on GPUs; little gain on CPUs)"
    dtype_name: ClassVar[str] = "float16"
    cpu_needs: ClassVar[tuple[str, ...]] = ("avx512_fp16", "amx_fp16")
    fallback_why: ClassVar[str] = ("no native float16 matmul without AVX512_FP16 or AMX-FP16 "
                                   "(4.3-4.6x slower than fp32 measured)")
    fallback_slowdown: ClassVar[float] = 4.5
