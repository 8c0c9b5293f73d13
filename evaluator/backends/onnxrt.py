"""The ONNX Runtime backend: encoders and causal LMs exported once to ONNX, fp32, dynamic int8 or int4 weights.

Export: the fp32 safetensors model goes through ``torch.onnx.export`` (the dynamo exporter; onnxscript) once
into the derived cache (evaluator/models.py ``derived``), with sha256. Encoders: ``(input_ids,
attention_mask) -> last_hidden_state``. Causal LMs: a decoder with a KV cache, ``(input_ids, attention_mask,
position_ids, past.{i}.key, past.{i}.value ...) -> (logits, present.{i}.key, present.{i}.value ...)``, logits
at every position; a past of length 0 makes it a plain forward pass (log-likelihoods, a prompt's prefill).
An architecture whose cache the exporter cannot trace falls back to ``(input_ids, attention_mask) -> logits``
with no cache (recorded in the artefact's manifest as ``kv_cache: false``, and the cell's weight format says
so). optimum-onnx is not used: every release of it pins transformers < 4.58, and Frugal runs transformers 5.
int8: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; activations quantized per batch at run
time: fast with VNNI, AVX2 u8s8 kernels otherwise). int4: ``MatMulNBitsQuantizer`` (block 32, symmetric;
causal LMs).

Requests: tokenised with the model's Hugging Face tokenizer exactly as the torch backend does
(:func:`evaluator.backends.torch_hf.encode_requests`), so token ids match torch's. Log-likelihood: one
right-padded batch per request, context + continuation (all but its last token) per row, empty past;
generation: greedy, one sequence at a time, the prompt once and then one token per step on the KV cache
(as llama.cpp's backend does). Embeddings: mean-pooled (or CLS), L2-normalised, as torch's.
:class:`ArrayLoaded` holds this logic for any runtime that maps named arrays to named arrays (OpenVINO
reuses it).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.backends.base import (
    EMBEDDING,
    GENERATION,
    LOGLIKELIHOOD,
    Backend,
    Generation,
    GenerationRequest,
    Loaded,
    greedy,
)
from evaluator.errors import FrugalError
from evaluator.failures import NonFiniteOutputs

if TYPE_CHECKING:
    from evaluator.models import ModelSpec, ResolvedModel
    from evaluator.variants import Composite

INSTALL_HINT = "install the runtimes extra: `pip install -e '.[runtimes]'` (or `make setup`)"
#: The exported graph's names.
INPUTS = ("input_ids", "attention_mask")
OPSET = 18
#: Revision of Frugal's exports, part of the backend version (and so of every cell key): 2 = causal LMs are
#: exported with a KV cache (revision 1 ran the whole sequence again for each generated token).
EXPORT_REVISION = 2


def artefact(resolved: ResolvedModel, stem: str) -> str:
    """The derived-cache name of an export: causal LMs' carry the revision, so an older graph is never reused."""
    return f"{stem}-r{EXPORT_REVISION}" if resolved.spec.kind == "causal-lm" else stem


