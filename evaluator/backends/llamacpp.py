"""The llama.cpp backend (llama-cpp-python): causal LMs from GGUF files, on CPU.

Weights: the model's packaged GGUF as it is (``gguf-q4``), or Q8_0 / F16 files made once from the fp32
weights (the packaged GGUF dequantized tensor by tensor into an F32 GGUF, then llama.cpp's own
``llama_model_quantize``), cached in the derived cache with their sha256 (evaluator/models.py).

Tokens are the torch backend's: the model's Hugging Face tokenizer (saved beside the safetensors at pull)
tokenises every request exactly as :func:`evaluator.backends.torch_hf.encode_requests` does
(lm-evaluation-harness's ``_encode_pair``; BOS only where the tokenizer adds one), and the token ids are
fed to llama.cpp as they are: llama.cpp's own tokenizer and its BOS default are never used, so both
backends see the same sequences. Chat prompts are rendered with the same tokenizer's chat template.

Log-likelihood: the context is decoded once (its KV cache kept), then each continuation is decoded on
top of it with logits for all positions; only continuation tokens after the first are run again.
Generation: greedy (argmax of the logits), stopping at the tokenizer's EOS ids or a stop text.
Embeddings are not served: no task embeds with a causal LM.

The llama.cpp build matters (AVX2 vs AVX-512/AMX kernels): ``environment()`` records its system info.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.backends.base import (
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

INSTALL_HINT = ("install the runtimes extra: `pip install -e '.[runtimes]'` (or `make setup`), which builds "
                "llama-cpp-python from source (about 8 min on 2 cores, cached afterwards)")
#: Context window used for every model (requests longer than this are refused, never truncated).
N_CTX = 4096
N_BATCH = 512
#: Revision of this backend's request handling, part of its version (and so of every cell key): 2 counts an
#: answer's EOS among its generated tokens, as every backend does (revision 1 did not).
REVISION = 2
#: GGUF file types made from the fp32 weights: variant weights -> (llama_ftype, label).
DERIVED_TYPES = {"q8_0": (7, "Q8_0"), "f16": (1, "F16")}


def available() -> bool:
    """Whether llama-cpp-python is installed (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppBackend(Backend):
    """llama.cpp through llama-cpp-python: GGUF causal LMs, log-likelihood and greedy generation, CPU."""

    name = "llamacpp"
    description = "llama.cpp (llama-cpp-python): GGUF causal LMs (packaged Q4, Q8_0, F16); needs extra 'runtimes'"
    capabilities = {"causal-lm": frozenset({LOGLIKELIHOOD, GENERATION})}
    devices = ("cpu",)
    needs = ("llama_cpp",)

    def __init__(self) -> None:
        self._threads = os.cpu_count() or 1

    def check(self, spec: ModelSpec, variant: Composite, device: str) -> None:
        """Refuse a missing runtime, an encoder, or a model with no GGUF source, before anything loads."""
        super().check(spec, variant, device)
        if not available():
            raise FrugalError(f"backend 'llamacpp' needs llama-cpp-python, which is not installed: {INSTALL_HINT}")
        has_gguf = (spec.offline is not None and spec.offline.format == "gguf") or (
            spec.path is not None and any(Path(spec.path).expanduser().glob("*.gguf")))
        if not has_gguf:
            raise FrugalError(f"backend 'llamacpp' needs a GGUF file and {spec.name} has none (its models.yaml "
                              f"entry has no offline GGUF source and its path holds no .gguf file)")

    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> LlamaCppLoaded:
        """Find (or make, once) the GGUF file of the variant, load it with the HF tokenizer beside it."""
        from llama_cpp import Llama
        from transformers import AutoTokenizer

        from evaluator.variants import ModelInfo

        spec = resolved.spec
        variant.check(ModelInfo(spec.name, spec.kind, device))
        path, sha, ftype = gguf_for(resolved, variant.parts[0].weights)
        tok = _tokenizer(AutoTokenizer, resolved, path)
        llm = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH, n_threads=self._threads,
                    n_threads_batch=self._threads, logits_all=False, verbose=False, seed=0)
        eos = _eos_ids(tok, resolved.location)
        return LlamaCppLoaded(spec.name, spec.kind, device, self.name, self.serves(spec.kind), llm=llm, tokenizer=tok,
                              eos_ids=eos, path=path, sha256=sha, file_type=ftype)

    def version(self) -> str:
        """llama-cpp-python's version (it pins the llama.cpp it builds)."""
        import llama_cpp

        return f"llama-cpp-python {llama_cpp.__version__}, frugal r{REVISION}"

    def environment(self) -> dict[str, Any]:
        """Version and the build's system info (which SIMD kernels it has)."""
        if not available():
            return {"llama_cpp": None}
        import llama_cpp

        info = llama_cpp.llama_print_system_info()
        return {"llama_cpp": llama_cpp.__version__,
                "llama_cpp_system_info": info.decode() if isinstance(info, bytes) else str(info)}

    def default_threads(self) -> int:
        """One per core."""
        return os.cpu_count() or 1

    def set_threads(self, n: int) -> int:
        """Threads for the models loaded after this call."""
        self._threads = max(1, int(n))
        return self._threads


