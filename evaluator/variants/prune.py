"""Pruning variants: unstructured magnitude (zeros) and structured (smaller layers).

Structured pruning removes whole FFN neurons and attention heads: fewer parameters, faster.

Magnitude: one global L1 threshold over every ``nn.Linear`` weight except the LM head (embeddings
are not Linear layers); exactly ``fraction`` of those weights become zero. This is what
``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` + ``prune.remove`` computes (a test
checks the masks agree) without its full-size masks and top-k indices, which would not fit in
memory for 1.5B-parameter models. Dense kernels do not skip zeros: no speed-up is expected.

Structured, per layer: drop the ``fraction`` of FFN neurons with the smallest L2 norm of their
input rows and output column, and the ``fraction`` of attention heads with the smallest norm of
their output-projection columns (at least one kept). In grouped-query attention (Llama/SmolLM2,
Qwen2, Gemma3) a whole KV group goes: one key/value head and all the query heads that share it.
Counts round to nearest, halves down (a 3-group model at 25 % loses 1 group; Gemma-3-270M has a
single KV group, so only its FFN is pruned). Supported: BERT, MPNet, Llama, Qwen2, Gemma3 (text).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from evaluator.variants.base import ModelInfo, Variant, refuse

STRUCTURED_TYPES = ("bert", "mpnet", "llama", "qwen2", "gemma3_text")


def count_params(model: Any) -> int:
    """Parameters, each shared tensor once."""
    return sum(p.numel() for p in model.parameters())


def _float_linears(model: Any, info: ModelInfo) -> list[Any]:
    """Linear layers to prune: all but the LM head; refuse quantized weights."""
    import torch

    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) or mod is head:
            continue
        w = mod.weight
        if type(w.data) is not torch.Tensor or not w.is_floating_point():
            raise refuse(info, f"pruning needs float weights, but {name} holds {type(w.data).__name__}; "
                               f"pruning must run before quantization")
        out.append(mod)
    if not out:
        raise refuse(info, "no nn.Linear layers to prune")
    return out


def global_magnitude_prune(weights: list[Any], fraction: float) -> int:
    """Zero exactly ``round(fraction * n)`` of the smallest-magnitude entries across ``weights``.

    Ties at the threshold are broken in order. Returns the number of entries set to zero.
    """
    import torch

    with torch.no_grad():
        flat = torch.cat([w.detach().abs().flatten().float() for w in weights])
        k = int(round(fraction * flat.numel()))
        if k == 0:
            return 0
        thr = torch.kthvalue(flat, k).values
        del flat
        left = k
        masks = []
        for w in weights:
            a = w.detach().abs().float()
            below = a < thr
            masks.append(below)
            left -= int(below.sum())
        for w, below in zip(weights, masks, strict=True):
            if left > 0:
                eq = (w.detach().abs().float() == thr).flatten().nonzero().flatten()[:left]
                below.view(-1)[eq] = True
                left -= len(eq)
            w.masked_fill_(below, 0)
    return k


@dataclass(frozen=True)
class _Magnitude(Variant):
    """Global unstructured L1 magnitude pruning of Linear weights (LM head kept)."""

    group: ClassVar[str] = "pruning"
    fraction: ClassVar[float] = 0.3

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Zero the smallest ``fraction`` of Linear weights, globally."""
        layers = _float_linears(model, info)
        weights = [m.weight for m in layers]
        zeroed = global_magnitude_prune(weights, self.fraction)
        n = sum(w.numel() for w in weights)
        self.params.update(linear_layers=len(layers), linear_weights=n, weights_zeroed=zeroed,
                           zero_fraction=round(zeroed / n, 6))
        return model

    def record(self) -> dict[str, Any]:
        """Fraction, scope and method."""
        return {**super().record(), "fraction": self.fraction, "method": "global L1 unstructured",
                "scope": "all nn.Linear weights except the LM head"}


@dataclass(frozen=True)
class PruneMagnitude30(_Magnitude):
    """30 % of Linear weights set to zero (global magnitude)."""

    name: ClassVar[str] = "prune-magnitude-30"
    description: ClassVar[str] = ("30 % of Linear weights zeroed by global magnitude (same shapes; dense "
                                  "kernels, so no speed-up)")
    fraction: ClassVar[float] = 0.3


@dataclass(frozen=True)
class PruneMagnitude50(_Magnitude):
    """50 % of Linear weights set to zero (global magnitude)."""

    name: ClassVar[str] = "prune-magnitude-50"
    description: ClassVar[str] = ("50 % of Linear weights zeroed by global magnitude (same shapes; dense "
                                  "kernels, so no speed-up)")
    fraction: ClassVar[float] = 0.5


