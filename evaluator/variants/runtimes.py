"""Variants of the deployment runtimes: a weight format that a backend builds (once) and serves.

Each names one backend and one weight format; the backend does the work (llama.cpp, ONNX Runtime and
OpenVINO load their own files, not a torch module), so ``apply`` is the identity here and the backend
reads ``weights`` from the variant. They compose with nothing (one runtime, one format per cell).

* ``gguf-q4``: the GGUF file the model ships in, as it is (its real type, e.g. Q4_1 or Q4_K_M, is recorded);
  ``gguf-q8_0`` / ``gguf-f16``: made once from the fp32 weights with llama.cpp's own quantize.
* ``ort-fp32`` / ``ort-int8`` / ``ort-int4``: an ONNX export of the fp32 weights; int8 = ONNX Runtime dynamic
  quantization (int8 weights, int8 activations per batch), int4 = MatMulNBits block-wise weights (causal LMs).
* ``ov-fp32`` / ``ov-int8`` / ``ov-int4``: OpenVINO IR of the same export; int8/int4 = NNCF weight
  compression (activations stay float).

Exports and quantized files live in the derived cache (:func:`evaluator.models.derived`), keyed by the
model's weight fingerprint, with their sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluator.variants.base import ModelInfo, Variant, refuse


@dataclass(frozen=True)
class _RuntimeVariant(Variant):
    """A weight format served by one deployment runtime."""

    group: ClassVar[str] = "quantization"
    at_load: ClassVar[bool] = True
    composes_with_precision: ClassVar[bool] = False
    quantizes_after_load: ClassVar[bool] = False
    #: The weight format the backend builds or loads ("packaged", "q8_0", "f16", "fp32", "int8", "int4").
    weights: ClassVar[str] = "fp32"
    kinds: ClassVar[tuple[str, ...]] = ("causal-lm", "encoder")
    runtime: ClassVar[str] = ""

    def check(self, info: ModelInfo) -> None:
        """Refuse a model kind this format does not apply to."""
        if info.kind not in self.kinds:
            raise refuse(info, f"{self.name} applies to {' and '.join(self.kinds)} models only")

    def record(self) -> dict[str, Any]:
        """Runtime and weight format (the backend adds the file's type and sha256 to the cell)."""
        return {**super().record(), "runtime": self.runtime, "weights": self.weights}


# ------------------------------------------------------------------------------------------- llama.cpp
@dataclass(frozen=True)
class GgufQ4(_RuntimeVariant):
    """The packaged GGUF file as it is (4-bit: Q4_1, Q4_K_M, ...)."""

    name: ClassVar[str] = "gguf-q4"
    description: ClassVar[str] = "the model's packaged 4-bit GGUF file as it is (type recorded, e.g. Q4_1)"
    backends: ClassVar[tuple[str, ...]] = ("llamacpp",)
    weights: ClassVar[str] = "packaged"
    kinds: ClassVar[tuple[str, ...]] = ("causal-lm",)
    runtime: ClassVar[str] = "llama.cpp"


@dataclass(frozen=True)
class GgufQ8(GgufQ4):
    """8-bit GGUF (Q8_0) made once from the fp32 weights by llama.cpp's quantize."""

    name: ClassVar[str] = "gguf-q8_0"
    description: ClassVar[str] = "GGUF Q8_0 made once from the fp32 weights with llama.cpp's quantize"
    weights: ClassVar[str] = "q8_0"


@dataclass(frozen=True)
class GgufF16(GgufQ4):
    """16-bit float GGUF made once from the fp32 weights by llama.cpp."""

    name: ClassVar[str] = "gguf-f16"
    description: ClassVar[str] = "GGUF F16 made once from the fp32 weights with llama.cpp's quantize"
    group: ClassVar[str] = "precision"
    weights: ClassVar[str] = "f16"


# ---------------------------------------------------------------------------------------- ONNX Runtime
@dataclass(frozen=True)
class OrtFP32(_RuntimeVariant):
    """ONNX export of the fp32 weights, run by ONNX Runtime."""

    name: ClassVar[str] = "ort-fp32"
    description: ClassVar[str] = "ONNX Runtime, fp32 ONNX export of the weights"
    group: ClassVar[str] = "precision"
    backends: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    runtime: ClassVar[str] = "onnxruntime"


@dataclass(frozen=True)
class OrtInt8(OrtFP32):
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized per batch."""

    name: ClassVar[str] = "ort-int8"
    description: ClassVar[str] = "ONNX Runtime dynamic int8 (int8 weights and activations; faster with VNNI)"
    group: ClassVar[str] = "quantization"
    weights: ClassVar[str] = "int8"


@dataclass(frozen=True)
class OrtInt4(OrtFP32):
    """ONNX Runtime block-wise 4-bit weights (MatMulNBits), causal LMs."""

    name: ClassVar[str] = "ort-int4"
    description: ClassVar[str] = "ONNX Runtime int4 weights (MatMulNBits, block 32), causal LMs"
    group: ClassVar[str] = "quantization"
    weights: ClassVar[str] = "int4"
    kinds: ClassVar[tuple[str, ...]] = ("causal-lm",)


# -------------------------------------------------------------------------------------------- OpenVINO
@dataclass(frozen=True)
class OvFP32(_RuntimeVariant):
    """OpenVINO IR of the fp32 weights, run by OpenVINO on CPU."""

    name: ClassVar[str] = "ov-fp32"
    description: ClassVar[str] = "OpenVINO, fp32 IR (CPU plugin; inference precision pinned to f32)"
    group: ClassVar[str] = "precision"
    backends: ClassVar[tuple[str, ...]] = ("openvino",)
    runtime: ClassVar[str] = "openvino"


@dataclass(frozen=True)
class OvInt8(OvFP32):
    """NNCF int8 weight compression (asymmetric, per channel); float activations."""

    name: ClassVar[str] = "ov-int8"
    description: ClassVar[str] = "OpenVINO + NNCF int8 weight compression (activations float)"
    group: ClassVar[str] = "quantization"
    weights: ClassVar[str] = "int8"


@dataclass(frozen=True)
class OvInt4(OvFP32):
    """NNCF int4 weight compression (symmetric, group 64); causal LMs."""

    name: ClassVar[str] = "ov-int4"
    description: ClassVar[str] = "OpenVINO + NNCF int4 weight compression, causal LMs (int8 speed on AVX2 CPUs)"
    group: ClassVar[str] = "quantization"
    weights: ClassVar[str] = "int4"
    kinds: ClassVar[tuple[str, ...]] = ("causal-lm",)


__all__ = ["GgufF16", "GgufQ4", "GgufQ8", "OrtFP32", "OrtInt4", "OrtInt8", "OvFP32", "OvInt4", "OvInt8"]
