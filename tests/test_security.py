"""Security checks that need no model: dependency audit (slow, needs PyPI) and the lock's consistency."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TRIAGE = ROOT / "docs" / "security.md"


def _locked() -> dict[str, str]:
    out = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_lock_pins_every_direct_dependency():
    """Every dependency in pyproject (core and the extras make setup installs) is pinned in the lock."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in ("dev", "codecarbon", "browser-tests"):
        reqs += meta["optional-dependencies"][extra]
    locked = _locked()
    missing = [r for r in reqs if re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-")
               not in locked]
    assert not missing, f"not pinned in requirements.lock (run `make lock`): {missing}"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in locked.values())


@pytest.mark.slow
def test_pip_audit_locked_requirements(tmp_path):
    """pip-audit over requirements.lock (PyPI advisory service); every finding must be triaged in security.md."""
    pytest.importorskip("pip_audit")
    out = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--no-deps", "--disable-pip",
                           "--progress-spinner", "off", "-f", "json", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    if not out.is_file():
        pytest.fail(f"pip-audit produced no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(out.read_text())
    deps = report["dependencies"]
    audited = [d for d in deps if "skip_reason" not in d]
    print(f"pip-audit: {len(audited)} of {len(deps)} locked packages audited")
    if len(audited) < 0.9 * len(deps):
        # Nothing to audit against: e.g. a PyPI mirror that serves the simple index but not the JSON API.
        pytest.skip(f"advisory service unreachable: {len(deps) - len(audited)} of {len(deps)} packages could not "
                    f"be looked up ({next(d['skip_reason'] for d in deps if 'skip_reason' in d)})")
    triage = TRIAGE.read_text()
    untriaged = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])
                 if v["id"] not in triage and not any(a in triage for a in v.get("aliases", []))]
    assert not untriaged, f"vulnerabilities not triaged in docs/security.md: {untriaged}"


def test_streamlit_binds_locally_without_usage_stats():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False


def _pickle_only_model(pulled, dest: Path) -> Path:
    """A real MiniLM whose weights are a pickle (pytorch_model.bin) and no safetensors."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from evaluator.models import resolve

    src = Path(resolve(pulled["minilm-l6"]).location)
    dest.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, dest / f.name)
    torch.save(load_file(src / "model.safetensors"), dest / "pytorch_model.bin")
    return dest


@pytest.mark.parametrize("allow", [False, True])
def test_pickle_weights_refused_unless_the_entry_opts_in(pulled, tmp_path, allow):
    from evaluator.cli import main as frugal

    model = _pickle_only_model(pulled, tmp_path / "pickled")
    reg = tmp_path / "models.yaml"
    reg.write_text(f"models:\n  - name: pickled\n    kind: encoder\n    hub: none/none\n    path: {model}\n"
                   + ("    allow_pickle: true\n" if allow else ""))
    out = tmp_path / "out"
    code = frugal(["run", "--suite", "finance", "--task", "numeracy", "--model", "pickled", "--variant", "fp32",
                   "--limit", "3",
                   "--repeats", "1", "--meter", "estimate", "--models-file", str(reg),
                   "--store", str(tmp_path / "s.sqlite"), "--out", str(out)])
    cells = json.loads((out / "results.json").read_text())["cells"]
    if allow:
        assert code == 0 and all(c["status"] == "ok" for c in cells)
    else:
        assert code != 0 and all(c["status"] == "failed" for c in cells)
        assert all("pickle" in c["error"] and "allow_pickle: true" in c["error"] for c in cells)


def test_upload_cap_is_configurable(monkeypatch, tmp_path):
    from evaluator.errors import ValidationError
    from evaluator.uploads import UploadError, extract_suite_zip, max_upload_bytes, read_table

    monkeypatch.delenv("FRUGAL_MAX_UPLOAD_MB", raising=False)
    assert max_upload_bytes() == 50_000_000
    monkeypatch.setenv("FRUGAL_MAX_UPLOAD_MB", "0.001")  # 1 kB
    assert max_upload_bytes() == 1000
    big = b"text,label\n" + b"x" * 2000 + b",pos\n"
    with pytest.raises(UploadError, match="larger than"):
        read_table(big, "t.csv")
    with pytest.raises(UploadError, match="larger than"):
        extract_suite_zip(b"PK" + b"\0" * 2000, tmp_path)
    assert read_table(big, "t.csv", max_bytes=10_000)[1]  # an explicit cap still wins
    monkeypatch.setenv("FRUGAL_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ValidationError, match="FRUGAL_MAX_UPLOAD_MB"):
        max_upload_bytes()
