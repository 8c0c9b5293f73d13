"""NVML meter with a fake backend (a subclass of the real one); a real GPU run where one exists."""

from __future__ import annotations

import time

import pytest
from _fakes import FakeNvml, NoDriver  # tests/ is on sys.path

from evaluator.errors import FrugalError
from evaluator.meters import MeterOptions, create_meter
from evaluator.meters.nvml import COUNTER, SAMPLING, NvmlBackend, NvmlMeter, visible_indices


@pytest.fixture(autouse=True)
def _all_gpus_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_counter_gives_exact_joules_per_gpu() -> None:
    fake = FakeNvml([1_000, 50_000])
    meter = NvmlMeter(fake)
    meter.begin("w")
    fake.energy_mj = [1_000 + 5_500, 50_000 + 1_234]
    m = meter.end("w")
    assert dict(m.components_j) == pytest.approx({"gpu0": 5.5, "gpu1": 1.234})
    assert m.energy_j == pytest.approx(6.734)
    assert m.energy_method == "nvml" and m.is_estimate is False
    assert m.details["modes"] == {"gpu0": COUNTER, "gpu1": COUNTER}
    assert m.is_stable is False  # microseconds long


def test_power_sampling_integrates_constant_power() -> None:
    fake = FakeNvml([None], power_mw=[150_000])  # 150 W, no energy counter
    meter = NvmlMeter(fake, sample_interval_s=0.01)
    meter.begin("w")
    time.sleep(0.4)
    m = meter.end("w")
    assert m.details["modes"] == {"gpu0": SAMPLING}
    assert m.details["power_samples"] >= 5
    assert m.energy_j == pytest.approx(150.0 * m.duration_s, rel=0.10)
    assert meter._sampler is None  # stopped once no window is open


def test_mixed_counter_and_sampling() -> None:
    fake = FakeNvml([0, None], power_mw=[0, 100_000])
    meter = NvmlMeter(fake, sample_interval_s=0.01)
    meter.begin("w")
    time.sleep(0.2)
    fake.energy_mj = [2_000, None]
    m = meter.end("w")
    assert m.components_j["gpu0"] == pytest.approx(2.0)
    assert m.components_j["gpu1"] == pytest.approx(100.0 * m.duration_s, rel=0.10)
    assert meter.context()["gpus"]["gpu1"]["mode"] == SAMPLING


def test_cuda_visible_devices_selects_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    fake = FakeNvml([0, 0])
    meter = NvmlMeter(fake)
    meter.begin("w")
    fake.energy_mj = [9_000, 3_000]
    m = meter.end("w")
    assert dict(m.components_j) == pytest.approx({"gpu0": 3.0})  # cuda:0 is NVML GPU 1
    assert meter.context()["gpus"]["gpu0"]["nvml_index"] == 1


def test_no_visible_gpu_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    fake = FakeNvml([0])
    assert NvmlMeter.available(fake) == (False, "no NVIDIA GPU visible (CUDA_VISIBLE_DEVICES='')")
    with pytest.raises(FrugalError, match="no NVIDIA GPU visible"):
        NvmlMeter(fake)
    assert fake.inits == 0  # NVML released on every path


def test_available_without_driver() -> None:
    ok, why = NvmlMeter.available(NoDriver())
    assert not ok and "no NVIDIA driver" in why
    assert NvmlMeter.available(FakeNvml([0])) == (True, "ok")


def test_visible_indices_parsing() -> None:
    assert visible_indices(4, None)[0] == [0, 1, 2, 3]
    assert visible_indices(4, "2,0")[0] == [2, 0]
    assert visible_indices(4, "1,7,2")[0] == [1]  # CUDA stops at the first invalid entry
    assert visible_indices(4, "-1")[0] == []
    indices, note = visible_indices(2, "GPU-8f6a1c2e")
    assert indices == [0, 1] and "not indices" in note


def test_close_releases_nvml() -> None:
    fake = FakeNvml([0])
    meter = NvmlMeter(fake)
    assert fake.inits == 1
    meter.close()
    assert fake.inits == 0


@pytest.mark.gpu
def test_real_gpu_window() -> None:
    ok, why = NvmlMeter.available()
    if not ok:
        pytest.skip(f"no NVML here: {why}")
    torch = pytest.importorskip("torch")
    meter = NvmlMeter()
    x = torch.randn(4096, 4096, device="cuda")
    (x @ x).sum().item()  # warm up outside the window
    meter.begin("w")
    deadline = time.perf_counter() + 1.5
    while time.perf_counter() < deadline:
        x = (x @ x).clamp_(-1, 1)
    m = meter.end("w")
    meter.close()
    assert m.energy_j > 0 and m.is_stable
    assert 10.0 < m.power_w < 2000.0


def test_registry_builds_nvml_or_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NvmlBackend, "init", NoDriver.init)
    with pytest.raises(FrugalError, match="no NVIDIA driver"):
        create_meter("nvml", MeterOptions(sample_interval_s=0.05))
