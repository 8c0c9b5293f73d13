"""Shared fixtures. Everything is real: pulled models, real files, real SQLite. Fully offline."""

from __future__ import annotations

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
    """A real run: finance + health, minilm-l6 + smollm2-135m, fp32 + bf16, 6 items a task, 1 repeat."""
    from evaluator.config import RunConfig
    from evaluator.runner import run

    d = tmp_path_factory.mktemp("small_run")
    cfg = RunConfig(suites=("finance", "health"), models=("minilm-l6", "smollm2-135m"), variants=("fp32", "bf16"),
                    limit=6, repeats=1, batch_size=8, store=str(d / "store.sqlite"), out=str(d / "out"),
                    models_file=str(ROOT / "models.yaml"))
    return run(cfg)


@pytest.fixture
def output_dir(request) -> Path:
    """A per-test folder under test-output/ for artefacts worth looking at (screenshots, reports)."""
    p = OUTPUT / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    p.mkdir(parents=True, exist_ok=True)
    return p
