"""The PyTorch backend: transformers models in eager mode, with the torch variants applied.

Precision, torchao and bitsandbytes quantization and pruning apply at or after load.

Causal LMs serve log-likelihood requests: each continuation is scored by its summed log-probability after
the context, tokenised as lm-evaluation-harness does (``_encode_pair``). The context runs once per request;
its KV cache is expanded to the request's continuations, and only continuation tokens after the first are
run again. Batches are length-bucketed. Causal LMs also serve generation requests: greedy
``model.generate`` on left-padded batches of prompts of similar length, with a fresh GenerationConfig (no
sampling, no repetition penalty from the checkpoint's defaults), stopping at EOS or a stop text. Encoders
serve embedding requests: mean-pooled (or CLS, as the
model's sentence-transformers config says), L2-normalised.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.backends.base import (
    EMBEDDING,
    GENERATION,
    LOGLIKELIHOOD,
    Backend,
    Generation,
    GenerationRequest,
    Loaded,
    LoglikRequest,
)
from evaluator.errors import FrugalError
from evaluator.failures import NonFiniteOutputs, check_finite
from evaluator.models import ResolvedModel
from evaluator.variants import Composite, ModelInfo


class TorchBackend(Backend):
    """Eager PyTorch + transformers: every variant Frugal ships (precision, torchao, bitsandbytes, pruning)."""

    name = "torch"
    description = "PyTorch eager (transformers): fp32/bf16/fp16, torchao and bitsandbytes quantization, pruning"
    capabilities = {"causal-lm": frozenset({LOGLIKELIHOOD, GENERATION}), "encoder": frozenset({EMBEDDING})}
    devices = ("cpu", "cuda")

    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> TorchLoaded:
        """Load weights (local folder or Hub id), apply the variant, and put the model in eval mode."""
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        spec = resolved.spec
        info = ModelInfo(spec.name, spec.kind, device)
        variant.check(info)
        kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code, "dtype": torch.float32}
        if not spec.allow_pickle:
            kwargs["use_safetensors"] = True
        if spec.revision:
            kwargs["revision"] = spec.revision
        kwargs.update(variant.load_kwargs(info))
        kwargs.setdefault("device_map", device if device != "cpu" else None)
        if kwargs["device_map"] is None:
            kwargs.pop("device_map")
        loc = resolved.location
        tok = AutoTokenizer.from_pretrained(loc, trust_remote_code=spec.trust_remote_code, revision=spec.revision)
        cls = AutoModelForCausalLM if spec.kind == "causal-lm" else AutoModel
        try:
            model = cls.from_pretrained(loc, **kwargs)
        except OSError as exc:
            if "safetensors" in str(exc).lower() and not spec.allow_pickle:
                raise FrugalError(f"model {spec.name!r} ships no safetensors weights; pickle files are refused "
                                  f"unless its models.yaml entry sets allow_pickle: true") from None
            raise
        if "device_map" not in kwargs and device != "cpu":
            model = model.to(device)
        model.eval()
        model = variant.apply(model, info)
        model.eval()
        if spec.kind == "causal-lm" and tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        pooling = _pooling_mode(loc) if spec.kind == "encoder" else "last"
        return TorchLoaded(spec.name, spec.kind, device, self.name, self.serves(spec.kind), model=model,
                           tokenizer=tok, variant=variant, pooling=pooling)

    def version(self) -> str:
        """Torch and transformers versions (both change numerics)."""
        import torch
        import transformers

        return f"torch {torch.__version__}, transformers {transformers.__version__}"

    def environment(self) -> dict[str, Any]:
        """torch/transformers versions, the GPU if any, torch's CPU capability."""
        import torch
        import transformers

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
        return {"torch": torch.__version__, "transformers": transformers.__version__, "gpu": gpu,
                "torch_cpu_capability": cap, "machine": platform.machine()}

    def pick_device(self, requested: str) -> str:
        """'auto' -> cuda when available, else cpu."""
        import torch

        if requested == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if requested == "cuda" and not torch.cuda.is_available():
            raise FrugalError("device 'cuda' requested but no CUDA GPU is visible")
        return requested

    def default_threads(self) -> int:
        """Torch's own default (one per physical core)."""
        import torch

        return torch.get_num_threads()

    def set_threads(self, n: int) -> int:
        """torch.set_num_threads, and a fixed seed for anything random."""
        import torch

        torch.set_num_threads(n)
        torch.manual_seed(0)
        return torch.get_num_threads()

    def oom_types(self) -> tuple[type[BaseException], ...]:
        """torch.OutOfMemoryError (CUDA and CPU allocators)."""
        import torch

        return (torch.OutOfMemoryError,)


