"""The ONNX export of a causal LM with its KV cache (evaluator/backends/onnxrt.py), on a tiny random Llama.

The cache is what makes ONNX Runtime and OpenVINO generation one token per step instead of the whole
sequence again, so its arithmetic is checked directly: a prompt then one token on the cache must give the
logits of the whole sequence at once (and torch's), greedy text must not depend on whether the graph has a
cache, and an architecture the exporter cannot trace with its cache falls back to the plain graph, says so,
and still generates the same text. Real models are checked against torch in tests/test_backends_runtimes.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from evaluator.backends import GenerationRequest, backend_availability

pytestmark = pytest.mark.skipif(backend_availability("onnxruntime") is not None, reason="onnxruntime missing")


class _Tok:
    """Token ids as text ("t5 t9"): enough for greedy decoding and stop texts."""

    pad_token_id = 0

    @staticmethod
    def decode(ids, skip_special_tokens=True):
        return " ".join(f"t{i}" for i in ids)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    spec = SimpleNamespace(name="tiny", kind="causal-lm", trust_remote_code=False, allow_pickle=False)
    return SimpleNamespace(model=model, resolved=SimpleNamespace(spec=spec, location=str(folder)), folder=folder)


def _loaded(path):
    import onnxruntime as ort

    from evaluator.backends.onnxrt import ArrayLoaded, KvLayout

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def infer(feed):
        return dict(zip(names, session.run(None, feed), strict=True))

    kv = KvLayout.of({i.name: list(i.shape) for i in session.get_inputs()})
    return ArrayLoaded("tiny", "causal-lm", "cpu", "onnxruntime", infer=infer, kv=kv, tokenizer=_Tok())


def _export(tiny, tmp_path, name):
    from evaluator.backends.onnxrt import export_onnx

    out = tmp_path / name / "model.onnx"
    out.parent.mkdir()
    return out, export_onnx(tiny.resolved, out)


@pytest.fixture(scope="module")
def with_cache(tiny, tmp_path_factory):
    out, info = _export(tiny, tmp_path_factory.mktemp("kv"), "kv")
    return out, info


def test_a_prompt_then_tokens_on_the_cache_give_the_whole_sequences_logits(tiny, with_cache):
    import torch

    path, info = with_cache
    assert info == {"kv_cache": True, "kv_layers": 2}
    loaded = _loaded(path)
    assert (loaded.kv.layers, loaded.kv.kv_heads, loaded.kv.head_dim) == (2, 2, 8)
    seq = [5, 17, 3, 42, 8, 11, 29]
    logits, past = loaded._step(seq[:4], loaded.kv.empty(1), 0)
    assert past["past.0.key"].shape == (1, 2, 4, 8)
    for n in range(4, len(seq)):  # one token at a time on the cache
        logits, past = loaded._step([seq[n]], past, n)
    assert past["past.1.value"].shape == (1, 2, len(seq), 8)
    whole = loaded.forward(np.asarray([seq], dtype=np.int64), np.ones((1, len(seq)), dtype=np.int64))
    with torch.no_grad():
        ref = tiny.model(torch.tensor([seq])).logits.numpy()
    np.testing.assert_allclose(logits, whole[0, -1], atol=1e-5)
    np.testing.assert_allclose(whole, ref, atol=1e-5)


def test_right_padded_rows_score_as_if_each_ran_alone(with_cache):
    loaded = _loaded(with_cache[0])
    a, b = [5, 17, 3], [9, 2, 40, 33, 7]
    both = loaded._run([a, b])
    np.testing.assert_allclose(both[0, :3], loaded._run([a])[0], atol=1e-5)
    np.testing.assert_allclose(both[1], loaded._run([b])[0], atol=1e-5)


def test_without_a_traceable_cache_the_plain_graph_is_exported_said_and_generates_the_same(tiny, with_cache,
                                                                                            tmp_path, monkeypatch):
    import evaluator.backends.onnxrt as onnxrt

    def untraceable(model, out):
        (out.parent / "model.onnx.data").write_bytes(b"half an export")  # left behind: must be cleared
        raise RuntimeError("this architecture's cache does not trace")

    monkeypatch.setattr(onnxrt, "_export_with_past", untraceable)
    path, info = _export(tiny, tmp_path, "plain")
    assert info["kv_cache"] is False and "does not trace" in info["kv_cache_error"]
    data = path.parent / "model.onnx.data"
    assert not data.exists() or data.read_bytes() != b"half an export"
    plain, cached = _loaded(path), _loaded(with_cache[0])
    assert plain.kv is None and cached.kv is not None
    reqs = [([5, 17, 3], GenerationRequest("", 6)), ([9, 2, 40, 33], GenerationRequest("", 6, stop=("t9",)))]
    prepared = [(r, tuple(ids)) for ids, r in reqs]
    got_plain, got_cached = plain.generate(prepared, 1), cached.generate(prepared, 1)
    assert [(g.text, g.generated_tokens, g.stop_reason) for g in got_plain] == \
        [(g.text, g.generated_tokens, g.stop_reason) for g in got_cached]
    assert got_cached[0].generated_tokens == 6 and got_cached[0].stop_reason == "length"
    assert all(g.prompt_tokens == len(ids) for g, (ids, _r) in zip(got_cached, reqs, strict=True))
