"""Auto meter (probe order, fallback to the estimate, composition) and the codecarbon meter."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from _fakes import FakeNvml, NoDriver  # tests/ is on sys.path

from evaluator.meters import METERS, MeterOptions, create_meter
from evaluator.meters.auto import AutoMeter
from evaluator.meters.codecarbon_meter import CodecarbonMeter, hardware_modes
from evaluator.meters.nvml import NvmlBackend, NvmlMeter
from evaluator.meters.rapl import RaplMeter


def zone(parent: Path, dirname: str, name: str, energy_uj: int) -> Path:
    """Write one powercap zone."""
    path = parent / dirname
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text("262143328850\n")
    return path


def set_uj(path: Path, energy_uj: int) -> None:
    """Advance a zone's counter."""
    (path / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    """A one-socket synthetic powercap tree with DRAM."""
    root = tmp_path / "powercap"
    pkg = zone(root, "intel-rapl:0", "package-0", 0)
    zone(pkg, "intel-rapl:0:0", "dram", 0)
    return root


def test_registry_lists_the_meters() -> None:
    assert {"estimate", "auto", "nvml", "rapl", "codecarbon"} <= set(METERS)


def test_auto_without_counters_is_the_estimate(tmp_path: Path) -> None:
    meter = AutoMeter(rapl_root=str(tmp_path / "absent"), nvml_backend=NoDriver())
    meter.begin("w")
    m = meter.end("w")
    assert m.energy_method == "estimate" and m.is_estimate is True
    assert set(m.components_j) == {"cpu", "dram"}
    context = meter.context()
    assert context["energy_method"] == "estimate" and context["is_estimate"] is True
    assert "no NVIDIA driver" in context["probes"]["nvml"]
    assert any(r.startswith("rapl: ") and "absent" in r for r in context["not_used"])
    assert context["parts"]["estimate"]["formula"]


def test_auto_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRUGAL_RAPL_ROOT", raising=False)
    if RaplMeter.available()[0] or NvmlMeter.available()[0]:
        pytest.skip("this machine has readable energy counters")
    meter = create_meter("auto")
    meter.begin("w")
    assert meter.end("w").energy_method == "estimate"
    assert set(meter.context()["probes"]) == {"nvml", "rapl"}


def test_auto_uses_rapl_from_the_environment(rapl_root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(rapl_root))
    meter = AutoMeter(nvml_backend=NoDriver())
    meter.begin("w")
    set_uj(rapl_root / "intel-rapl:0", 3_000_000)
    set_uj(rapl_root / "intel-rapl:0" / "intel-rapl:0:0", 1_000_000)
    m = meter.end("w")
    assert m.energy_method == "rapl" and m.is_estimate is False
    assert dict(m.components_j) == pytest.approx({"cpu": 3.0, "dram": 1.0})
    assert meter.context()["probes"]["rapl"] == "used"
    assert meter.min_window_s == 1.0


def test_auto_composes_nvml_and_rapl(rapl_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml([0])
    meter = AutoMeter(rapl_root=str(rapl_root), nvml_backend=fake)
    meter.begin("w")
    fake.energy_mj = [7_000]
    set_uj(rapl_root / "intel-rapl:0", 2_000_000)
    m = meter.end("w")
    assert m.energy_method == "nvml+rapl"
    assert dict(m.components_j) == pytest.approx({"gpu0": 7.0, "cpu": 2.0, "dram": 0.0})
    assert m.energy_j == pytest.approx(9.0)
    assert m.is_stable is False and "nvml:" in m.unstable_reason and "rapl:" in m.unstable_reason
    meter.close()
    assert fake.inits == 0


def test_auto_from_options(rapl_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NvmlBackend, "init", NoDriver.init)
    meter = create_meter("auto", MeterOptions(rapl_root=str(rapl_root)))
    assert isinstance(meter, AutoMeter) and meter.method == "rapl"
    options = MeterOptions(rapl_root=str(rapl_root / "x"), watts_per_core=2.0)
    fallback = create_meter("auto", options)
    assert fallback.context()["parts"]["estimate"]["watts_per_core"] == 2.0


def test_codecarbon_modes_are_classified() -> None:
    cpu_rapl = type("CPU", (), {"_mode": "intel_rapl"})()
    cpu_load = type("CPU", (), {"_mode": "cpu_load"})()
    ram = type("RAM", (), {})()
    assert hardware_modes(SimpleNamespace(_hardware=[ram, cpu_rapl])) == {"ram": "model",
                                                                          "cpu": "intel_rapl"}
    assert hardware_modes(SimpleNamespace(_hardware=[cpu_load]))["cpu"] == "cpu_load"
    assert hardware_modes(SimpleNamespace())["cpu"] == "unknown"


def test_codecarbon_real_window_writes_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    meter = create_meter("codecarbon")
    assert isinstance(meter, CodecarbonMeter)
    meter.begin("w")
    deadline = time.perf_counter() + 0.5
    while time.perf_counter() < deadline:
        sum(i * i for i in range(10_000))
    m = meter.end("w")
    assert m.energy_method == "codecarbon"
    assert m.energy_j is not None and m.energy_j > 0
    assert m.energy_j == pytest.approx(sum(m.components_j.values()), rel=1e-6)
    assert m.details["modes"]["cpu"]
    if m.details["modes"]["cpu"] in ("cpu_load", "constant"):
        assert m.is_estimate is True
    assert list(tmp_path.iterdir()) == []
    assert meter.context()["codecarbon_version"]
