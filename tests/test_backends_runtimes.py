"""The deployment runtimes (llama.cpp, ONNX Runtime, OpenVINO) agree with torch fp32 on real models and items.

smollm2-135m's fp32 weights are its packaged Q4_1 GGUF dequantized, so llama.cpp on that very file
(``gguf-q4``) computes with the same weights; it differs only in arithmetic (llama.cpp quantizes activations
to 8 bits inside its Q4_1 dot products). ONNX Runtime and OpenVINO fp32 run the exported fp32 graph.
Requests are built by the real task types from the built-in suites; generations use GenerationRequest
directly (backend level). Agreement rates are printed (pytest -s) for docs/benchmarks.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluator.backends import GENERATION, GenerationRequest, backend_availability, get_backend
from evaluator.errors import FrugalError
from evaluator.models import resolve
from evaluator.suite import load_suite
from evaluator.tasks import ScoringOptions, get_task_type
from evaluator.variants import ModelInfo, resolve_variant

N_ITEMS = 30  # per task, two tasks (classification + multiple choice): 60 items
#: Summed log-likelihoods, llama.cpp Q4_1 vs torch fp32 on the same dequantized weights: the largest per-item
#: difference measured was 0.57 nats on choices of -4 to -40 nats (llama.cpp rounds activations to 8 bits
#: (Q8_1) inside its Q4_1 dot products; its Q8_0 file, from the same weights, agrees on 100 %). 0.75 nats
#: absolute or 5 % relative leaves room and still catches a BOS or tokenisation mismatch (several nats).
#: Predictions: 57 of 60 agree (95.0 %, 2026-12-01); the 3 that flip were near-ties in torch (its two best
#: choices within 0.03-0.09 nats), so every flip must be a near-tie (within the tolerance) as well.
GGUF_Q4_ATOL, GGUF_Q4_RTOL = 0.75, 0.05
#: fp32 graphs run the same arithmetic in another order: float32 rounding over 30 layers.
FP32_ATOL = 2e-3

#: The first use of a runtime variant builds its files once (ONNX export of smollm2: about 2-3 min on 2 idle
#: cores, 8 min on a loaded machine); later runs find them in FRUGAL_HOME/derived.
pytestmark = pytest.mark.timeout(1200)

needs_llama = pytest.mark.skipif(backend_availability("llamacpp") is not None, reason="llama-cpp-python missing")
needs_ort = pytest.mark.skipif(backend_availability("onnxruntime") is not None, reason="onnxruntime missing")
needs_ov = pytest.mark.skipif(backend_availability("openvino") is not None, reason="openvino missing")


def _load(spec, variant_name):
    variant = resolve_variant(variant_name)
    backend = get_backend(variant.backend)
    backend.set_threads(2)
    backend.check(spec, variant, "cpu")
    return backend.load(resolve(spec), variant, "cpu")


@pytest.fixture(scope="module")
def lm_tasks(pulled):
    suite = load_suite("finance")
    return [t for t in suite.tasks if t.type in ("classification", "multiple_choice")]


def _scores(loaded, tasks):
    out = []
    for t in tasks:
        items = t.select(N_ITEMS)
        out += get_task_type(t.type).prepare(t, items, loaded, ScoringOptions(8, "auto")).run()
    return out


@pytest.fixture(scope="module")
def torch_lm(pulled):
    loaded = _load(pulled["smollm2-135m"], "fp32")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def torch_scores(torch_lm, lm_tasks):
    return _scores(torch_lm, lm_tasks)


def _compare(ref, got, atol, rtol=0.0):
    agree = sum(a.pred == b.pred for a, b in zip(ref, got, strict=True)) / len(ref)
    worst = max(abs(x - y) for a, b in zip(ref, got, strict=True) for x, y in zip(a.scores, b.scores, strict=True))
    bad = [(a.item_id, x, y) for a, b in zip(ref, got, strict=True) for x, y in zip(a.scores, b.scores, strict=True)
           if not math.isclose(x, y, abs_tol=atol, rel_tol=rtol)]
    return agree, worst, bad


# ------------------------------------------------------------------------------------------ log-likelihood
@needs_llama
def test_gguf_q4_log_likelihoods_agree_with_torch_fp32_on_the_same_weights(pulled, lm_tasks, torch_scores):
    loaded = _load(pulled["smollm2-135m"], "gguf-q4")
    try:
        got = _scores(loaded, lm_tasks)
        fp = loaded.footprint()
    finally:
        loaded.close()
    agree, worst, bad = _compare(torch_scores, got, GGUF_Q4_ATOL, GGUF_Q4_RTOL)
    print(f"\ngguf-q4 vs torch fp32: predictions agree on {agree:.1%} of {len(got)} items, "
          f"largest log-likelihood difference {worst:.3f} nats")
    assert agree >= 0.95
    assert not bad, bad[:5]
    for a, b in zip(torch_scores, got, strict=True):
        if a.pred != b.pred:  # only a near-tie may flip: torch's two best choices within the noise
            top = sorted(a.scores, reverse=True)
            assert top[0] - top[1] < GGUF_Q4_ATOL, (a.item_id, a.scores, b.scores)
    assert fp["weight_dtype"] == "Q4_1"
    assert fp["weights_sha256"] == pulled["smollm2-135m"].offline.sha256["model.gguf"]


@needs_ort
def test_ort_fp32_log_likelihoods_match_torch_fp32_to_float_tolerance(pulled, lm_tasks, torch_scores):
    loaded = _load(pulled["smollm2-135m"], "ort-fp32")
    try:
        got = _scores(loaded, lm_tasks)
    finally:
        loaded.close()
    agree, worst, bad = _compare(torch_scores, got, FP32_ATOL)
    print(f"\nort-fp32 vs torch fp32: agree {agree:.1%}, largest difference {worst:.2e} nats")
    assert agree == 1.0
    assert not bad, bad[:5]


@pytest.mark.slow  # converts the ONNX export to OpenVINO IR (minutes on 2 cores)
@needs_ov
def test_openvino_fp32_log_likelihoods_match_torch_fp32_to_float_tolerance(pulled, lm_tasks, torch_scores):
    loaded = _load(pulled["smollm2-135m"], "ov-fp32")
    try:
        got = _scores(loaded, lm_tasks)
    finally:
        loaded.close()
    agree, worst, bad = _compare(torch_scores, got, FP32_ATOL)
    print(f"\nov-fp32 vs torch fp32: agree {agree:.1%}, largest difference {worst:.2e} nats")
    assert agree == 1.0
    assert not bad, bad[:5]


@pytest.mark.parametrize("variant", [
    pytest.param("gguf-q8_0", marks=needs_llama), pytest.param("ort-int8", marks=[needs_ort, pytest.mark.slow]),
    pytest.param("ov-int8", marks=[needs_ov, pytest.mark.slow]), pytest.param("ov-int4", marks=[needs_ov,
                                                                                                 pytest.mark.slow]),
    pytest.param("ort-int4", marks=[needs_ort, pytest.mark.slow])])
def test_quantized_runtimes_report_their_agreement_with_torch_fp32(pulled, lm_tasks, torch_scores, variant):
    loaded = _load(pulled["smollm2-135m"], variant)
    try:
        got = _scores(loaded, lm_tasks)
        fp = loaded.footprint()
    finally:
        loaded.close()
    agree, worst, _bad = _compare(torch_scores, got, 0)
    print(f"\n{variant} vs torch fp32: predictions agree on {agree:.1%} of {len(got)} items, largest "
          f"log-likelihood difference {worst:.3f} nats; {fp.get('weight_dtype')}, {fp.get('size_mb'):.0f} MB")
    assert all(math.isfinite(s) for it in got for s in it.scores)
    assert agree >= 0.6  # far above chance: a broken export or quantization scores like noise
    assert len(fp["weights_sha256"]) == 64


# ---------------------------------------------------------------------------------------------- generation
PROMPTS = ["What is the capital of France?", "Name three primary colours.", "What is 12 plus 30?",
           "Write one sentence about the sea.", "What does a thermometer measure?",
           "Give a synonym for 'happy'.", "What is the opposite of 'cold'?", "How many days are in a week?",
           "What colour is the sky on a clear day?", "Say hello in French."]
MAX_NEW = 24


def _requests(loaded):
    return [GenerationRequest(loaded.render_chat([{"role": "user", "content": p}]), MAX_NEW) for p in PROMPTS]


def _torch_greedy(tl, requests):
    """torch fp32's greedy text: the backend's own generate when it has one, else transformers' generate."""
    from evaluator.backends import Unsupported

    try:
        return [(g.text, g.generated_tokens, g.stop_reason) for g in tl.generate(tl.prepare(GENERATION, requests), 4)]
    except Unsupported:
        pass
    import torch

    from evaluator.backends.llamacpp import _eos_ids
    from evaluator.backends.torch_hf import _encode

    tok = tl.tokenizer
    eos = sorted(_eos_ids(tok, tl.model.name_or_path))
    out = []
    with torch.inference_mode():
        for r in requests:
            ids = torch.tensor([_encode(tok, r.prompt)])
            gen = tl.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=r.max_new_tokens,
                                    do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id)
            new = [t for t in gen[0, ids.shape[1]:].tolist() if t not in eos]
            ended = len(new) < gen.shape[1] - ids.shape[1]  # an EOS ended it (computed, so counted)
            out.append((tok.decode(new, skip_special_tokens=True), len(new) + ended, "eos" if ended else "length"))
    return out


