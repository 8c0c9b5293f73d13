"""Quantization variants: torchao int8 (dynamic / weight-only) and bitsandbytes int8 / nf4.

torchao variants quantize every ``nn.Linear`` except the LM head (output embeddings), at load time
through transformers' ``TorchAoConfig``; in a composition with pruning they quantize after loading
(``torchao.quantize_``), once the pruning step has reshaped the float model. Both paths give the
same weights. bitsandbytes variants quantize while loading (``BitsAndBytesConfig``, ``device_map`` =
the device) and fix their own compute dtype, so they compose with nothing.

Speed depends on the CPU. int8-dynamic runs ``torch._int_mm``, fast only with AVX512-VNNI/AMX
(mpnet 1.7x faster than fp32 there); on an AVX2-only CPU it measured about 20x slower than an fp32
matmul. bitsandbytes runs on CPU but more slowly than fp32. Accuracy: MiniLM embeddings keep cosine
0.997 (int8-dynamic), 0.9996 (int8-weight-only), 0.999 (bnb-int8), 0.97 (bnb-nf4) to fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluator.variants.base import ModelInfo, Variant, refuse

_DEVICES = ("cpu", "cuda")


def _output_embeddings(model: Any) -> Any:
    get = getattr(model, "get_output_embeddings", None)
    return get() if callable(get) else None


def count_linears(model: Any) -> tuple[int, int]:
    """(nn.Linear layers, those whose weight is quantized: torchao subclass or bitsandbytes)."""
    import torch

    total = quantized = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            total += 1
            w = mod.weight
            if hasattr(w, "tensor_data_names") or type(w).__name__ in ("Int8Params", "Params4bit"):
                quantized += 1
    return total, quantized


@dataclass(frozen=True)
class _TorchAoInt8(Variant):
    """torchao int8 quantization of Linear weights (LM head excluded)."""

    group: ClassVar[str] = "quantization"
    at_load: ClassVar[bool] = True
    #: bf16 + int8 measured fine (MiniLM cos 0.997); fp16 + int8 gives NaN logits on SmolLM2.
    composes_with_precision: ClassVar[bool] = True
    incompatible_precisions: ClassVar[dict[str, str]] = {
        "fp16": "torchao int8 with float16 activations overflows (NaN logits on SmolLM2); use bf16"}
    #: Can quantize after loading, so a pruning step may run first.
    quantizes_after_load: ClassVar[bool] = True
    config_name: ClassVar[str] = ""
    #: True in a composition with pruning: quantize in ``apply`` (after pruning), not while loading.
    post_load: bool = False

    def _config(self) -> Any:
        import torchao.quantization as tq

        return getattr(tq, self.config_name)()

    def check(self, info: ModelInfo) -> None:
        """Refuse when torchao cannot build the config, or a device other than cpu/cuda."""
        if info.device not in _DEVICES:
            raise refuse(info, f"{self.name} supports devices {', '.join(_DEVICES)}")
        try:
            self._config()
        except Exception as exc:  # ImportError, or a torchao too old for the config
            raise refuse(info, f"torchao {self.config_name} is unavailable ({type(exc).__name__}: {exc})") from None

    def load_kwargs(self, info: ModelInfo) -> dict[str, Any]:
        """``TorchAoConfig`` for ``from_pretrained`` (nothing when quantizing after load)."""
        if self.post_load:
            return {}
        from transformers import TorchAoConfig

        return {"quantization_config": TorchAoConfig(self._config())}

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Quantize now when ``post_load``; then check that Linear layers really are int8."""
        import torch

        if self.post_load:
            from torchao.quantization import quantize_

            head = _output_embeddings(model)
            quantize_(model, self._config(),
                      filter_fn=lambda m, _fqn: isinstance(m, torch.nn.Linear) and m is not head)
        total, quantized = count_linears(model)
        if quantized == 0:
            raise refuse(info, f"{self.name} found no nn.Linear layer to quantize ({total} Linear layers)")
        self.params.update(linear_layers=total, quantized_layers=quantized)
        return model

    def record(self) -> dict[str, Any]:
        """Config name, where it was applied, layer counts."""
        return {**super().record(), "library": "torchao", "config": self.config_name,
                "weight_dtype": "int8", "lm_head": "not quantized",
                "applied": "after load (torchao.quantize_)" if self.post_load else "at load (TorchAoConfig)"}


@dataclass(frozen=True)
class Int8Dynamic(_TorchAoInt8):
    """int8 weights and dynamically quantized int8 activations (torchao)."""

    name: ClassVar[str] = "int8-dynamic"
    description: ClassVar[str] = ("int8 weights + dynamic int8 activations (torchao "
                                  "Int8DynamicActivationInt8WeightConfig); LM head kept in float")
    config_name: ClassVar[str] = "Int8DynamicActivationInt8WeightConfig"
    cpu_needs: ClassVar[tuple[str, ...]] = ("avx512_vnni", "avx_vnni", "amx_int8")
    fallback_why: ClassVar[str] = "no fast int8 kernel without VNNI or AMX (19-29x slower than fp32 measured)"
    fallback_slowdown: ClassVar[float] = 24.0