def missing(*modules: str) -> list[str]:
    """Which of ``modules`` are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


# ------------------------------------------------------------------------------------------- export
def onnx_fp32(resolved: ResolvedModel) -> Path:
    """The fp32 ONNX export of a model (made once; ``model.onnx`` + external weights)."""
    from evaluator.models import derived

    def build(tmp: Path) -> dict[str, Any]:
        info = export_onnx(resolved, tmp / "model.onnx")
        return {"made_with": "torch.onnx.export (dynamo) of the fp32 safetensors weights", "opset": OPSET, **info}

    folder, _rec = derived(resolved, artefact(resolved, "onnx-fp32"), build)
    return folder / "model.onnx"


def onnx_quantized(resolved: ResolvedModel, weights: str) -> tuple[Path, str]:
    """(path, sha256 of the graph file) of the ONNX model for ``weights`` in fp32 / int8 / int4."""
    from evaluator.models import derived

    src = onnx_fp32(resolved)
    if weights == "fp32":
        folder, rec = derived(resolved, artefact(resolved, "onnx-fp32"), lambda _t: {})
        return src, rec["files"]["model.onnx"]["sha256"]

    def build(tmp: Path) -> dict[str, Any]:
        out = tmp / "model.onnx"
        if weights == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, use_external_data_format=True)
            return {"made_with": "onnxruntime.quantization.quantize_dynamic (QInt8 weights)"}
        if weights == "int4":
            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=32, is_symmetric=True)
            q.process()
            q.model.save_model_to_file(str(out), use_external_data_format=True)
            return {"made_with": "onnxruntime MatMulNBitsQuantizer (4 bits, block 32, symmetric)"}
        raise FrugalError(f"unknown ONNX weight format {weights!r}")

    folder, rec = derived(resolved, artefact(resolved, f"onnx-{weights}"), build)
    return folder / "model.onnx", rec["files"]["model.onnx"]["sha256"]


def export_onnx(resolved: ResolvedModel, out: Path) -> dict[str, Any]:
    """Export the fp32 model (a causal LM with its KV cache where the exporter can trace it); what was made."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    spec = resolved.spec
    cls = AutoModelForCausalLM if spec.kind == "causal-lm" else AutoModel
    kwargs: dict[str, Any] = {"dtype": torch.float32, "trust_remote_code": spec.trust_remote_code}
    if not spec.allow_pickle:
        kwargs["use_safetensors"] = True
    model = cls.from_pretrained(resolved.location, **kwargs).eval()
    if spec.kind != "causal-lm":
        _export_plain(model, out, causal=False)
        return {}
    try:
        layers = _export_with_past(model, out)
        return {"kv_cache": True, "kv_layers": layers}
    except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot trace with its cache
        for f in out.parent.iterdir():
            f.unlink()
        _export_plain(model, out, causal=True)
        return {"kv_cache": False, "kv_cache_error": f"{type(exc).__name__}: {exc}"[:500]}


def _export_plain(model: Any, out: Path, causal: bool) -> None:
    """``(input_ids, attention_mask) -> logits | last_hidden_state``, no cache."""
    import warnings

    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            if causal:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    dims = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapped(model), (ids, torch.ones_like(ids)), str(out), input_names=list(INPUTS),
                          output_names=["output"], dynamic_axes={"input_ids": dims, "attention_mask": dims,
                                                                 "output": dims},
                          opset_version=OPSET, dynamo=True, external_data=True, verbose=False)


def _export_with_past(model: Any, out: Path) -> int:
    """A decoder with a KV cache (names as in the module docstring); returns the number of layers.

    Traced with a past of 3 and 5 new tokens; batch, new tokens and past length are dynamic, so a past of
    length 0 at run time is a plain forward pass.
    """
    import warnings

    import torch
    from transformers import DynamicCache

    cfg = model.config
    n_layers = int(cfg.num_hidden_layers)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)

    class WithPast(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, past: list[Any]) -> Any:
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(n_layers)], config=cfg)
            res = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=cache, use_cache=True)
            presents: list[Any] = []
            for layer in res.past_key_values.layers:
                presents += [layer.keys, layer.values]
            return (res.logits, *presents)

    batch, new, n_past = 2, 5, 3
    ids = torch.ones((batch, new), dtype=torch.long)
    mask = torch.ones((batch, n_past + new), dtype=torch.long)
    pos = torch.arange(n_past, n_past + new).unsqueeze(0).expand(batch, new).contiguous()
    past = [torch.zeros((batch, kv_heads, n_past, head_dim)) for _ in range(2 * n_layers)]
    kv = [f"past.{i}.{t}" for i in range(n_layers) for t in ("key", "value")]
    outputs = ["logits"] + [n.replace("past.", "present.", 1) for n in kv]
    dim = torch.export.Dim
    b, s, p = dim("batch"), dim("sequence"), dim("past")
    shapes = ({0: b, 1: s}, {0: b, 1: dim.AUTO}, {0: b, 1: s}, [{0: b, 2: p} for _ in past])
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(WithPast(model), (ids, mask, pos, past), str(out),
                          input_names=[*INPUTS, "position_ids", *kv], output_names=outputs, dynamic_shapes=shapes,
                          opset_version=OPSET, dynamo=True, external_data=True, verbose=False)
    return n_layers


