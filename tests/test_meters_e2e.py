"""End to end: `frugal run --meter auto` on this machine (estimate) and on a synthetic RAPL tree (rapl).

The synthetic tree is driven by a feeder thread that plays the hardware: it advances the package counter
by ``P_IDLE`` watts of wall time plus ``P_CORE`` watts per busy core (from this process's real CPU time), and
the DRAM counter by a constant ``P_DRAM``, wrapping at ``max_energy_range_uj``. The run must record
``energy_method: rapl``, gross joules equal to what the feeder wrote over the window, the idle power it
measured, and an idle-subtracted active energy that tracks the CPU time.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from evaluator.cli import main as frugal

P_IDLE, P_CORE, P_DRAM = 12.0, 9.0, 2.0
WRAP_UJ = 50_000_000  # 50 J: the counters wrap several times during the run


class Feeder(threading.Thread):
    """Advance a one-socket powercap tree as the hardware would, every 5 ms.

    Under load the thread can be late by tens of ms at a window edge, so joules are checked to 10 %.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.pkg, self.dram = root / "intel-rapl:0", root / "intel-rapl:0" / "intel-rapl:0:0"
        for path, name in ((self.pkg, "package-0"), (self.dram, "dram")):
            path.mkdir(parents=True)
            (path / "name").write_text(f"{name}\n")
            (path / "max_energy_range_uj").write_text(f"{WRAP_UJ}\n")
            (path / "energy_uj").write_text("0\n")
        self.stop = threading.Event()
        self.pkg_uj = self.dram_uj = 0.0

    def run(self) -> None:
        t, cpu = time.monotonic(), time.process_time()
        while not self.stop.wait(0.005):
            t2, cpu2 = time.monotonic(), time.process_time()
            self.pkg_uj += (P_IDLE * (t2 - t) + P_CORE * (cpu2 - cpu)) * 1e6
            self.dram_uj += P_DRAM * (t2 - t) * 1e6
            t, cpu = t2, cpu2
            for path, uj in ((self.pkg, self.pkg_uj), (self.dram, self.dram_uj)):
                tmp = path / "energy_uj.tmp"
                tmp.write_text(f"{int(uj) % WRAP_UJ}\n")
                tmp.replace(path / "energy_uj")  # readers never see a half-written number


def _run(tmp_path: Path, meter: str, *extra: str) -> dict:
    out = tmp_path / "out"
    code = frugal(["run", "--suite", "finance", "--task", "headline-sentiment", "--task", "numeracy", "--model",
                   "minilm-l6", "--variant", "fp32", "--limit", "8",
                   "--repeats", "2", "--meter", meter, "--idle-s", "1.5", "--store", str(tmp_path / "s.sqlite"),
                   "--out", str(out), *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_auto_on_this_machine_records_a_labelled_estimate(pulled, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(tmp_path / "no-powercap"))
    res = _run(tmp_path, "auto")
    assert res["meter"]["energy_method"] == "estimate" and res["meter"]["is_estimate"] is True
    for c in res["cells"]:
        assert c["energy_method"] == "estimate" and c["is_estimate"] is True and c["energy_j"] > 0
        for key in ("energy_j", "active_energy_j", "energy_ci_low", "energy_ci_high", "energy_j_per_item",
                    "energy_j_per_correct", "gco2e"):
            assert key in c
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "estimate" in summary.lower()
    csv_head = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert "energy_method" in csv_head
    assert "estimate" in capsys.readouterr().out.lower()


def test_auto_with_synthetic_rapl_records_rapl_and_correct_joules(pulled, tmp_path, monkeypatch):
    root = tmp_path / "powercap"
    feeder = Feeder(root)
    feeder.start()
    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(root))
    t0 = time.monotonic()
    try:
        res = _run(tmp_path, "auto")
    finally:
        wall_s = time.monotonic() - t0
        feeder.stop.set()
        feeder.join()
    meter = res["meter"]
    assert meter["energy_method"] == "rapl" and meter["is_estimate"] is False
    # the idle baseline saw the idle watts plus whatever the idle process itself burnt: a little above P_IDLE
    idle_w = meter["idle_power_w"]
    assert P_IDLE + P_DRAM - 0.5 <= idle_w <= P_IDLE + P_DRAM + P_CORE * 0.5
    assert len(res["cells"]) == 2
    for c in res["cells"]:
        assert c["status"] == "ok" and c["energy_method"] == "rapl" and c["is_estimate"] is False
        d, cpu = c["duration_s"], c["cpu_time_s"]
        expected = (P_IDLE + P_DRAM) * d + P_CORE * cpu  # what the "hardware" put on the counters
        assert c["energy_j"] == pytest.approx(expected, rel=0.10), (c["energy_j"], expected, d, cpu)
        comps = c["energy_components_j"]
        assert comps["dram"] == pytest.approx(P_DRAM * d, rel=0.10), comps
        assert comps["cpu"] == pytest.approx(P_IDLE * d + P_CORE * cpu, rel=0.10), comps
        assert c["active_energy_j"] == pytest.approx(c["energy_j"] - idle_w * d, rel=1e-6, abs=1e-9)
        assert c["active_energy_j"] <= P_CORE * cpu * 1.10 + 0.5
        assert c["energy_j_per_item"] == pytest.approx(c["energy_j"] / c["n_items"], rel=1e-6)
        assert d > 0 and c["passes_per_window"] * d >= 0.95  # the >= 1 s window rule for counter meters
    # duration_s is one pass: every measured window (passes x duration, repeats of them per cell) lies
    # inside the wall time of the whole run, so a duration off by a factor (per window, not per pass) fails
    windows_s = sum(c["passes_per_window"] * c["duration_s"] * c["repeats"] for c in res["cells"])
    assert len(res["cells"]) * 2 * 0.95 <= windows_s < wall_s, (windows_s, wall_s)