@dataclass(frozen=True)
class Int8WeightOnly(_TorchAoInt8):
    """int8 weights, float activations (torchao): saves memory, computes in float."""

    name: ClassVar[str] = "int8-weight-only"
    description: ClassVar[str] = ("int8 weights, float activations (torchao Int8WeightOnlyConfig); "
                                  "saves memory; LM head kept in float")
    config_name: ClassVar[str] = "Int8WeightOnlyConfig"


@dataclass(frozen=True)
class _Bnb(Variant):
    """bitsandbytes quantization while loading; compute dtype fixed by the variant."""

    group: ClassVar[str] = "quantization"
    at_load: ClassVar[bool] = True
    composes_with_precision: ClassVar[bool] = False
    quantizes_after_load: ClassVar[bool] = False

    def check(self, info: ModelInfo) -> None:
        """Refuse unless bitsandbytes imports and runs a tiny quantized layer on the device."""
        if info.device not in _DEVICES:
            raise refuse(info, f"{self.name} supports devices {', '.join(_DEVICES)}")
        try:
            self._probe(info.device)
        except Exception as exc:
            raise refuse(info, f"bitsandbytes cannot run on {info.device} here "
                               f"({type(exc).__name__}: {str(exc)[:300]})") from None

    def _probe(self, device: str) -> None:
        raise NotImplementedError

    def _bnb_config(self, info: ModelInfo) -> Any:
        raise NotImplementedError

    def load_kwargs(self, info: ModelInfo) -> dict[str, Any]:
        """``BitsAndBytesConfig`` and ``device_map`` set to the device."""
        return {"quantization_config": self._bnb_config(info), "device_map": info.device}

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Check that Linear layers really were replaced by bitsandbytes layers."""
        total, quantized = count_linears(model)
        if quantized == 0:
            raise refuse(info, f"{self.name} quantized no nn.Linear layer ({total} Linear layers)")
        self.params.update(linear_layers=total, quantized_layers=quantized)
        return model


@dataclass(frozen=True)
class BnbInt8(_Bnb):
    """LLM.int8(): int8 weights, fp16 matmuls with outliers kept in fp16 (bitsandbytes)."""

    name: ClassVar[str] = "bnb-int8"
    description: ClassVar[str] = ("bitsandbytes LLM.int8 (8-bit weights, fp16 compute); small memory, "
                                  "slow on CPU")

    def _probe(self, device: str) -> None:
        import bitsandbytes as bnb
        import torch

        layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False).to(device)
        layer(torch.randn(2, 64, device=device))

    def _bnb_config(self, info: ModelInfo) -> Any:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True)

    cpu_fallback: ClassVar[bool] = True
    fallback_why: ClassVar[str] = ("bitsandbytes int8 has no fast CPU kernel (fp16 compute; 1.3-2.1x slower "
                                   "than fp32 measured)")
    fallback_slowdown: ClassVar[float] = 1.7

    def record(self) -> dict[str, Any]:
        """Library, bit width, compute dtype."""
        return {**super().record(), "library": "bitsandbytes", "config": "BitsAndBytesConfig(load_in_8bit=True)",
                "weight_dtype": "int8", "compute_dtype": "float16", "lm_head": "not quantized"}


@dataclass(frozen=True)
class BnbNF4(_Bnb):
    """4-bit NormalFloat weights (bitsandbytes); compute in float32 on CPU, bfloat16 on CUDA."""

    name: ClassVar[str] = "bnb-nf4"
    description: ClassVar[str] = ("bitsandbytes 4-bit NF4 weights (compute float32 on CPU, bfloat16 on "
                                  "CUDA); smallest memory, slow on CPU")

    cpu_fallback: ClassVar[bool] = True
    fallback_why: ClassVar[str] = "bitsandbytes 4-bit has no AVX2/AVX-512 CPU kernel (dequantizes per matmul)"
    fallback_slowdown: ClassVar[float] = 1.0

    @staticmethod
    def compute_dtype(device: str) -> str:
        """float32 on CPU (bf16 compute measured 3-8x slower there), bfloat16 on CUDA."""
        return "bfloat16" if device == "cuda" else "float32"

    def _probe(self, device: str) -> None:
        import bitsandbytes as bnb
        import torch

        dt = getattr(torch, self.compute_dtype(device))
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=dt, quant_type="nf4").to(device)
        layer(torch.randn(2, 64, device=device, dtype=dt))

    def _bnb_config(self, info: ModelInfo) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        self.params["compute_dtype"] = self.compute_dtype(info.device)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=getattr(torch, self.compute_dtype(info.device)))

    def record(self) -> dict[str, Any]:
        """Library, quant type, compute dtype."""
        return {"compute_dtype": "float32 on cpu, bfloat16 on cuda", **super().record(),
                "library": "bitsandbytes", "weight_dtype": "nf4", "quant_type": "nf4",
                "config": "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4')",
                "lm_head": "not quantized"}


__all__ = ["BnbInt8", "BnbNF4", "Int8Dynamic", "Int8WeightOnly", "count_linears"]
