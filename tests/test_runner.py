"""The spine end to end on real models: results schema, energy provenance, frontier, reuse (failure paths run on
the fake backend here and in test_seams.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.config import RunConfig
from evaluator.runner import run
from evaluator.store import Store

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("suite", "task", "model", "variant", "status", "n_items", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
            "energy_j", "energy_j_per_item", "energy_method", "duration_s", "params", "on_frontier",
            "active_energy_j", "energy_ci_low", "energy_ci_high", "energy_j_per_correct", "gco2e")


def test_small_run_results_json_schema(small_run):
    out = Path(small_run.store_path).parent / "out"
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "frugal.results" and doc["schema_version"] == 2 and doc["run_id"] == small_run.run_id
    env = doc["environment"]
    for k in ("cpu_model", "cpu_count", "gpu", "torch", "transformers", "threads"):
        assert k in env
    assert doc["meter"]["meter"] == "auto" and "idle_power_w" in doc["meter"]
    assert len(doc["cells"]) == 2 * 2 * 2 * 2  # 2 suites x 2 tasks x 2 models x 2 variants
    for c in doc["cells"]:
        for k in REQUIRED:
            assert k in c, k
        assert c["status"] == "ok", c["error"]
        assert 0.0 <= c["accuracy_ci_low"] <= c["accuracy"] <= c["accuracy_ci_high"] <= 1.0
        assert c["energy_j"] > 0 and c["energy_method"] == "estimate" and c["is_estimate"] is True
        assert c["energy_j_per_item"] == pytest.approx(c["energy_j"] / c["n_items"])
        assert c["n_items"] == 6 and c["params"] > 1e7
    assert set(doc["frontiers"]) == {"finance", "health"}
    for f in doc["frontiers"].values():
        assert any(p["on_frontier"] for p in f["points"]) and f["recommendation"]["text"]
        assert f["energy_methods"] == ["estimate"]
    csv_text = (out / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("suite,task,model,variant,status") and len(csv_text) == 17
    assert ",estimate," in csv_text[1]


def test_bf16_variant_really_loads_bf16(small_run):
    dtypes = {(c.model, c.variant): c.weight_dtype for c in small_run.cells}
    assert dtypes[("smollm2-135m", "bf16")] == "torch.bfloat16" or "bfloat16" in str(dtypes[("smollm2-135m", "bf16")])
    assert "float32" in str(dtypes[("smollm2-135m", "fp32")])


def test_same_run_again_reuses_every_cell(small_run, capsys):
    from _synthetic import choice_tasks

    cfg = RunConfig(suites=("finance",), models=("minilm-l6", "smollm2-135m"), variants=("fp32", "bf16"), limit=6,
                    tasks=choice_tasks("finance"), repeats=1, batch_size=8, store=str(Path(small_run.store_path)),
                    models_file=str(ROOT / "models.yaml"))
    again = run(cfg)
    assert len(again.cells) == 8 and all(c.reused for c in again.cells)
    first = {(c.task, c.model, c.variant): c.accuracy for c in small_run.cells if c.suite == "finance"}
    assert {(c.task, c.model, c.variant): c.accuracy for c in again.cells} == first
    st = Store(small_run.store_path)
    assert st.integrity_check() == []
    items = st.items(again.run_id, "finance", "numeracy", "smollm2-135m", "fp32")
    assert len(items) == 6  # reused cells share the original's per-item predictions


def test_failed_cell_beside_good_ones(tmp_path, fakes, capsys):
    code = main(["run", "--suite", "finance", "--task", "headline-sentiment", "--task", "numeracy",
                 "--model", "fake-broken", "--model", "fake-lm", "--variant", "fake",
                 "--limit", "4", "--repeats", "1", "--meter", "estimate", "--models-file", str(fakes),
                 "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "out")])
    assert code == 1
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    by = {(c["model"], c["task"]): c for c in doc["cells"]}
    broken = by[("fake-broken", "numeracy")]
    assert broken["status"] == "failed" and "load failed" in broken["error"]
    assert by[("fake-lm", "numeracy")]["status"] == "ok"
    err = capsys.readouterr().err
    assert "4 cell(s) failed" not in err and "2 cell(s) failed:" in err and "fake-broken" in err
    assert doc["status"] == "finished-with-failures"


def test_bad_input_exits_2_before_writing(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert main(["run", "--suite", "nonexistent-suite", "--model", "minilm-l6", "--store", str(store)]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert main(["run", "--suite", "finance", "--model", "minilm-l66", "--store", str(store)]) == 2
    assert "minilm-l6" in capsys.readouterr().err  # close match suggested
    assert main(["run", "--suite", "finance", "--variant", "bf17", "--store", str(store)]) == 2
    assert not store.exists(), "nothing is written for bad input"


def test_config_file_errors_name_field(tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("suites: [finance]\nrepeets: 3\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "eval.yaml" in err and "repeets" in err and "repeats" in err


def test_cli_lists(capsys):
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    assert "headline-sentiment" in out and "climate" in out
    assert main(["list", "meters"]) == 0
    assert "estimate" in capsys.readouterr().out


def test_config_replace_validates():
    with pytest.raises(Exception, match="repeats"):
        replace(RunConfig(), repeats=0).validate()
