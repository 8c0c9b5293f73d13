"""Issue 17: nothing run that the user did not ask for, nothing read that changed, nothing printed that lies.

Registries are explicit (the working directory is never searched), printed, and entries that shadow a
built-in name or run code are warned about; cached weights are checked on every resolve and hashed by
`frugal models verify`; control characters never reach the terminal or summary.md raw; results.csv holds no
formula; a hand-edited results.json is a clear error. Real files, a real pull into a temporary cache, the
real CLI (in-process ``main`` and, where the process matters, a subprocess).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _synthetic import cell, edit_json, result, results_json, two_models

from evaluator.cli import main as frugal
from evaluator.errors import ModelTampered, ValidationError
from evaluator.models import (
    FILES_KEY,
    MANIFEST,
    default_registry_path,
    load_registry,
    packaged_registry_path,
    pull,
    resolve,
    verify,
)

ROOT = Path(__file__).resolve().parent.parent
ESC = "\x1b"


def _hostile_registry(folder: Path, model_dir: Path, trust: bool = True) -> Path:
    reg = folder / "models.yaml"
    reg.write_text("models:\n  - name: minilm-l6\n    kind: encoder\n    hub: none/none\n"
                   f"    path: {model_dir}\n" + ("    trust_remote_code: true\n" if trust else ""))
    return reg


# ------------------------------------------------------------------------------------- registry
def test_a_models_yaml_in_the_working_directory_is_never_read(tmp_path, monkeypatch, capsys):
    """A cloned folder's models.yaml shadowing minilm-l6 with trust_remote_code is not picked up by cwd."""
    evil = tmp_path / "evil-model"
    evil.mkdir()
    (evil / "modeling_evil.py").write_text("raise SystemExit('pwned')\n")
    _hostile_registry(tmp_path, evil)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FRUGAL_MODELS", raising=False)
    assert default_registry_path() == packaged_registry_path()
    assert frugal(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"registry: {packaged_registry_path()} (packaged default)" in out
    assert str(evil) not in out


def test_the_registry_order_is_models_file_then_env_then_packaged(tmp_path, monkeypatch):
    from evaluator.models import registry_source

    mine, env = tmp_path / "mine.yaml", tmp_path / "env.yaml"
    monkeypatch.delenv("FRUGAL_MODELS", raising=False)
    assert registry_source(None) == (packaged_registry_path(), "packaged default")
    monkeypatch.setenv("FRUGAL_MODELS", str(env))
    assert registry_source(None) == (env, "FRUGAL_MODELS")
    assert registry_source(str(mine)) == (mine, "--models-file")
    assert default_registry_path() == env


def test_run_prints_the_registry_and_warns_loudly_about_shadowing_and_remote_code(tmp_path, capsys):
    """`frugal run` names the registry first; a shadowing trust_remote_code entry is a WARNING (then --out,
    an existing file, stops the run before any cell: nothing is loaded)."""
    model = tmp_path / "m"
    model.mkdir()
    reg = _hostile_registry(tmp_path, model)
    out = tmp_path / "out-is-a-file"
    out.write_text("keep me")
    code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--variant", "fp32", "--models-file",
                   str(reg), "--store", str(tmp_path / "s.sqlite"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"registry: {reg} (--models-file)" in err.splitlines()[0]
    assert "WARNING" in err and "shadows the built-in model" in err and "trust_remote_code" in err
    assert "is a file, not a folder" in err and out.read_text() == "keep me"
    assert not (tmp_path / "s.sqlite").exists()


def test_trust_remote_code_is_refused_in_a_registry_nobody_named(tmp_path, monkeypatch):
    reg = _hostile_registry(tmp_path, tmp_path)
    with pytest.raises(ValidationError) as info:
        load_registry(reg, named=False)
    assert info.value.field == "trust_remote_code" and "--models-file" in str(info.value)
    assert load_registry(reg, named=True)["minilm-l6"].trust_remote_code
    monkeypatch.delenv("FRUGAL_MODELS", raising=False)
    assert load_registry(reg)["minilm-l6"].trust_remote_code  # a file given by path is named
    assert not any(s.trust_remote_code for s in load_registry(packaged_registry_path()).values())


def test_registry_warnings_name_shadowing_pickle_and_remote_code(tmp_path):
    from evaluator.models import registry_warnings, shadowed_builtins

    reg = tmp_path / "r.yaml"
    reg.write_text("models:\n  - name: minilm-l6\n    kind: encoder\n    path: /x\n    allow_pickle: true\n"
                   "  - name: mine\n    kind: encoder\n    path: /y\n    trust_remote_code: true\n")
    loaded = load_registry(reg)
    assert shadowed_builtins(loaded, reg) == ["minilm-l6"]
    notes = registry_warnings(loaded, reg)
    assert any("'minilm-l6' shadows" in n for n in notes)
    assert any("'minilm-l6' sets allow_pickle" in n for n in notes)
    assert any("'mine' sets trust_remote_code" in n for n in notes)
    assert registry_warnings(load_registry(packaged_registry_path()), packaged_registry_path()) == []


# -------------------------------------------------------------------------------- cached weights
@pytest.fixture(scope="module")
def cache_home(tmp_path_factory, pulled):
    """A private model cache holding a fresh pull of minilm-l6 (never the shared one)."""
    home = tmp_path_factory.mktemp("home")
    pull(pulled["minilm-l6"], home=home)
    return home


@pytest.fixture
def home(cache_home, tmp_path):
    """A copy of the private cache per test, so a test may damage it."""
    h = tmp_path / "home"
    shutil.copytree(cache_home, h, symlinks=True, copy_function=shutil.copy2)
    return h


def _overwrite_a_tensor(weights: Path, keep_times: bool = True) -> None:
    st = weights.stat()
    with open(weights, "r+b") as fh:
        fh.seek(st.st_size // 2)
        fh.write(b"\x00" * 64)
    if keep_times:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # the attacker restores size and mtime


def test_pull_records_size_times_and_sha256_of_every_file(home, pulled):
    meta = json.loads((home / "models" / "minilm-l6" / MANIFEST).read_text())
    files = meta[FILES_KEY]
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert files["model.safetensors"]["sha256"] == pulled["minilm-l6"].offline.sha256["model.safetensors"]
    assert {"size", "mtime_ns", "ctime_ns", "sha256"} <= set(files["model.safetensors"])


@pytest.mark.parametrize("keep_times", [True, False], ids=["mtime-restored", "mtime-changed"])
def test_an_overwritten_tensor_in_the_cache_is_refused(home, pulled, keep_times):
    spec = pulled["minilm-l6"]
    before = resolve(spec, home)
    _overwrite_a_tensor(home / "models" / "minilm-l6" / "model.safetensors", keep_times)
    with pytest.raises(ModelTampered) as info:
        resolve(spec, home)
    msg = str(info.value)
    assert "model.safetensors" in msg and "frugal models pull minilm-l6 --force" in msg
    pull(spec, home=home, force=True)
    assert resolve(spec, home).fingerprint == before.fingerprint


def test_a_touched_but_unchanged_file_is_rehashed_once_and_accepted(home, pulled):
    spec = pulled["minilm-l6"]
    weights = home / "models" / "minilm-l6" / "model.safetensors"
    os.utime(weights, None)
    fp = resolve(spec, home).fingerprint  # hashed again, equal, recorded
    rec = json.loads((weights.parent / MANIFEST).read_text())[FILES_KEY]["model.safetensors"]
    assert rec["mtime_ns"] == weights.stat().st_mtime_ns
    assert resolve(spec, home).fingerprint == fp


def test_added_missing_and_linked_files_are_refused(home, pulled):
    spec = pulled["minilm-l6"]
    cdir = home / "models" / "minilm-l6"
    (cdir / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelTampered, match="pytorch_model.bin was added"):
        resolve(spec, home)
    (cdir / "pytorch_model.bin").unlink()
    (cdir / "vocab.txt").rename(cdir / "vocab.bak")
    with pytest.raises(ModelTampered, match="vocab"):
        resolve(spec, home)
    (cdir / "vocab.bak").rename(cdir / "vocab.txt")
    (cdir / "tokenizer.json").unlink()
    (cdir / "tokenizer.json").symlink_to(cdir / "vocab.txt")
    with pytest.raises(ModelTampered, match="symbolic link"):
        resolve(spec, home)


def test_a_cache_pulled_before_the_manifest_recorded_files_is_checked_then_recorded(home, pulled):
    spec = pulled["minilm-l6"]
    manifest = home / "models" / "minilm-l6" / MANIFEST
    old = json.loads(manifest.read_text())
    old.pop(FILES_KEY)
    manifest.write_text(json.dumps(old))
    assert resolve(spec, home).origin == "cache"
    assert FILES_KEY in json.loads(manifest.read_text())
    old_tampered = home / "models" / "minilm-l6" / "model.safetensors"
    manifest.write_text(json.dumps(old))
    _overwrite_a_tensor(old_tampered)
    with pytest.raises(ModelTampered, match="weights' sha256 differs"):
        resolve(spec, home)


def test_models_verify_hashes_everything_and_exits_2_on_a_mismatch(home, pulled, monkeypatch, capsys):
    monkeypatch.setenv("FRUGAL_HOME", str(home))
    assert frugal(["models", "verify", "minilm-l6"]) == 0
    assert "minilm-l6: ok, " in capsys.readouterr().out
    assert verify(pulled["minilm-l6"], home).hashed == verify(pulled["minilm-l6"], home).files
    _overwrite_a_tensor(home / "models" / "minilm-l6" / "model.safetensors")
    assert frugal(["models", "verify"]) == 2
    err = capsys.readouterr().err
    assert "minilm-l6: MODIFIED" in err and "--force" in err and "Traceback" not in err
    assert frugal(["models", "list"]) == 0
    assert "MODIFIED" in capsys.readouterr().out


def test_a_run_on_a_tampered_cache_fails_its_cells_and_reuses_nothing(home, tmp_path):
    """Through the real CLI in a subprocess: the cells fail with the fix, none is reused from the store."""
    _overwrite_a_tensor(home / "models" / "minilm-l6" / "model.safetensors")
    env = {**os.environ, "FRUGAL_HOME": str(home), "FRUGAL_MODELS": str(ROOT / "models.yaml")}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "evaluator.cli", "run", "--suite", "finance", "--model",
                           "minilm-l6", "--variant", "fp32", "--limit", "2", "--repeats", "1", "--meter", "estimate",
                           "--store", str(tmp_path / "s.sqlite"), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert cells and all(c["status"] == "failed" and "pull minilm-l6 --force" in c["error"] for c in cells)
    assert not any(c.get("reused") for c in cells)


# ------------------------------------------------------------------------------------ injection
HOSTILE = f"x{ESC}[2K\r{ESC}]0;t\x07all gates passed\u202e\x9b"


def test_control_characters_never_reach_the_terminal(tmp_path, capfd):
    a = results_json(tmp_path / "a.json", result([cell(HOSTILE, task="t1"), cell("b", task="t1")]))
    b = results_json(tmp_path / "b.json", result([cell(HOSTILE, task="t1", accuracy=0.5), cell("b", task="t1")]))
    assert frugal(["compare", str(a), str(b)]) == 0
    assert frugal(["report", str(a), "--out", str(tmp_path / f"r{ESC}[31m.html")]) == 0
    both = "".join(capfd.readouterr())
    assert HOSTILE not in both
    for ch in (ESC, "\r", "\x07", "\u202e", "\x9b"):
        assert ch not in both, repr(ch)
    assert "\\x1b[2K" in both  # shown, escaped


def test_summary_md_holds_no_control_characters(tmp_path):
    from evaluator.report.writers import write_summary_md

    path = write_summary_md(result([cell(HOSTILE, task="t1")]), tmp_path / "summary.md",
                            gate_failures=[f"min_accuracy: {HOSTILE} below"])
    text = path.read_text()
    assert not any(ch in text for ch in (ESC, "\r", "\x07", "\u202e", "\x9b"))
    assert "### Gates" in text and "\\\\x1b" in text


def test_results_csv_neutralises_formulas_and_keeps_numbers_numeric(tmp_path):
    from evaluator.report import write_csv

    names = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTAB", "ok-model"]
    cells = [cell(n, task="t1", variant="fp32") for n in names]
    cells.append(cell("neg", task="t1", accuracy=0.5, energy_j=-1.5))
    path = write_csv(result(cells), tmp_path / "results.csv")
    rows = list(csv.DictReader(path.open(newline="")))
    got = {r["model"] for r in rows}
    for n in names[:-1]:
        assert "'" + n in got, n
    assert "ok-model" in got
    neg = next(r for r in rows if r["model"] == "neg")
    assert neg["energy_j"] == "-1.5" and float(neg["energy_j"]) == -1.5


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["cells"][0].update(accuracy="high"), "cells[0].accuracy"),
    (lambda d: d["cells"][1].update(energy_j=[1]), "cells[1].energy_j"),
    (lambda d: d["cells"][0].pop("model"), "cells[0].model"),
    (lambda d: d["cells"][2].update(n_items="8"), "cells[2].n_items"),
    (lambda d: d["cells"][0].update(metrics={"acc": "x"}), "cells[0].metrics"),
    (lambda d: d.update(meter=[]), "meter"),
    (lambda d: d.update(environment="x"), "environment"),
    (lambda d: d.update(schema_version="2"), "schema_version"),
    (lambda d: d["cells"].append(dict(d["cells"][0])), "cells[4]"),
], ids=["str-accuracy", "list-energy", "no-model", "str-n_items", "bad-metrics", "meter-list", "env-str",
        "version-str", "duplicate-cell"])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_hand_edited_results_json_is_a_clear_error_in_report_and_compare(tmp_path, capsys, edit, field,
                                                                             command):
    good = results_json(tmp_path / "good.json", two_models())
    bad = edit_json(results_json(tmp_path / "bad.json", two_models()), edit)
    argv = ["report", str(bad), "--out", str(tmp_path / "r.html")] if command == "report" else \
        ["compare", str(good), str(bad)]
    assert frugal(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err and f"field '{field}'" in err