@dataclass(frozen=True)
class KvLayout:
    """The KV-cache inputs of an exported decoder: layers, and each past tensor's [batch, heads, past, dim]."""

    layers: int
    kv_heads: int
    head_dim: int

    @staticmethod
    def of(inputs: dict[str, Sequence[Any]]) -> KvLayout | None:
        """From the graph's input names and shapes (static dims as ints); None for a graph without a cache.

        >>> KvLayout.of({"input_ids": ["b", "s"], "past.0.key": ["b", 3, "p", 64], "past.0.value": ["b", 3, "p", 64],
        ...              "past.1.key": ["b", 3, "p", 64], "past.1.value": ["b", 3, "p", 64]})
        KvLayout(layers=2, kv_heads=3, head_dim=64)
        >>> KvLayout.of({"input_ids": ["b", "s"], "attention_mask": ["b", "s"]}) is None
        True
        """
        keys = [n for n in inputs if n.startswith("past.") and n.endswith(".key")]
        if not keys:
            return None
        shape = list(inputs["past.0.key"])
        if len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[3], int):
            raise FrugalError(f"exported decoder: past.0.key has shape {shape}, not [batch, heads, past, dim]")
        return KvLayout(len(keys), shape[1], shape[3])

    def empty(self, batch: int) -> dict[str, Any]:
        """A past of length 0 for ``batch`` rows."""
        import numpy as np

        z = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32)
        return {f"past.{i}.{t}": z for i in range(self.layers) for t in ("key", "value")}


# ------------------------------------------------------------------------------------------ backend
class OnnxRuntimeBackend(Backend):
    """ONNX Runtime (CPU execution provider; CUDA where present): fp32, dynamic int8, int4 weights."""

    name = "onnxruntime"
    description = "ONNX Runtime: ONNX export of the weights, fp32 / dynamic int8 / int4; needs extra 'runtimes'"
    capabilities = {"causal-lm": frozenset({LOGLIKELIHOOD, GENERATION}), "encoder": frozenset({EMBEDDING})}
    devices = ("cpu", "cuda")
    needs = ("onnxruntime", "onnx", "onnxscript")

    def __init__(self) -> None:
        self._threads = os.cpu_count() or 1

    def check(self, spec: ModelSpec, variant: Composite, device: str) -> None:
        """Refuse a missing runtime (or CUDA provider) before anything loads."""
        super().check(spec, variant, device)
        lacking = missing(*self.needs)
        if lacking:
            raise FrugalError(f"backend {self.name!r} needs {', '.join(lacking)}, not installed: {INSTALL_HINT}")
        if device == "cuda" and "CUDAExecutionProvider" not in self._providers():
            raise FrugalError("backend 'onnxruntime' on cuda needs onnxruntime-gpu (the CUDA execution provider); "
                              "this onnxruntime has " + ", ".join(self._providers()))

    @staticmethod
    def _providers() -> list[str]:
        import onnxruntime as ort

        return list(ort.get_available_providers())

    def pick_device(self, requested: str) -> str:
        """'auto' -> cuda when the CUDA provider is there, else cpu."""
        if requested == "auto":
            return "cuda" if not missing("onnxruntime") and "CUDAExecutionProvider" in self._providers() else "cpu"
        if requested not in self.devices:
            raise FrugalError(f"backend {self.name!r} runs on cpu or cuda, not {requested!r}")
        return requested

    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> ArrayLoaded:
        """Export (once), quantize (once), open an inference session."""
        import onnxruntime as ort

        from evaluator.variants import ModelInfo

        spec = resolved.spec
        variant.check(ModelInfo(spec.name, spec.kind, device))
        weights = variant.parts[0].weights
        path, sha = onnx_quantized(resolved, weights)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else \
            ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), opts, providers=providers)
        names = [o.name for o in session.get_outputs()]

        def infer(feed: dict[str, Any]) -> dict[str, Any]:
            return dict(zip(names, session.run(None, feed), strict=True))

        inputs = {i.name: list(i.shape) for i in session.get_inputs()}
        return ArrayLoaded.create(self, resolved, device, infer, inputs, path, sha, weights, session)

    def version(self) -> str:
        """The onnxruntime version and the revision of Frugal's export (:data:`EXPORT_REVISION`)."""
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}, frugal export r{EXPORT_REVISION}"

    def environment(self) -> dict[str, Any]:
        """Version and execution providers."""
        if missing("onnxruntime"):
            return {"onnxruntime": None}
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "onnxruntime_providers": self._providers()}

    def set_threads(self, n: int) -> int:
        """Intra-op threads of the sessions opened after this call."""
        self._threads = max(1, int(n))
        return self._threads