@pytest.fixture(scope="module")
def torch_texts(torch_lm):
    return _torch_greedy(torch_lm, _requests(torch_lm))


@pytest.mark.parametrize("variant,minimum", [
    pytest.param("gguf-f16", 0.9, marks=needs_llama),
    pytest.param("ort-fp32", 0.9, marks=needs_ort),  # on the KV cache: seconds (the export is the log-lik test's)
    pytest.param("ov-fp32", 0.9, marks=[needs_ov, pytest.mark.slow]), pytest.param("gguf-q4", 0.0, marks=needs_llama),
    pytest.param("gguf-q8_0", 0.0, marks=needs_llama),
    pytest.param("ov-int8", 0.0, marks=[needs_ov, pytest.mark.slow])])
def test_greedy_generations_match_torch_fp32(pulled, torch_texts, variant, minimum):
    loaded = _load(pulled["smollm2-135m"], variant)
    try:
        reqs = _requests(loaded)
        gens = loaded.generate(loaded.prepare(GENERATION, reqs), 4)
    finally:
        loaded.close()
    same = sum(g.text == t for g, (t, _n, _r) in zip(gens, torch_texts, strict=True)) / len(gens)
    print(f"\n{variant}: greedy text identical to torch fp32 on {same:.0%} of {len(gens)} prompts")
    # Token counts follow one convention on every backend (an answer's EOS was computed, so it counts):
    # per-token energy and decode speed compare like with like.
    for g, (t, n, reason) in zip(gens, torch_texts, strict=True):
        if g.text == t:
            assert (g.generated_tokens, g.stop_reason) == (n, reason), (variant, t)
    assert all(g.generated_tokens <= MAX_NEW and g.stop_reason in ("eos", "stop", "length") for g in gens)
    assert all(g.text for g in gens)
    assert same >= minimum


