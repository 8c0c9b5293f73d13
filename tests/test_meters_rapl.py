"""RAPL meter on synthetic powercap trees written into tmp_path."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.errors import FrugalError
from evaluator.meters import MeterOptions, create_meter
from evaluator.meters.rapl import RaplMeter, wrapped_delta_uj

MAX_UJ = 262_143_328_850  # a real package max_energy_range_uj


def zone(parent: Path, dirname: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    """Write one powercap zone (name, energy_uj, max_energy_range_uj) and return its folder."""
    path = parent / dirname
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_uj(path: Path, energy_uj: int) -> None:
    """Advance (or wrap) a zone's counter."""
    (path / "energy_uj").write_text(f"{energy_uj}\n")


def window(meter: RaplMeter, between=lambda: None):
    """Open a window, run ``between`` (which moves counters), close it."""
    meter.begin("w")
    between()
    return meter.end("w")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A powercap root with the control-type folder present, as on a real machine."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # control type: no energy_uj, must be ignored
    return root


def test_single_socket_no_dram(root: Path) -> None:
    pkg = zone(root, "intel-rapl:0", "package-0", 1_000_000)
    meter = RaplMeter(root)
    m = window(meter, lambda: set_uj(pkg, 6_000_000))
    assert m.energy_j == pytest.approx(5.0)
    assert dict(m.components_j) == pytest.approx({"cpu": 5.0})
    assert m.energy_method == "rapl" and m.is_estimate is False
    assert m.details["zones"] == ["package-0"] and m.details["wraps"] == 0


def test_multi_socket_with_dram_sums_packages_and_reports_dram(root: Path) -> None:
    p0 = zone(root, "intel-rapl:0", "package-0", 100)
    p1 = zone(root, "intel-rapl:1", "package-1", 200)
    d0 = zone(p0, "intel-rapl:0:0", "dram", 0)
    d1 = zone(p1, "intel-rapl:1:0", "dram", 0)
    core = zone(p0, "intel-rapl:0:1", "core", 0)  # inside the package: never added
    os.symlink(d0, root / "intel-rapl:0:0")  # sysfs also lists subzones at the top

    def burn() -> None:
        set_uj(p0, 100 + 3_000_000)
        set_uj(p1, 200 + 2_000_000)
        set_uj(d0, 500_000)
        set_uj(d1, 250_000)
        set_uj(core, 9_000_000)

    m = window(RaplMeter(root), burn)
    assert m.components_j["cpu"] == pytest.approx(5.0)
    assert m.components_j["dram"] == pytest.approx(0.75)
    assert m.energy_j == pytest.approx(5.75)
    assert m.details["zones_j"] == pytest.approx(
        {"package-0": 3.0, "package-1": 2.0, "package-0/dram": 0.5, "package-1/dram": 0.25})
    assert "package-0/core" in m.details["skipped_zones"]


def test_psys_is_never_counted(root: Path) -> None:
    pkg = zone(root, "intel-rapl:0", "package-0", 0)
    psys = zone(root, "intel-rapl:1", "psys", 0)
    meter = RaplMeter(root)

    def burn() -> None:
        set_uj(pkg, 2_000_000)
        set_uj(psys, 50_000_000)

    m = window(meter, burn)
    assert m.energy_j == pytest.approx(2.0)
    assert "psys" in m.details["skipped_zones"] and "psys" in meter.context()["skipped_zones"]


def test_mmio_mirror_is_ignored_and_amd_zones_are_read(root: Path) -> None:
    pkg = zone(root, "amd-rapl:0", "package-0", 0)
    mmio = zone(root, "intel-rapl-mmio:0", "package-0", 0)
    m = window(RaplMeter(root), lambda: (set_uj(pkg, 1_500_000), set_uj(mmio, 1_500_000)))
    assert m.energy_j == pytest.approx(1.5)


