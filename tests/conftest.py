"""Shared fixtures. Everything is real: pulled models, real files, real SQLite. Fully offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest_plugins = ["_fuzz_counts"]  # tests/ is on sys.path (rootdir conftest, prepend import mode)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"


@pytest.fixture(scope="session")
def registry():
    """models.yaml of the repo."""
    from evaluator.models import load_registry

    return load_registry(ROOT / "models.yaml")


@pytest.fixture(scope="session")
def pulled(registry):
    """Make sure the two small test models are in the cache (pull is a no-op when they are)."""
    from evaluator.models import pull

    for name in ("minilm-l6", "smollm2-135m"):
        pull(registry[name])
    return registry


@pytest.fixture(scope="session")
def small_run(pulled, tmp_path_factory):
    """A real run: finance + health (their choice tasks), minilm-l6 + smollm2-135m, fp32 + bf16, 6 items a task."""
    from _synthetic import choice_tasks

    from evaluator.config import RunConfig
    from evaluator.report import write_outputs
    from evaluator.runner import run

    d = tmp_path_factory.mktemp("small_run")
    cfg = RunConfig(suites=("finance", "health"), models=("minilm-l6", "smollm2-135m"), variants=("fp32", "bf16"),
                    tasks=choice_tasks("finance", "health"), limit=6, repeats=1, batch_size=8,
                    store=str(d / "store.sqlite"), out=str(d / "out"),
                    models_file=str(ROOT / "models.yaml"))
    result = run(cfg)
    write_outputs(result, Path(cfg.out), cfg)  # run() returns the result; writing outputs is the caller's
    _sqlite_copy(d / "store.sqlite", d / "pristine.sqlite")  # before any test adds runs to the shared store
    return result


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite file (its WAL included), through SQLite's own backup API."""
    import sqlite3

    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


@pytest.fixture
def small_store(small_run, tmp_path) -> Path:
    """A private copy of small_run's store as the run left it: small_run's run is its only (and newest) run.

    Tests that read "the newest run" of a store, or write to one, use this and never ``small_run.store_path``,
    which other tests add runs to (the CLI tests re-run parts of the grid into it).
    """
    dst = tmp_path / "small_run_store.sqlite"
    _sqlite_copy(Path(small_run.store_path).parent / "pristine.sqlite", dst)
    return dst


@pytest.fixture
def output_dir(request) -> Path:
    """A per-test folder under test-output/ for artefacts worth looking at (screenshots, reports)."""
    p = OUTPUT / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    """A models file with a fake causal LM, a fake encoder and a model that fails to load."""
    models = {"fake-lm": {"seed": 1}, "fake-enc": {"seed": 2, "cost": 2}, "fake-broken": {"fail_load": "boom"},
              "fake-oom": {"seed": 3, "fail_when": {"Headline:": "oom"}},
              "fake-nan": {"seed": 4, "fail_when": {"Headline:": "nan"}}}
    lines = ["models:"]
    for name, cfg in models.items():
        d = tmp_path / "models" / name
        d.mkdir(parents=True)
        (d / "fake.json").write_text(json.dumps(cfg))
        kind = "encoder" if name == "fake-enc" else "causal-lm"
        lines += [f"  - name: {name}", f"    kind: {kind}", f"    path: {d}"]
    mf = tmp_path / "models.yaml"
    mf.write_text("\n".join(lines) + "\n")
    return mf
