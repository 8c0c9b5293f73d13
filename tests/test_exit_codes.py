"""The exit-code contract (docs/ci.md): 0 ok, 1 gate / regression / failed cells, 2 bad input, 3 internal error.

CI reads 1 as "a gate failed", so a crash must never exit 1. Each code is provoked for real: a gate through
`frugal run` on a real model, bad input through malformed files and paths, an internal error by making a
library function raise inside the in-process CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _synthetic import results_json, two_models

from evaluator.cli import main as frugal
from evaluator.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_OK

ROOT = Path(__file__).resolve().parent.parent


def test_the_codes_are_distinct():
    assert (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL) == (0, 1, 2, 3)


def test_a_failed_gate_exits_1_and_writes_the_gates_into_summary_md(pulled, tmp_path, capsys):
    out = tmp_path / "out"
    code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--variant", "fp32", "--limit", "2",
                   "--repeats", "1", "--meter", "estimate", "--models-file", str(ROOT / "models.yaml"),
                   "--store", str(tmp_path / "s.sqlite"), "--out", str(out), "--max-energy-per-1k", "0.000001"])
    assert code == EXIT_FAILED
    assert "GATE FAILED" in capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    assert summary.count("### Gates") == 1 and ":x:" in summary
    assert not list(out.glob(".*"))  # no temporary or staging file left behind


@pytest.mark.parametrize("argv", [
    ["report", "{tmp}/missing.json", "--out", "{tmp}/r.html"],
    ["report", "{tmp}/garbage.json", "--out", "{tmp}/r.html"],
    ["report", "{tmp}/good.json", "--out", "{tmp}"],
    ["compare", "{tmp}/good.json", "{tmp}/garbage.json"],
    ["run", "--suite", "finance", "--model", "minilm-l6", "--out", "{tmp}/good.json"],
    ["run", "--suite", "finance", "--model", "minilm-l6", "--store", "{tmp}"],
    ["run", "--suite", "no-such-suite", "--model", "minilm-l6"],
    ["run", "--suite", "finance", "--task", "health/triage", "--model", "minilm-l6"],
    ["models", "verify", "no-such-model"],
], ids=["missing-json", "garbage-json", "out-is-a-folder", "compare-garbage", "out-is-a-file", "store-is-a-folder",
        "unknown-suite", "unknown-task", "unknown-model"])
def test_bad_input_exits_2_without_a_traceback(tmp_path, capsys, argv):
    results_json(tmp_path / "good.json", two_models())
    (tmp_path / "garbage.json").write_text('{"schema": "frugal.results", "cells": [{"suite": 1}]')
    code = frugal([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith("error: ") or "\nerror: " in err
    assert "Traceback" not in err


def test_an_internal_error_exits_3_never_1_and_says_how_to_see_the_traceback(tmp_path, capsys, monkeypatch):
    import evaluator.report.writers as writers

    def broken(*_a, **_k):
        raise ZeroDivisionError("a bug in a writer")

    monkeypatch.setattr(writers, "render_report_html", broken)
    good = results_json(tmp_path / "good.json", two_models())
    monkeypatch.delenv("FRUGAL_DEBUG", raising=False)
    assert frugal(["report", str(good), "--out", str(tmp_path / "r.html")]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: a bug in a writer" in err
    assert "-v" in err and "FRUGAL_DEBUG=1" in err and "Traceback" not in err
    assert frugal(["report", str(good), "--out", str(tmp_path / "r.html"), "-v"]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("FRUGAL_DEBUG", "1")
    assert frugal(["report", str(good), "--out", str(tmp_path / "r.html")]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_crash_in_a_real_process_exits_3(tmp_path):
    """The console entry point, in a subprocess: a library that raises is exit 3 with one line, not 1."""
    good = results_json(tmp_path / "good.json", two_models())
    code = ("import sys, evaluator.compare as c\n"
            "def boom(*a, **k): raise KeyError('boom')\n"
            "c.compare = boom\n"
            "from evaluator.cli import main\n"
            f"sys.exit(main(['compare', {str(good)!r}, {str(good)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == EXIT_INTERNAL, proc.stderr
    assert "internal error: KeyError" in proc.stderr and "Traceback" not in proc.stderr


def test_commands_print_no_dependency_warnings_by_default(tmp_path):
    """`frugal report` imports plotly and the records; nothing from torch/torchao reaches stderr."""
    good = results_json(tmp_path / "good.json", two_models())
    proc = subprocess.run([sys.executable, "-m", "evaluator.cli", "report", str(good), "--out",
                           str(tmp_path / "r.html")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "_pytree" not in proc.stdout