def _pooling_mode(location: str) -> str:
    cfg = Path(location) / "1_Pooling" / "config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        if data.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


@dataclass(frozen=True)
class TokenizedRequest:
    """Tokenised context and one continuation per choice (lm-eval's split)."""

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]


@dataclass
class TorchLoaded(Loaded):
    """A transformers model with its tokenizer, the variant applied."""

    model: Any = None
    tokenizer: Any = None
    variant: Composite | None = None
    pooling: str = "mean"

    def prepare(self, kind: str, requests: Sequence[Any]) -> Any:
        """Tokenise log-likelihood and generation requests (outside the measured window)."""
        if kind == LOGLIKELIHOOD:
            return encode_requests(self.tokenizer, requests)
        if kind == GENERATION:
            return [TokenizedPrompt(tuple(_encode(self.tokenizer, r.prompt)), r) for r in requests]
        return list(requests)

    def generate(self, prepared: Any, batch_size: int) -> list[Generation]:
        """Greedy generations, in input order; batches of prompts of similar length, left-padded."""
        reqs: list[TokenizedPrompt] = prepared
        out: list[Generation | None] = [None] * len(reqs)
        # Same decoding settings in a batch; longest prompts first (as log-likelihood batches).
        def setting(i: int) -> tuple[int, tuple[str, ...]]:
            return reqs[i].request.max_new_tokens, reqs[i].request.stop

        order = sorted(range(len(reqs)), key=lambda i: (setting(i), -len(reqs[i].ids)))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < batch_size and setting(batches[-1][0]) == setting(i):
                batches[-1].append(i)
            else:
                batches.append([i])
        for idx in batches:
            for i, g in zip(idx, _generate_batch(self, [reqs[i] for i in idx]), strict=True):
                out[i] = g
        return [g for g in out if g is not None]

    def loglikelihood(self, prepared: Any, batch_size: int) -> list[tuple[float, ...]]:
        """Summed log-probability of each continuation; the context runs once per request."""
        import torch

        reqs: list[TokenizedRequest] = prepared
        order = sorted(range(len(reqs)), key=lambda i: -len(reqs[i].context))
        out: list[tuple[float, ...] | None] = [None] * len(reqs)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                lls = _loglik_batch(self, [reqs[i] for i in idx])
                for i, ll in zip(idx, lls, strict=True):
                    out[i] = tuple(ll)
        return [o for o in out if o is not None]

    def embed(self, texts: Sequence[str], batch_size: int) -> Any:
        """Mean-pooled (or CLS), L2-normalised float32 embeddings, in input order."""
        return embed(self, texts, batch_size)

    def footprint(self) -> dict[str, Any]:
        """Parameter counts, serialized size and weight dtype of the transformed model."""
        from evaluator.variants.footprint import param_counts, serialized_size_mb, weight_dtype

        out: dict[str, Any] = {}
        try:
            out["params"], out["nonzero_params"] = param_counts(self.model)
            size = serialized_size_mb(self.model)
            out["size_mb"] = size[0] if isinstance(size, tuple) else size
            out["weight_dtype"] = weight_dtype(self.model)
        except Exception as exc:  # noqa: BLE001 - footprint is informative, never fatal
            out["footprint_error"] = str(exc)
        return out