def test_wrap_around_mid_window_gives_exact_joules(root: Path) -> None:
    max_uj = 1_000_000_000
    pkg = zone(root, "intel-rapl:0", "package-0", 999_000_000, max_uj)
    dram = zone(pkg, "intel-rapl:0:0", "dram", 10, max_uj)
    m = window(RaplMeter(root), lambda: (set_uj(pkg, 500_000), set_uj(dram, 20)))
    # 500_000 + 1_000_000_000 - 999_000_000 = 1_500_000 uJ
    assert m.components_j["cpu"] == 1.5
    assert m.components_j["dram"] == pytest.approx(10e-6)
    assert m.details["wraps"] == 1
    # the window lasted microseconds: kept, but flagged
    assert m.is_stable is False and "shorter than the 1.0 s" in m.unstable_reason


def test_guard_thread_catches_two_wraps_in_one_window(root: Path) -> None:
    max_uj = 1_000_000
    pkg = zone(root, "intel-rapl:0", "package-0", 900_000, max_uj)
    meter = RaplMeter(root, poll_interval_s=0.01)

    def two_wraps() -> None:
        set_uj(pkg, 100_000)  # +200_000
        time.sleep(0.2)
        set_uj(pkg, 800_000)  # +700_000
        time.sleep(0.2)
        set_uj(pkg, 50_000)  # +250_000

    m = window(meter, two_wraps)
    assert m.energy_j == pytest.approx(1.15)
    assert m.details["wraps"] == 2
    assert meter._guard is None  # stopped once no window is open


def test_long_window_is_stable(root: Path) -> None:
    pkg = zone(root, "intel-rapl:0", "package-0", 0)
    meter = RaplMeter(root)
    state = meter._begin()
    set_uj(pkg, 4_000_000)
    m = meter._end("w", state, duration_s=2.0, cpu_time_s=1.0)
    assert m.is_stable and m.unstable_reason is None
    assert m.power_w == pytest.approx(2.0)


def test_permission_denied_explains_the_fix(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zone(root, "intel-rapl:0", "package-0", 0)
    real_read_text = Path.read_text

    def deny(self: Path, *args, **kwargs) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(FrugalError) as info:
        RaplMeter(root)
    message = str(info.value)
    assert "permission denied" in message and "5.10" in message
    assert "chmod a+r" in message and "udev" in message and "--meter estimate" in message
    ok, why = RaplMeter.available(root)
    assert not ok and "permission denied" in why


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_counter_on_disk(root: Path) -> None:
    pkg = zone(root, "intel-rapl:0", "package-0", 0)
    (pkg / "energy_uj").chmod(0)
    with pytest.raises(FrugalError, match="permission denied"):
        RaplMeter(root)


def test_available_false_when_root_absent(tmp_path: Path) -> None:
    ok, why = RaplMeter.available(tmp_path / "no-powercap")
    assert not ok and "absent" in why
    with pytest.raises(FrugalError, match="--meter estimate"):
        RaplMeter(tmp_path / "no-powercap")


def test_available_false_without_package_zones(root: Path) -> None:
    zone(root, "intel-rapl:0", "psys", 0)
    ok, why = RaplMeter.available(root)
    assert not ok and "no package zones" in why


def test_root_from_env_argument_and_options(root: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    zone(root, "intel-rapl:0", "package-0", 0)
    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(root))
    assert RaplMeter.available() == (True, "ok")
    assert RaplMeter().root == root
    assert RaplMeter.available(tmp_path / "elsewhere")[0] is False  # argument beats env
    monkeypatch.delenv("FRUGAL_RAPL_ROOT")
    meter = create_meter("rapl", MeterOptions(rapl_root=str(root)))
    assert isinstance(meter, RaplMeter)
    context = meter.context()
    assert context["meter"] == "rapl" and context["root"] == str(root)
    assert context["zones"] == {"package-0": "intel-rapl:0"}


@given(st.integers(0, MAX_UJ), st.integers(0, MAX_UJ))
def test_wrapped_delta_is_modular(start_uj: int, end_uj: int) -> None:
    delta = wrapped_delta_uj(start_uj, end_uj, MAX_UJ)
    assert 0 <= delta <= MAX_UJ
    assert (start_uj + delta) % MAX_UJ == end_uj % MAX_UJ