# ------------------------------------------------------------------------------------ structured
@dataclass
class _Attention:
    """One attention block: where its projections live and how to update its head counts."""

    qkv: Any  # module holding the q, k, v projections
    names: tuple[str, str, str]
    o_owner: Any
    o_name: str
    head_dim: int
    set_heads: Callable[[int, int], None]
    bias_owner: Any = None  # MPNet: module whose ``position_bias`` argument is shared by all heads


@dataclass
class _FFN:
    """One feed-forward block: input projections (rows = neurons), output projection (columns)."""

    ins: list[tuple[Any, str]]
    out: tuple[Any, str]
    set_size: Callable[[int], None]


def _setter(mod: Any, **attrs: Callable[[int, int], int]) -> Callable[[int, int], None]:
    def update(n_heads: int, n_kv: int) -> None:
        for attr, fn in attrs.items():
            if hasattr(mod, attr):
                setattr(mod, attr, fn(n_heads, n_kv))
    return update


def _blocks(model: Any, info: ModelInfo) -> list[tuple[_Attention, _FFN]]:
    mtype = getattr(getattr(model, "config", None), "model_type", None)
    if mtype not in STRUCTURED_TYPES:
        raise refuse(info, f"structured pruning supports model types {', '.join(STRUCTURED_TYPES)}, "
                           f"not {mtype!r}")
    base = getattr(model, "base_model", model)
    out = []
    if mtype in ("bert", "mpnet"):
        for layer in base.encoder.layer:
            sa = layer.attention.self if mtype == "bert" else layer.attention.attn
            d = sa.attention_head_size
            heads = _setter(sa, num_attention_heads=lambda h, _k: h, all_head_size=lambda h, _k, d=d: h * d)
            if mtype == "bert":
                att = _Attention(sa, ("query", "key", "value"), layer.attention.output, "dense", d, heads)
            else:
                att = _Attention(sa, ("q", "k", "v"), sa, "o", d, heads, bias_owner=sa)
            out.append((att, _FFN([(layer.intermediate, "dense")], (layer.output, "dense"), lambda _n: None)))
        return out
    for layer in base.layers:
        sa, mlp = layer.self_attn, layer.mlp
        att = _Attention(sa, ("q_proj", "k_proj", "v_proj"), sa, "o_proj", sa.head_dim,
                         _setter(sa, num_heads=lambda h, _k: h, num_key_value_heads=lambda _h, k: k))
        out.append((att, _FFN([(mlp, "gate_proj"), (mlp, "up_proj")], (mlp, "down_proj"),
                              lambda n, m=mlp: setattr(m, "intermediate_size", n))))
    return out


def _n_remove(fraction: float, n: int) -> int:
    """Nearest whole count (halves down), keeping at least one."""
    return max(0, min(n - 1, math.ceil(fraction * n - 0.5)))


def _pruned(layer: Any, index: Any, dim: int) -> Any:
    from transformers.pytorch_utils import prune_linear_layer

    new = prune_linear_layer(layer, index, dim).to(dtype=layer.weight.dtype)
    new.requires_grad_(False)
    return new