# ------------------------------------------------------------------------------------- causal LMs
def encode_requests(tok: Any, requests: Sequence[LoglikRequest]) -> list[TokenizedRequest]:
    """Tokenise (context, continuation) pairs as lm-evaluation-harness does (`_encode_pair`)."""
    out = []
    for req in requests:
        context = req.context
        conts = []
        n_sp = len(context) - len(context.rstrip())
        ctx = context[:-n_sp] if n_sp else context
        ctx_ids = tuple(_encode(tok, ctx))
        if not ctx_ids:
            ctx_ids = (tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id,)
        for continuation in req.continuations:
            cont = (context[-n_sp:] if n_sp else "") + continuation
            whole = _encode(tok, ctx + cont)
            ids = tuple(whole[len(ctx_ids):]) if whole[: len(ctx_ids)] == list(ctx_ids) else tuple(
                _encode(tok, cont, special=False))
            conts.append(ids or (tok.eos_token_id,))
        out.append(TokenizedRequest(ctx_ids, tuple(conts)))
    return out


def _encode(tok: Any, text: str, special: bool | None = None) -> list[int]:
    if special is None:
        # lm-eval adds BOS only for models that need it (Gemma); mirror the tokenizer's own choice.
        special = bool(getattr(tok, "add_bos_token", False))
    return tok(text, add_special_tokens=special)["input_ids"]


def _loglik_batch(lm: TorchLoaded, reqs: list[TokenizedRequest]) -> list[list[float]]:
    import torch

    model, dev = lm.model, lm.device
    pad = lm.tokenizer.pad_token_id or 0
    n, lp = len(reqs), max(len(r.context) for r in reqs)
    ids = torch.full((n, lp), pad, dtype=torch.long)
    mask = torch.zeros((n, lp), dtype=torch.long)
    for b, r in enumerate(reqs):  # left padding: every prompt ends at the same column
        ids[b, lp - len(r.context):] = torch.tensor(r.context)
        mask[b, lp - len(r.context):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    res = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), use_cache=True,
                logits_to_keep=1)
    first = torch.log_softmax(res.logits[:, -1, :].float(), dim=-1)
    if torch.isnan(first).any():
        raise NonFiniteOutputs("log-probabilities")
    lls = [[float(first[b, c[0]]) for c in r.continuations] for b, r in enumerate(reqs)]
    # Choices longer than one token: run their tokens (all but the last) on the expanded cache.
    rows = [(b, k) for b, r in enumerate(reqs) for k, c in enumerate(r.continuations) if len(c) > 1]
    if not rows:
        check_finite([x for ll in lls for x in ll], "log-probabilities")
        return lls
    lc = max(len(reqs[b].continuations[k]) - 1 for b, k in rows)
    cids = torch.full((len(rows), lc), pad, dtype=torch.long)
    cmask = torch.zeros((len(rows), lc), dtype=torch.long)
    for j, (b, k) in enumerate(rows):
        c = reqs[b].continuations[k][:-1]
        cids[j, : len(c)] = torch.tensor(c)
        cmask[j, : len(c)] = 1
    sel = torch.tensor([b for b, _ in rows], dtype=torch.long)
    cache = res.past_key_values
    cache.reorder_cache(sel.to(dev))
    full_mask = torch.cat([mask[sel], cmask], dim=1)
    cpos = mask.sum(-1)[sel].unsqueeze(1) + torch.arange(lc).unsqueeze(0)
    out = model(input_ids=cids.to(dev), attention_mask=full_mask.to(dev), position_ids=cpos.to(dev),
                past_key_values=cache, use_cache=True)
    logp = torch.log_softmax(out.logits.float(), dim=-1)
    for j, (b, k) in enumerate(rows):
        targets = reqs[b].continuations[k][1:]
        tgt = torch.tensor(targets, device=logp.device)
        lls[b][k] += float(logp[j, torch.arange(len(targets), device=logp.device), tgt].sum())
    check_finite([x for ll in lls for x in ll], "log-probabilities")
    return lls


@dataclass(frozen=True)
class TokenizedPrompt:
    """A generation request with its prompt tokenised."""

    ids: tuple[int, ...]
    request: GenerationRequest