def gguf_for(resolved: ResolvedModel, weights: str) -> tuple[Path, str, str]:
    """(file, sha256, GGUF type) for a variant's weights: the packaged file, or one derived once."""
    from evaluator.models import derived, gguf_file, sha256_file

    packaged = gguf_file(resolved)
    if packaged is None:
        raise FrugalError(f"model {resolved.spec.name!r}: no GGUF file in {resolved.location}; run `frugal models "
                          f"pull {resolved.spec.name}` to keep the packaged GGUF beside the safetensors")
    if weights == "packaged":
        spec = resolved.spec
        known = spec.offline.sha256.get("model.gguf") if spec.offline and resolved.origin == "cache" else None
        return packaged, known or sha256_file(packaged), gguf_type(packaged)
    ftype, label = DERIVED_TYPES[weights]

    def build(tmp: Path) -> dict[str, Any]:
        f32 = tmp / "f32.gguf.tmp"
        dequantize_gguf(packaged, f32)
        quantize_gguf(f32, tmp / f"model-{label}.gguf", ftype)
        f32.unlink()
        return {"made_with": "llama_model_quantize (llama.cpp) from the fp32 weights (packaged GGUF dequantized)",
                "gguf_type": label}

    folder, rec = derived(resolved, f"gguf-{weights}", build)
    name = f"model-{label}.gguf"
    return folder / name, rec["files"][name]["sha256"], rec.get("gguf_type", label)