class _SliceBias:
    """Forward pre-hook: keep only the surviving heads of MPNet's shared relative-position bias."""

    def __init__(self, keep: Any) -> None:
        self.keep = keep

    def __call__(self, _mod: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if len(args) > 2 and args[2] is not None:
            args = (*args[:2], self._slice(args[2]), *args[3:])
        elif kwargs.get("position_bias") is not None:
            kwargs = {**kwargs, "position_bias": self._slice(kwargs["position_bias"])}
        return args, kwargs

    def _slice(self, bias: Any) -> Any:
        return bias[:, self.keep.to(bias.device)]


def _prune_attention(att: _Attention, fraction: float) -> tuple[int, int, int]:
    """Remove the weakest KV groups (a group = one KV head and its query heads).

    Returns (query heads before, query heads removed, KV groups removed).
    """
    import torch

    q_name, k_name, v_name = att.names
    d = att.head_dim
    o = getattr(att.o_owner, att.o_name)
    n_heads = o.weight.shape[1] // d
    n_kv = getattr(att.qkv, k_name).weight.shape[0] // d
    g = n_heads // n_kv
    r = _n_remove(fraction, n_kv)
    if r == 0:
        return n_heads, 0, 0
    w = o.weight.detach().float()
    score = w.view(w.shape[0], n_kv, g, d).pow(2).sum(dim=(0, 2, 3))  # squared norm per group
    keep_groups = torch.sort(torch.argsort(score, descending=True)[: n_kv - r]).values
    keep_heads = (keep_groups[:, None] * g + torch.arange(g)).flatten()
    q_idx = (keep_heads[:, None] * d + torch.arange(d)).flatten()
    kv_idx = (keep_groups[:, None] * d + torch.arange(d)).flatten()
    setattr(att.qkv, q_name, _pruned(getattr(att.qkv, q_name), q_idx, 0))
    setattr(att.qkv, k_name, _pruned(getattr(att.qkv, k_name), kv_idx, 0))
    setattr(att.qkv, v_name, _pruned(getattr(att.qkv, v_name), kv_idx, 0))
    setattr(att.o_owner, att.o_name, _pruned(o, q_idx, 1))
    att.set_heads(len(keep_heads), len(keep_groups))
    if att.bias_owner is not None:
        att.bias_owner.register_forward_pre_hook(_SliceBias(keep_heads), with_kwargs=True)
    return n_heads, r * g, r


def _prune_ffn(ffn: _FFN, fraction: float) -> tuple[int, int]:
    """Remove the weakest neurons; returns (neurons before, removed)."""
    import torch

    out_owner, out_name = ffn.out
    down = getattr(out_owner, out_name)
    n = down.weight.shape[1]
    r = _n_remove(fraction, n)
    if r == 0:
        return n, 0
    score = down.weight.detach().float().pow(2).sum(dim=0)
    for owner, name in ffn.ins:
        score += getattr(owner, name).weight.detach().float().pow(2).sum(dim=1)
    keep = torch.sort(torch.argsort(score, descending=True)[: n - r]).values
    for owner, name in ffn.ins:
        setattr(owner, name, _pruned(getattr(owner, name), keep, 0))
    setattr(out_owner, out_name, _pruned(down, keep, 1))
    ffn.set_size(n - r)
    return n, r


@dataclass(frozen=True)
class _Structured(Variant):
    """Remove the lowest-importance FFN neurons and attention heads / KV groups in every layer."""

    group: ClassVar[str] = "pruning"
    fraction: ClassVar[float] = 0.25

    def apply(self, model: Any, info: ModelInfo) -> Any:
        """Prune every layer in place; record what went."""
        import torch

        blocks = _blocks(model, info)
        _float_linears(model, info)  # refuses quantized weights
        before = count_params(model)
        heads = heads_removed = groups_removed = neurons = neurons_removed = 0
        with torch.no_grad():
            for att, ffn in blocks:
                h, hr, gr = _prune_attention(att, self.fraction)
                n, nr = _prune_ffn(ffn, self.fraction)
                heads, heads_removed, groups_removed = heads + h, heads_removed + hr, groups_removed + gr
                neurons, neurons_removed = neurons + n, neurons_removed + nr
        after = count_params(model)
        self.params.update(
            layers=len(blocks), heads_total=heads, heads_removed=heads_removed, kv_groups_removed=groups_removed,
            ffn_neurons_total=neurons, ffn_neurons_removed=neurons_removed,
            params_before=before, params_after=after)
        return model

    def record(self) -> dict[str, Any]:
        """Fraction, what is ranked by what, and (after ``apply``) what was removed."""
        return {**super().record(), "fraction": self.fraction, "method": "structured (prune_linear_layer)",
                "ffn_importance": "L2 norm of a neuron's input rows and output column, per layer",
                "head_importance": "L2 norm of a head's (KV group's) output-projection columns, per layer",
                "attention_unit": "query head (MHA) or whole KV group (GQA)",
                "rounding": "nearest, halves down; at least one head / group kept"}


@dataclass(frozen=True)
class PruneStructured25(_Structured):
    """25 % of FFN neurons and of attention heads (KV groups) removed per layer."""

    name: ClassVar[str] = "prune-structured-25"
    description: ClassVar[str] = ("25 % of FFN neurons and attention heads (whole KV groups in GQA) "
                                  "removed per layer: smaller and faster")
    fraction: ClassVar[float] = 0.25


@dataclass(frozen=True)
class PruneStructured50(_Structured):
    """50 % of FFN neurons and of attention heads (KV groups) removed per layer."""

    name: ClassVar[str] = "prune-structured-50"
    description: ClassVar[str] = ("50 % of FFN neurons and attention heads (whole KV groups in GQA) "
                                  "removed per layer: smaller and faster")
    fraction: ClassVar[float] = 0.5


__all__ = ["STRUCTURED_TYPES", "PruneMagnitude30", "PruneMagnitude50", "PruneStructured25",
           "PruneStructured50", "count_params", "global_magnitude_prune"]