# -------------------------------------------------------------------------------- the shared Loaded
@dataclass
class ArrayLoaded(Loaded):
    """A model that maps named int64 arrays to named float arrays: logits (and a KV cache) or hidden states.

    ``infer(feed) -> {output name: array}``; ``kv``: the decoder's cache inputs (None: no cache, or an encoder).
    """

    infer: Any = None
    kv: KvLayout | None = None
    tokenizer: Any = None
    pooling: str = "mean"
    eos_ids: frozenset[int] = frozenset()
    path: Path | None = None
    sha256: str = ""
    weight_dtype: str = ""
    handle: Any = None
    n_params: int | None = None

    @classmethod
    def create(cls, backend: Backend, resolved: ResolvedModel, device: str, infer: Any,
               inputs: dict[str, Sequence[Any]], path: Path, sha: str, weights: str, handle: Any) -> ArrayLoaded:
        """Pair ``infer`` with the model's tokenizer (the torch backend's), pooling, EOS ids and cache layout."""
        from transformers import AutoTokenizer

        from evaluator.backends.llamacpp import _eos_ids
        from evaluator.backends.torch_hf import _pooling_mode

        spec = resolved.spec
        tok = AutoTokenizer.from_pretrained(resolved.location, trust_remote_code=spec.trust_remote_code)
        if spec.kind == "causal-lm" and tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        pooling = _pooling_mode(resolved.location) if spec.kind == "encoder" else "last"
        eos = _eos_ids(tok, resolved.location) if spec.kind == "causal-lm" else frozenset()
        kv = KvLayout.of(inputs)
        if spec.kind == "causal-lm" and kv is None:
            weights += " (no KV cache)"
        return cls(spec.name, spec.kind, device, backend.name, backend.serves(spec.kind), infer=infer, kv=kv,
                   tokenizer=tok, pooling=pooling, eos_ids=eos, path=path, sha256=sha, weight_dtype=weights,
                   handle=handle, n_params=_params_of(resolved.location))

    def forward(self, ids: Any, mask: Any) -> Any:
        """Logits (or hidden states) of right-padded rows: a past of length 0 where the graph has a cache."""
        import numpy as np

        feed = {"input_ids": ids, "attention_mask": mask}
        if self.kv is not None:
            feed["position_ids"] = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
            feed.update(self.kv.empty(ids.shape[0]))
        return next(iter(self.infer(feed).values()))

    def _step(self, new: Sequence[int], past: dict[str, Any], n_past: int) -> tuple[Any, dict[str, Any]]:
        """Run ``new`` tokens of one sequence on top of ``n_past`` cached ones: (last logits, the cache after)."""
        import numpy as np

        assert self.kv is not None
        n = n_past + len(new)
        feed = {"input_ids": np.asarray([new], dtype=np.int64), "attention_mask": np.ones((1, n), dtype=np.int64),
                "position_ids": np.arange(n_past, n, dtype=np.int64)[None], **past}
        out = self.infer(feed)
        cache = {name: out[name.replace("past.", "present.", 1)] for name in past}
        return out["logits"][0, -1], cache

    def prepare(self, kind: str, requests: Sequence[Any]) -> Any:
        """Tokenise (outside the measured window) exactly as the torch backend does."""
        from evaluator.backends.torch_hf import _encode, encode_requests

        if kind == LOGLIKELIHOOD:
            return encode_requests(self.tokenizer, requests)
        if kind == GENERATION:
            return [(r, tuple(_encode(self.tokenizer, r.prompt))) for r in requests]
        return list(requests)

    def _run(self, rows: Sequence[Sequence[int]]) -> Any:
        """Right-padded batch through the model: float32 array [rows, max_len, ...]."""
        import numpy as np

        n = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = np.full((len(rows), n), pad, dtype=np.int64)
        mask = np.zeros((len(rows), n), dtype=np.int64)
        for b, r in enumerate(rows):
            ids[b, :len(r)] = r
            mask[b, :len(r)] = 1
        return np.asarray(self.forward(ids, mask), dtype=np.float32)

    def loglikelihood(self, prepared: Any, batch_size: int) -> list[tuple[float, ...]]:
        """Summed log-probability of each continuation: one batch per request (context + continuation rows)."""
        from evaluator.backends.llamacpp import _finite, _log_softmax

        out = []
        for r in prepared:
            ctx = list(r.context)
            logits = self._run([ctx + list(c[:-1]) for c in r.continuations])
            row = []
            for b, c in enumerate(r.continuations):
                start = len(ctx) - 1
                logp = _log_softmax(logits[b, start:start + len(c)])
                row.append(float(sum(logp[t, tok] for t, tok in enumerate(c))))
            if not all(map(_finite, row)):
                raise NonFiniteOutputs("log-probabilities")
            out.append(tuple(row))
        return out

    def generate(self, prepared: Any, batch_size: int) -> list[Generation]:
        """Greedy continuations, one sequence at a time: the prompt once, then one token per step on the cache.

        A graph without a cache (an architecture the exporter could not trace with one) runs the whole
        sequence again for each new token.
        """
        return [self._generate_one(req, ids) for req, ids in prepared]

    def _generate_one(self, req: GenerationRequest, ids: tuple[int, ...]) -> Generation:
        if self.kv is not None:
            logits, past = self._step(ids, self.kv.empty(1), 0)

            def step(tok: int, pos: int) -> Any:
                nonlocal past
                out, past = self._step([tok], past, pos)
                return out
        else:
            seq = list(ids)
            logits = self._run([seq])[0, -1]

            def step(tok: int, pos: int) -> Any:
                seq.append(tok)
                return self._run([seq])[0, -1]
        return greedy(req, len(ids), logits, step, self.eos_ids,
                      lambda new: self.tokenizer.decode(new, skip_special_tokens=True))

    def embed(self, texts: Sequence[str], batch_size: int) -> Any:
        """Mean-pooled (or CLS), L2-normalised float32 embeddings, in input order (as torch's)."""
        import numpy as np

        tok = self.tokenizer
        max_len = min(getattr(tok, "model_max_length", 512) or 512, 512)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vecs: dict[int, Any] = {}
        for s in range(0, len(order), max(1, batch_size)):
            idx = order[s:s + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="np")
            mask = enc["attention_mask"].astype(np.int64)
            hidden = np.asarray(self.forward(enc["input_ids"].astype(np.int64), mask), dtype=np.float32)
            if self.pooling == "cls":
                vec = hidden[:, 0]
            else:
                m = mask[..., None].astype(np.float32)
                vec = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            if not np.isfinite(vec).all():
                raise NonFiniteOutputs("embeddings")
            vec = vec / np.clip(np.linalg.norm(vec, axis=-1, keepdims=True), 1e-12, None)
            for row, i in enumerate(idx):
                vecs[i] = vec[row]
        return np.stack([vecs[i] for i in range(len(texts))]).astype(np.float32) if texts else np.zeros((0, 0))

    def footprint(self) -> dict[str, Any]:
        """Parameters (of the source model), the files' size, weight format and the graph file's sha256."""
        size = None
        if self.path is not None:
            size = sum(f.stat().st_size for f in self.path.parent.iterdir() if f.is_file() and
                       not f.name.startswith("frugal-")) / 1e6
        return {"params": self.n_params, "nonzero_params": self.n_params, "size_mb": size,
                "weight_dtype": self.weight_dtype, "weights_sha256": self.sha256, "weights_file": str(self.path)}

    def close(self) -> None:
        """Drop the session / compiled model."""
        self.infer = self.handle = None


def _params_of(location: str) -> int | None:
    """Parameter count from the safetensors header(s) (no weights read)."""
    import struct

    total = 0
    files = sorted(Path(location).glob("*.safetensors"))
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total or None