def gguf_type(path: Path) -> str:
    """The GGUF file's type as llama.cpp names it (e.g. 'Q4_1', 'Q4_K_M', 'Q8_0', 'F16')."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.contents())
    try:
        return gguf.LlamaFileType(value).name.replace("MOSTLY_", "").replace("ALL_", "")
    except ValueError:
        return f"type {value}"


def dequantize_gguf(src: Path, dst: Path) -> None:
    """Write ``src`` as an F32 GGUF: same metadata and tensors, every tensor dequantized to float32."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(dst), arch=arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = 0 if field.name == "general.file_type" else field.contents()
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        data = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        shape = tuple(int(x) for x in reversed(t.shape))
        writer.add_tensor(t.name, data.reshape(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize_gguf(src: Path, dst: Path, ftype: int) -> None:
    """llama.cpp's ``llama_model_quantize`` (the library behind ``llama-quantize``)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise FrugalError(f"llama.cpp quantize of {src.name} to type {ftype} failed (code {rc})")


def _tokenizer(auto: Any, resolved: ResolvedModel, gguf: Path) -> Any:
    loc = Path(resolved.location)
    if (loc / "tokenizer.json").is_file() or (loc / "tokenizer_config.json").is_file():
        tok = auto.from_pretrained(str(loc))
    else:  # a local folder with only a GGUF: the tokenizer transformers rebuilds from it
        tok = auto.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _eos_ids(tok: Any, location: str) -> frozenset[int]:
    """EOS token ids as torch's ``generate`` uses them: generation_config.json's, else the tokenizer's."""
    import json

    ids: set[int] = set()
    cfg = Path(location) / "generation_config.json"
    if cfg.is_file():
        eos = json.loads(cfg.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    return frozenset(ids)


@dataclass
class LlamaCppLoaded(Loaded):
    """A GGUF model in llama.cpp, with the Hugging Face tokenizer that makes its token ids."""

    llm: Any = None
    tokenizer: Any = None
    eos_ids: frozenset[int] = frozenset()
    path: Path | None = None
    sha256: str = ""
    file_type: str = ""

    def prepare(self, kind: str, requests: Sequence[Any]) -> Any:
        """Tokenise (outside the measured window) exactly as the torch backend does."""
        from evaluator.backends.torch_hf import _encode, encode_requests

        if kind == LOGLIKELIHOOD:
            return encode_requests(self.tokenizer, requests)
        if kind == GENERATION:
            return [(r, tuple(_encode(self.tokenizer, r.prompt))) for r in requests]
        return list(requests)

    # ------------------------------------------------------------------------------ llama.cpp calls
    def _decode(self, tokens: Sequence[int], n_past: int, all_logits: bool) -> Any:
        """Decode ``tokens`` after the first ``n_past`` cached ones; logits of every token or of the last."""
        import numpy as np

        llm = self.llm
        if n_past + len(tokens) > N_CTX:
            raise FrugalError(f"a request of {n_past + len(tokens)} tokens exceeds llama.cpp's context of {N_CTX}")
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)  # forget whatever followed the kept prefix
        n_vocab = llm.n_vocab()
        rows = []
        for i in range(0, len(tokens), N_BATCH):
            batch = list(tokens[i:i + N_BATCH])
            llm._batch.set_batch(batch=batch, n_past=n_past, logits_all=all_logits)
            llm._ctx.decode(llm._batch)
            n_past += len(batch)
            if all_logits:
                rows.append(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch), n_vocab)).copy())
        if all_logits:
            return np.concatenate(rows) if rows else np.zeros((0, n_vocab), dtype=np.float32)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy()

    def loglikelihood(self, prepared: Any, batch_size: int) -> list[tuple[float, ...]]:
        """Summed log-probability of each continuation; the context is decoded once per request."""
        out = []
        for r in prepared:
            first = _log_softmax(self._decode(r.context, 0, all_logits=False))
            n = len(r.context)
            row = []
            for cont in r.continuations:
                ll = float(first[cont[0]])
                if len(cont) > 1:
                    logp = _log_softmax(self._decode(cont[:-1], n, all_logits=True))
                    ll += float(sum(logp[t, tok] for t, tok in enumerate(cont[1:])))
                row.append(ll)
            if not all(map(_finite, row)):
                raise NonFiniteOutputs("log-probabilities")
            out.append(tuple(row))
        return out

    def generate(self, prepared: Any, batch_size: int) -> list[Generation]:
        """Greedy continuations (argmax), stopping at EOS, a stop text or ``max_new_tokens``."""
        out = []
        for req, ids in prepared:
            out.append(self._generate_one(req, ids))
        return out

    def _generate_one(self, req: GenerationRequest, ids: tuple[int, ...]) -> Generation:
        return greedy(req, len(ids), self._decode(ids, 0, all_logits=False),
                      lambda tok, pos: self._decode([tok], pos, all_logits=False), self.eos_ids,
                      lambda new: self.tokenizer.decode(new, skip_special_tokens=True))

    def footprint(self) -> dict[str, Any]:
        """Parameters, file size, GGUF type and the file's sha256."""
        import llama_cpp

        out: dict[str, Any] = {"weight_dtype": self.file_type, "weights_sha256": self.sha256,
                               "weights_file": str(self.path)}
        try:
            out["params"] = int(llama_cpp.llama_model_n_params(self.llm._model.model))
            out["nonzero_params"] = out["params"]
            out["size_mb"] = self.path.stat().st_size / 1e6 if self.path else None
        except Exception as exc:  # noqa: BLE001 - footprint is informative, never fatal
            out["footprint_error"] = str(exc)
        return out

    def close(self) -> None:
        """Free llama.cpp's model and context."""
        if self.llm is not None:
            self.llm.close()
            self.llm = None


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