@needs_llama
def test_generation_stops_at_a_stop_text_and_cuts_it_off(pulled):
    loaded = _load(pulled["smollm2-135m"], "gguf-q4")
    try:
        prompt = loaded.render_chat([{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
        [g] = loaded.generate(loaded.prepare(GENERATION, [GenerationRequest(prompt, 40, stop=("5",))]), 1)
    finally:
        loaded.close()
    assert g.stop_reason == "stop" and "5" not in g.text


# ------------------------------------------------------------------------------------------------ encoders
@pytest.fixture(scope="module")
def torch_embeddings(pulled):
    task = load_suite("finance").tasks[0]
    texts = [task.render_encoder_input(it) for it in task.select(24)]
    loaded = _load(pulled["minilm-l6"], "fp32")
    try:
        return texts, np.asarray(loaded.embed(texts, 8))
    finally:
        loaded.close()


@pytest.mark.parametrize("variant,min_cos", [
    pytest.param("ort-fp32", 0.99999, marks=needs_ort), pytest.param("ov-fp32", 0.99999, marks=needs_ov),
    pytest.param("ort-int8", 0.95, marks=[needs_ort, pytest.mark.slow]),
    pytest.param("ov-int8", 0.99, marks=[needs_ov, pytest.mark.slow])])
def test_encoder_embeddings_match_torch(pulled, torch_embeddings, variant, min_cos):
    texts, ref = torch_embeddings
    loaded = _load(pulled["minilm-l6"], variant)
    try:
        got = np.asarray(loaded.embed(texts, 8))
    finally:
        loaded.close()
    cos = (got * ref).sum(-1)
    print(f"\nminilm-l6 {variant}: cosine to torch fp32 min {cos.min():.6f}, mean {cos.mean():.6f}")
    assert got.shape == ref.shape
    assert cos.min() >= min_cos


# --------------------------------------------------------------------------------------- refusals, listing
def test_pairs_that_cannot_work_are_refused_before_loading_with_a_reason(pulled):
    from evaluator.models import ModelSpec

    gguf = resolve_variant("gguf-q4")
    with pytest.raises(FrugalError, match="encoder models are not supported"):
        get_backend("llamacpp").check(pulled["minilm-l6"], gguf, "cpu")
    if backend_availability("llamacpp") is None:
        hub_only = ModelSpec(name="hub-lm", kind="causal-lm", hub="someone/some-lm")
        with pytest.raises(FrugalError, match="needs a GGUF file"):
            get_backend("llamacpp").check(hub_only, gguf, "cpu")
    with pytest.raises(FrugalError, match="runs on cpu"):
        get_backend("openvino").check(pulled["minilm-l6"], resolve_variant("ov-fp32"), "cuda")
    with pytest.raises(FrugalError, match="applies to causal-lm"):
        resolve_variant("ov-int4").check(ModelInfo("minilm-l6", "encoder", "cpu"))
    with pytest.raises(FrugalError, match="different backends"):
        resolve_variant("gguf-q4+prune-structured-25")


def test_a_missing_runtime_is_refused_with_the_extra_to_install(pulled, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (
        "llama_cpp", "onnxruntime", "openvino") else real(name, *a))
    for variant in ("gguf-q4", "ort-fp32", "ov-fp32"):
        v = resolve_variant(variant)
        with pytest.raises(FrugalError, match=r"\.\[runtimes\]"):
            get_backend(v.backend).check(pulled["smollm2-135m"], v, "cpu")
    assert "not installed" in backend_availability("llamacpp")


def test_list_variants_groups_by_backend_and_says_what_is_available(capsys):
    from evaluator.cli import main

    assert main(["list", "variants"]) == 0
    out = capsys.readouterr().out
    for backend in ("torch", "llamacpp", "onnxruntime", "openvino"):
        assert f"backend {backend}:" in out
    assert "available here" in out
    assert out.index("backend llamacpp:") < out.index("gguf-q8_0") < out.index("backend onnxruntime:")
