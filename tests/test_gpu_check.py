"""bench/gpu_check.sh runs its CPU-side steps and exits cleanly, saying so, on a machine without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _has_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return False


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present: the script runs its GPU steps (marker gpu)")
def test_gpu_check_without_a_gpu_runs_the_cpu_steps_and_exits_cleanly(tmp_path):
    docs = tmp_path / "benchmarks.md"
    env = {**os.environ, "PY": sys.executable, "GPU_CHECK_DOCS": str(docs), "GPU_CHECK_OUT": str(tmp_path / "g.md")}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CPU-side steps" in done.stdout and "backend llamacpp:" in done.stdout
    assert "no GPU is present" in done.stdout
    assert not docs.exists()  # nothing measured, nothing written
