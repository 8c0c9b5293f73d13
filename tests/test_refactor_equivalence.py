"""The Backend/TaskType redesign changed no result: per-item predictions and scores equal the pre-refactor ones.

tests/fixtures/preref_quick_grid.json was written by the code before the redesign (commit 5bd03c7) on the quick
grid: all built-in suites, minilm-l6 + smollm2-135m, fp32 + prune-structured-25, 4 items a task, 1 repeat.
Predictions (acc and acc_norm) must be identical; scores equal to within one unit of the 5th decimal they are
stored with (2e-5, or 1e-5 relative): encoder cosines differ by float32 rounding (the zero-shot dot products
now run in numpy, not torch), and log-likelihoods since the fixture's one-batch cells run as two half batches
(other padding).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _synthetic import choice_tasks

from evaluator.config import RunConfig
from evaluator.runner import run
from evaluator.store import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "preref_quick_grid.json").read_text())


def _grid(tmp_path: Path, variants: tuple[str, ...]) -> dict[tuple[str, str, str, str], dict]:
    c = FIXTURE["config"]
    cfg = RunConfig(suites=tuple(c["suites"]), models=tuple(c["models"]), variants=variants, limit=c["limit"],
                    tasks=choice_tasks(*c["suites"]),  # the fixture predates the generative tasks
                    repeats=1, batch_size=c["batch_size"], meter="estimate", idle_s=0,
                    store=str(tmp_path / "s.sqlite"), models_file=str(ROOT / "models.yaml"))
    result = run(cfg)
    st = Store(result.store_path)
    out = {}
    for cell in result.cells:
        assert cell.status == "ok", cell.error
        out[(cell.suite, cell.task, cell.model, cell.variant)] = {
            "cell": cell, "items": st.items(result.run_id, cell.suite, cell.task, cell.model, cell.variant)}
    return out


def _check(now: dict, variants: tuple[str, ...]) -> int:
    checked = 0
    for old in FIXTURE["cells"]:
        if old["variant"] not in variants:
            continue
        key = (old["suite"], old["task"], old["model"], old["variant"])
        new = now[key]
        items = new["items"]
        assert [i.item_id for i in items] == old["items"]["id"], key
        assert [i.gold for i in items] == old["items"]["gold"], key
        assert [i.pred for i in items] == old["items"]["pred"], key
        assert [i.pred_norm for i in items] == old["items"]["pred_norm"], key
        # encoder cosines by float32 rounding (numpy, not torch): 2e-5; log-likelihoods since a one-batch cell
        # runs as two half batches (evaluator/measure.py), whose other padding moves float32 sums by a few
        # units of the 5th decimal (2e-6 relative seen): 1e-5 relative. Predictions above must still be identical.
        tol = 2e-5
        for a, b in zip((i.scores for i in items), old["items"]["scores"], strict=True):
            assert a == pytest.approx(b, rel=1e-5, abs=tol), key
        assert new["cell"].accuracy == old["accuracy"] and new["cell"].n_correct == old["n_correct"], key
        assert new["cell"].metrics == pytest.approx(old["metrics"]), key
        assert new["cell"].scoring_method == old["scoring_method"], key
        assert all(i.target and i.output for i in items), key  # v2 items carry the answers as text
        assert [i.target == i.output for i in items] == [i.pred == i.gold for i in items], key
        checked += 1
    return checked


def test_fp32_cells_match_the_pre_refactor_results(pulled, tmp_path):
    assert _check(_grid(tmp_path, ("fp32",)), ("fp32",)) == 12


@pytest.mark.slow
def test_whole_quick_grid_matches_the_pre_refactor_results(pulled, tmp_path):
    variants = tuple(FIXTURE["config"]["variants"])
    assert _check(_grid(tmp_path, variants), variants) == 24