def _eos_ids(lm: TorchLoaded) -> list[int]:
    """Every token that ends an answer: the tokenizer's EOS and the checkpoint's generation EOS ids."""
    ids = {lm.tokenizer.eos_token_id}
    gen = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, list | tuple) else [gen])
    return sorted(i for i in ids if i is not None)


def _generate_batch(lm: TorchLoaded, reqs: list[TokenizedPrompt]) -> list[Generation]:
    import torch
    from transformers import GenerationConfig

    tok, model, dev = lm.tokenizer, lm.model, lm.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = _eos_ids(lm)
    first = reqs[0].request
    n, lp = len(reqs), max(len(r.ids) for r in reqs)
    ids = torch.full((n, lp), pad, dtype=torch.long)
    mask = torch.zeros((n, lp), dtype=torch.long)
    for b, r in enumerate(reqs):  # left padding: every prompt ends at the same column
        ids[b, lp - len(r.ids):] = torch.tensor(r.ids)
        mask[b, lp - len(r.ids):] = 1
    # A fresh config: greedy, no sampling settings or repetition penalty inherited from the checkpoint.
    cfg = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=first.max_new_tokens, pad_token_id=pad,
                           eos_token_id=eos, repetition_penalty=1.0, use_cache=True,
                           stop_strings=list(first.stop) or None)
    extra: dict[str, Any] = {"tokenizer": tok} if first.stop else {}
    with torch.inference_mode():
        seq = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), generation_config=cfg, **extra)
    new = seq[:, lp:].tolist()
    ends = set(eos) | {pad}
    out = []
    for b, r in enumerate(reqs):
        toks = new[b]
        end = next((k for k, t in enumerate(toks) if t in ends), None)
        body = toks if end is None else toks[:end]
        text = tok.decode(body, skip_special_tokens=True)
        cut = min((p for p in (text.find(s) for s in first.stop) if p >= 0), default=-1)
        if cut >= 0:
            text, reason, count = text[:cut], "stop", len(body)
        elif end is not None:
            reason, count = "eos", end + 1  # the EOS token was computed too
        else:
            reason, count = "length", len(body)
        out.append(Generation(text, len(r.ids), count, reason))
    return out


def loglikelihood_naive(lm: TorchLoaded, requests: Sequence[LoglikRequest]) -> list[list[float]]:
    """Reference: each (context + continuation) as its own sequence, no batching. For tests only."""
    import torch

    out = []
    with torch.inference_mode():
        for r in encode_requests(lm.tokenizer, requests):
            row = []
            for c in r.continuations:
                seq = torch.tensor([list(r.context) + list(c)], device=lm.device)
                logp = torch.log_softmax(lm.model(input_ids=seq).logits.float()[0], dim=-1)
                start = len(r.context) - 1
                row.append(float(sum(logp[start + t, tok] for t, tok in enumerate(c))))
            out.append(row)
    return out


# ---------------------------------------------------------------------------------------- encoders
def embed(lm: TorchLoaded, texts: Sequence[str], batch_size: int = 32) -> Any:
    """Mean-pooled (or CLS), L2-normalised float32 embeddings, in input order."""
    import torch

    tok, model = lm.tokenizer, lm.model
    max_len = min(getattr(tok, "model_max_length", 512) or 512, 512)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks: dict[int, Any] = {}
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt").to(lm.device)
            hidden = model(**enc).last_hidden_state.float()
            if lm.pooling == "cls":
                vec = hidden[:, 0]
            else:
                m = enc["attention_mask"].unsqueeze(-1).float()
                vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if not torch.isfinite(vec).all():  # before normalising, which would turn inf into NaN
                raise NonFiniteOutputs("embeddings")
            vec = torch.nn.functional.normalize(vec, dim=-1).cpu()
            for row, i in enumerate(idx):
                chunks[i] = vec[row]
    return torch.stack([chunks[i] for i in range(len(texts))]) if texts else torch.zeros(0)

