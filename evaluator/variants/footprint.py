"""What a variant did to a model's size: parameter counts, serialized size, weight dtype.

Quantized weights count by their *logical* shape: a torchao ``Int8Tensor`` of shape (out, in) counts
out*in elements, as does a bitsandbytes ``Params4bit`` whose packed storage is (out*in/2, 1).
``serialized_size`` measures the bytes of ``torch.save(model.state_dict())`` (streamed into a
counter, nothing kept in memory): unlike ``get_memory_footprint()`` it sees the int8/4-bit storage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

_MB = 1e6


@dataclass(frozen=True)
class SerializedSize:
    """Size of a model's saved state dict, and how it was measured."""

    size_mb: float
    #: "torch.save" (bytes a saved state dict takes) | "storage-nbytes" (sum of tensor storage, used
    #: only when the state dict cannot be serialised; excludes file-format overhead).
    method: str
    note: str = ""


def _logical_numel(p: Any) -> int:
    qs = getattr(p, "quant_state", None)  # bitsandbytes Params4bit: packed storage, logical shape here
    if qs is not None and getattr(qs, "shape", None) is not None:
        n = 1
        for d in qs.shape:
            n *= int(d)
        return n
    return int(p.numel())  # torchao subclasses and Int8Params report their logical shape


def _nonzero(p: Any) -> int:
    import torch

    data = p.detach()
    if getattr(p, "quant_state", None) is not None:  # 4-bit: zero is not code 0, dequantize to count
        import bitsandbytes.functional as bnbf

        return int(torch.count_nonzero(bnbf.dequantize_4bit(data.data, p.quant_state)))
    if hasattr(data, "tensor_data_names"):  # torchao: symmetric int8, so a zero weight has qdata 0
        q = getattr(data, "qdata", None)
        if q is not None and tuple(q.shape) == tuple(data.shape):
            return int(torch.count_nonzero(q))
        return int(torch.count_nonzero(data.dequantize()))
    return int(torch.count_nonzero(data))


def param_counts(model: Any) -> tuple[int, int]:
    """(parameters, non-zero parameters), counting quantized weights by logical elements.

    Tied parameters (e.g. an LM head sharing the input embedding) count once.
    """
    total = nonzero = 0
    for p in model.parameters():  # parameters() yields each shared tensor once
        total += _logical_numel(p)
        nonzero += _nonzero(p)
    return total, nonzero


class _ByteCounter:
    """A write-only file object that counts bytes."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        """Nothing to flush."""


def _storage_nbytes(model: Any) -> int:
    seen: set[int] = set()
    total = 0
    for t in model.state_dict().values():
        if not hasattr(t, "untyped_storage"):
            continue
        parts = [getattr(t, n) for n in getattr(t, "tensor_data_names", ())] or [t]
        for part in parts:
            st = part.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
    return total


def serialized_size(model: Any) -> SerializedSize:
    """Bytes of the saved state dict (``torch.save``); storage bytes if it cannot be serialised."""
    import torch

    counter = _ByteCounter()
    try:
        torch.save(model.state_dict(), counter)
        return SerializedSize(counter.n / _MB, "torch.save")
    except Exception as exc:  # a tensor subclass without pickling support
        return SerializedSize(_storage_nbytes(model) / _MB, "storage-nbytes",
                              f"torch.save failed ({type(exc).__name__}: {str(exc)[:200]}); summed storage")


def serialized_size_mb(model: Any) -> float:
    """Megabytes of the saved state dict; see :func:`serialized_size` for the method used."""
    return serialized_size(model).size_mb


def _linear_weight_dtype(w: Any) -> str:
    qs = getattr(w, "quant_state", None)
    if qs is not None:
        return str(getattr(qs, "quant_type", "4bit"))  # "nf4" | "fp4"
    if hasattr(w, "tensor_data_names"):
        q = getattr(w, "qdata", None)
        return str(q.dtype).removeprefix("torch.") if q is not None else type(w).__name__
    return str(w.dtype).removeprefix("torch.")


def weight_dtype(model: Any) -> str:
    """Storage dtype of most Linear-layer weight elements: 'float32', 'bfloat16', 'int8', 'nf4', ...

    The LM head is left out: quantizers keep it in float, and in models with a large vocabulary
    (Gemma 3: 168M of 268M parameters) it would outweigh every layer the variant changed.
    """
    import torch

    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    counts: Counter[str] = Counter()
    for mod in model.modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, torch.nn.Linear) and mod is not head and w is not None:
            counts[_linear_weight_dtype(w)] += _logical_numel(w)
    if not counts:
        dt = next((p.dtype for p in model.parameters()), None)
        return str(dt).removeprefix("torch.") if dt is not None else "unknown"
    return counts.most_common(1)[0][0]


__all__ = ["SerializedSize", "param_counts", "serialized_size", "serialized_size_mb", "weight_dtype"]
