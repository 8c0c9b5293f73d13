"""Loading a model (with its variant) and scoring items. Models never see suites: they see texts.

Causal LMs: each choice is scored by the log-likelihood of ``" " + choice`` after the prompt
(``acc``: summed; ``acc_norm``: divided by the choice's character length), tokenised as
lm-evaluation-harness does. The prompt is run once per item; its KV cache is expanded to the
item's choices, and only choice tokens after the first are run again. Batches are length-bucketed.

Encoders: mean-pooled, L2-normalised embeddings. Zero-shot picks the label description (or the
choice) with the highest cosine; with a train split, a logistic-regression probe on the
embeddings is trained once per cell, outside the measured window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError
from evaluator.models import ResolvedModel
from evaluator.suite import Item, Task
from evaluator.variants import Composite, ModelInfo


class NonFiniteOutputs(FloatingPointError):
    """The model produced NaN or inf (embeddings or log-probabilities): the cell fails, it is never scored."""

    def __init__(self, what: str) -> None:
        """``what``: which outputs were not finite, e.g. 'embeddings'."""
        super().__init__(f"non-finite outputs (NaN/inf): the model produced non-finite {what}")


def check_finite(values: Sequence[float], what: str) -> None:
    """Raise NonFiniteOutputs when any value is NaN or +/-inf."""
    if not all(math.isfinite(v) for v in values):
        raise NonFiniteOutputs(what)


@dataclass
class LoadedModel:
    """A model ready to score: weights with the variant applied, tokenizer, device."""

    name: str
    kind: str
    model: Any
    tokenizer: Any
    device: str
    variant: Composite
    pooling: str = "mean"
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemScore:
    """Per-item output of a scorer."""

    item_id: str
    pred: int
    pred_norm: int
    gold: int
    scores: tuple[float, ...]

    @property
    def correct(self) -> bool:
        """Prediction (acc) equals gold."""
        return self.pred == self.gold

    @property
    def correct_norm(self) -> bool:
        """Prediction (acc_norm) equals gold."""
        return self.pred_norm == self.gold


def pick_device(requested: str = "auto") -> str:
    """'auto' -> cuda when available, else cpu."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise FrugalError("device 'cuda' requested but no CUDA GPU is visible")
    return requested


def load(resolved: ResolvedModel, variant: Composite, device: str = "cpu") -> LoadedModel:
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
    return LoadedModel(spec.name, spec.kind, model, tok, device, variant, pooling)


def _pooling_mode(location: str) -> str:
    cfg = Path(location) / "1_Pooling" / "config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        if data.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


# ------------------------------------------------------------------------------------- causal LMs
@dataclass(frozen=True)
class _Request:
    """Tokenised context and one continuation per choice (lm-eval's split)."""

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    char_lens: tuple[int, ...]


def encode_requests(tok: Any, task: Task, items: Sequence[Item]) -> list[_Request]:
    """Tokenise prompt + ' choice' pairs as lm-evaluation-harness does (`_encode_pair`)."""
    reqs = []
    for item in items:
        context = task.render_prompt(item)
        conts = []
        n_sp = len(context) - len(context.rstrip())
        ctx = context[:-n_sp] if n_sp else context
        ctx_ids = tuple(_encode(tok, ctx))
        if not ctx_ids:
            ctx_ids = (tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id,)
        for choice in item.choices:
            cont = (context[-n_sp:] if n_sp else "") + " " + choice
            whole = _encode(tok, ctx + cont)
            ids = tuple(whole[len(ctx_ids):]) if whole[: len(ctx_ids)] == list(ctx_ids) else tuple(
                _encode(tok, cont, special=False))
            conts.append(ids or (tok.eos_token_id,))
        reqs.append(_Request(ctx_ids, tuple(conts), tuple(len(c) for c in item.choices)))
    return reqs


def _encode(tok: Any, text: str, special: bool | None = None) -> list[int]:
    if special is None:
        # lm-eval adds BOS only for models that need it (Gemma); mirror the tokenizer's own choice.
        special = bool(getattr(tok, "add_bos_token", False))
    return tok(text, add_special_tokens=special)["input_ids"]


