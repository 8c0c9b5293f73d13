"""The ONNX Runtime backend: encoders and causal LMs exported once to ONNX, fp32, dynamic int8 or int4 weights.

Export: the fp32 safetensors model, wrapped as ``(input_ids, attention_mask) -> logits`` (causal LMs, every
position, no KV cache) or ``-> last_hidden_state`` (encoders), goes through ``torch.onnx.export`` (the
dynamo exporter; onnxscript) once into the derived cache (evaluator/models.py ``derived``), with sha256.
optimum-onnx is not used: every release of it pins transformers < 4.58, and Frugal runs transformers 5.
int8: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; activations quantized per batch at run
time: fast with VNNI, AVX2 u8s8 kernels otherwise). int4: ``MatMulNBitsQuantizer`` (block 32, symmetric;
causal LMs).

Requests: tokenised with the model's Hugging Face tokenizer exactly as the torch backend does
(:func:`evaluator.backends.torch_hf.encode_requests`), so token ids match torch's. Log-likelihood: one
right-padded batch per request, context + continuation (all but its last token) per row; generation:
greedy, the whole sequence run again for each new token (the export has no KV cache, so decode speed here
is not the runtime's best: see docs/benchmarks.md). Embeddings: mean-pooled (or CLS), L2-normalised,
as torch's. :class:`ArrayLoaded` holds this logic for any runtime that maps int64 arrays to float arrays
(OpenVINO reuses it).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.backends.base import EMBEDDING, GENERATION, LOGLIKELIHOOD, Backend, Generation, Loaded
from evaluator.errors import FrugalError
from evaluator.failures import NonFiniteOutputs

if TYPE_CHECKING:
    from evaluator.models import ModelSpec, ResolvedModel
    from evaluator.variants import Composite

INSTALL_HINT = "install the runtimes extra: `pip install -e '.[runtimes]'` (or `make setup`)"
#: The exported graph's names.
INPUTS = ("input_ids", "attention_mask")
OPSET = 18


def missing(*modules: str) -> list[str]:
    """Which of ``modules`` are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


# ------------------------------------------------------------------------------------------- export
def onnx_fp32(resolved: ResolvedModel) -> Path:
    """The fp32 ONNX export of a model (made once; ``model.onnx`` + external weights)."""
    from evaluator.models import derived

    def build(tmp: Path) -> dict[str, Any]:
        export_onnx(resolved, tmp / "model.onnx")
        return {"made_with": "torch.onnx.export (dynamo) of the fp32 safetensors weights", "opset": OPSET}

    folder, _rec = derived(resolved, "onnx-fp32", build)
    return folder / "model.onnx"


def onnx_quantized(resolved: ResolvedModel, weights: str) -> tuple[Path, str]:
    """(path, sha256 of the graph file) of the ONNX model for ``weights`` in fp32 / int8 / int4."""
    from evaluator.models import derived

    src = onnx_fp32(resolved)
    if weights == "fp32":
        folder, rec = derived(resolved, "onnx-fp32", lambda _t: {})
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

    folder, rec = derived(resolved, f"onnx-{weights}", build)
    return folder / "model.onnx", rec["files"]["model.onnx"]["sha256"]


def export_onnx(resolved: ResolvedModel, out: Path) -> None:
    """Export the fp32 model as ``(input_ids, attention_mask) -> logits | last_hidden_state``."""
    import warnings

    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    spec = resolved.spec
    cls = AutoModelForCausalLM if spec.kind == "causal-lm" else AutoModel
    kwargs: dict[str, Any] = {"dtype": torch.float32, "trust_remote_code": spec.trust_remote_code}
    if not spec.allow_pickle:
        kwargs["use_safetensors"] = True
    model = cls.from_pretrained(resolved.location, **kwargs).eval()
    causal = spec.kind == "causal-lm"

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

        def forward(ids: Any, mask: Any) -> Any:
            return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        return ArrayLoaded.create(self, resolved, device, forward, path, sha, weights, session)

    def version(self) -> str:
        """The onnxruntime version."""
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}"

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
    """A model that maps (input_ids, attention_mask) int64 arrays to logits or hidden states."""

    forward: Any = None
    tokenizer: Any = None
    pooling: str = "mean"
    eos_ids: frozenset[int] = frozenset()
    path: Path | None = None
    sha256: str = ""
    weight_dtype: str = ""
    handle: Any = None
    n_params: int | None = None

    @classmethod
    def create(cls, backend: Backend, resolved: ResolvedModel, device: str, forward: Any, path: Path, sha: str,
               weights: str, handle: Any) -> ArrayLoaded:
        """Pair ``forward`` with the model's tokenizer (the torch backend's), pooling and EOS ids."""
        from transformers import AutoTokenizer

        from evaluator.backends.llamacpp import _eos_ids
        from evaluator.backends.torch_hf import _pooling_mode

        spec = resolved.spec
        tok = AutoTokenizer.from_pretrained(resolved.location, trust_remote_code=spec.trust_remote_code)
        if spec.kind == "causal-lm" and tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        pooling = _pooling_mode(resolved.location) if spec.kind == "encoder" else "last"
        eos = _eos_ids(tok, resolved.location) if spec.kind == "causal-lm" else frozenset()
        return cls(spec.name, spec.kind, device, backend.name, backend.serves(spec.kind), forward=forward,
                   tokenizer=tok, pooling=pooling, eos_ids=eos, path=path, sha256=sha, weight_dtype=weights,
                   handle=handle, n_params=_params_of(resolved.location))

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
        """Greedy continuations; the export has no KV cache, so each new token runs the whole sequence."""
        out = []
        for req, ids in prepared:
            seq, new, reason = list(ids), [], "length"
            while len(new) < req.max_new_tokens:
                tok = int(self._run([seq])[0, len(seq) - 1].argmax())
                if tok in self.eos_ids:
                    reason = "eos"
                    break
                new.append(tok)
                seq.append(tok)
                if req.stop and any(s in self.tokenizer.decode(new, skip_special_tokens=True) for s in req.stop):
                    reason = "stop"
                    break
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if reason == "stop":
                text = text[:min(text.find(s) for s in req.stop if s in text)]
            out.append(Generation(text, len(ids), len(new), reason))
        return out

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
        self.forward = self.handle = None


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