def score_causal(lm: LoadedModel, task: Task, items: Sequence[Item], batch_size: int = 16,
                 requests: list[_Request] | None = None) -> list[ItemScore]:
    """Log-likelihood scores for each item's choices; the prompt runs once per item."""
    import torch

    reqs = requests if requests is not None else encode_requests(lm.tokenizer, task, items)
    order = sorted(range(len(reqs)), key=lambda i: -len(reqs[i].context))
    out: list[ItemScore | None] = [None] * len(reqs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            lls = _loglik_batch(lm, [reqs[i] for i in idx])
            for i, ll in zip(idx, lls, strict=True):
                norm = [x / max(1, n) for x, n in zip(ll, reqs[i].char_lens, strict=True)]
                out[i] = ItemScore(items[i].id, _argmax(ll), _argmax(norm), items[i].gold, tuple(ll))
    return [o for o in out if o is not None]


def _argmax(xs: Sequence[float]) -> int:
    best = max(range(len(xs)), key=lambda k: (xs[k] if not math.isnan(xs[k]) else -math.inf))
    return best


def _loglik_batch(lm: LoadedModel, reqs: list[_Request]) -> list[list[float]]:
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


def score_causal_naive(lm: LoadedModel, task: Task, items: Sequence[Item]) -> list[list[float]]:
    """Reference: each (prompt + choice) as its own sequence, no batching. For tests only."""
    import torch

    reqs = encode_requests(lm.tokenizer, task, items)
    out = []
    with torch.inference_mode():
        for r in reqs:
            row = []
            for c in r.continuations:
                seq = torch.tensor([list(r.context) + list(c)], device=lm.device)
                logp = torch.log_softmax(lm.model(input_ids=seq).logits.float()[0], dim=-1)
                start = len(r.context) - 1
                row.append(float(sum(logp[start + t, tok] for t, tok in enumerate(c))))
            out.append(row)
    return out


# ---------------------------------------------------------------------------------------- encoders
def embed(lm: LoadedModel, texts: Sequence[str], batch_size: int = 32) -> Any:
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


@dataclass
class EncoderPlan:
    """Per-cell state built outside the measured window: the probe, trained on the train split."""

    method: str  # "probe-logreg" | "zero-shot-cosine"
    probe: Any = None


def prepare_encoder(lm: LoadedModel, task: Task, method: str = "auto") -> EncoderPlan:
    """Choose zero-shot or probe and train the probe when asked/possible."""
    can_probe = task.type == "classification" and len({i.gold for i in task.train_items}) >= 2
    if method == "zero-shot" or (method == "auto" and not can_probe):
        return EncoderPlan("zero-shot-cosine")
    if not can_probe:
        raise FrugalError(f"task {task.suite}/{task.name}: a probe needs a train split with >= 2 labels")
    from sklearn.linear_model import LogisticRegression

    x = embed(lm, [task.render_encoder_input(i) for i in task.train_items]).numpy()
    y = [i.gold for i in task.train_items]
    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=0).fit(x, y)
    return EncoderPlan("probe-logreg", clf)


def score_encoder(lm: LoadedModel, task: Task, items: Sequence[Item], plan: EncoderPlan,
                  batch_size: int = 32) -> list[ItemScore]:
    """Zero-shot cosine or probe prediction for each item."""
    x = embed(lm, [task.render_encoder_input(i) for i in items], batch_size)
    out = []
    if plan.method == "probe-logreg":
        proba = plan.probe.predict_proba(x.numpy())
        classes = list(plan.probe.classes_)
        n_labels = len(task.labels)
        for it, p in zip(items, proba, strict=True):
            full = [float(p[classes.index(c)]) if c in classes else 0.0 for c in range(n_labels)]
            pred = _argmax(full)
            out.append(ItemScore(it.id, pred, pred, it.gold, tuple(full)))
        return out
    if task.type == "classification":
        lab = embed(lm, [lab.description for lab in task.labels], batch_size)
        sims = x @ lab.T
        for it, row in zip(items, sims, strict=True):
            s = [float(v) for v in row]
            out.append(ItemScore(it.id, _argmax(s), _argmax(s), it.gold, tuple(s)))
        return out
    flat = [c for it in items for c in it.choices]
    cv = embed(lm, flat, batch_size)
    pos = 0
    for it, q in zip(items, x, strict=True):
        s = [float(v) for v in cv[pos:pos + len(it.choices)] @ q]
        pos += len(it.choices)
        out.append(ItemScore(it.id, _argmax(s), _argmax(s), it.gold, tuple(s)))
    return out
