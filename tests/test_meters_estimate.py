"""Estimate meter: the formula on a real CPU-bound workload, configuration and the CPU table."""

from __future__ import annotations

import time

import pytest

from evaluator.meters import MeterOptions, create_meter
from evaluator.meters.base import peak_rss_mb
from evaluator.meters.estimate import (
    DEFAULT_WATTS_PER_CORE,
    EstimateConfig,
    EstimateMeter,
    watts_per_core_for,
)


def spin(n: int) -> int:
    """Pure-Python CPU-bound work, linear in n."""
    total = 0
    for i in range(n):
        total = (total + i * i) % 1_000_003
    return total


@pytest.fixture(scope="module")
def half_second_n() -> int:
    """Loop count that takes about 0.5 s of CPU on this machine (timed with a fine clock)."""
    n = 100_000
    while True:
        t0 = time.process_time()
        spin(n)
        took_s = time.process_time() - t0
        if took_s >= 0.2:
            return int(n * 0.5 / took_s)
        n *= 2


def test_energy_is_cpu_time_times_watts_plus_ram(half_second_n: int) -> None:
    meter = EstimateMeter(EstimateConfig(watts_per_core=10.0, ram_w_per_gb=0.5))
    meter.begin("w")
    spin(half_second_n)
    m = meter.end("w")
    ram_j = m.duration_s * peak_rss_mb() / 1024.0 * 0.5
    assert m.cpu_time_s > 0.1
    assert m.components_j["cpu"] == pytest.approx(m.cpu_time_s * 10.0)
    assert m.components_j["dram"] == pytest.approx(ram_j, rel=1e-3)
    assert m.energy_j == pytest.approx(m.cpu_time_s * 10.0 + ram_j, rel=1e-3)
    assert m.energy_method == "estimate" and m.is_estimate is True


def interleaved_ratio(meter: EstimateMeter, n: int) -> float:
    """CPU energy of 2n loops over that of n loops, the two interleaved in time.

    Window "two" spans four chunks of n/2, the "one" windows every other chunk, so a change of
    machine speed hits both alike. Chunks stay long because CPU time is read in 10 ms ticks.
    """
    one_j = 0.0
    meter.begin("two")
    for _ in range(2):
        meter.begin("one")
        spin(n // 2)
        one_j += meter.end("one").components_j["cpu"]
        spin(n // 2)
    return meter.end("two").components_j["cpu"] / one_j


def test_doubling_the_work_doubles_the_cpu_energy(half_second_n: int) -> None:
    # A shared VM changes speed by tens of percent within a second (steal time is charged to
    # the running process); the best of up to six tries tolerates such bursts (three were not
    # always enough in CI). The tolerance stays 5 %.
    meter = EstimateMeter()
    ratios: list[float] = []
    while len(ratios) < 6 and not any(abs(r - 2.0) <= 0.1 for r in ratios):
        ratios.append(interleaved_ratio(meter, half_second_n))
    assert min(ratios, key=lambda r: abs(r - 2.0)) == pytest.approx(2.0, rel=0.05)


def test_configured_watts_per_core_is_used() -> None:
    meter = create_meter("estimate", MeterOptions(watts_per_core=3.0))
    assert meter.watts_per_core == 3.0
    assert meter.context()["watts_per_core_source"] == "set by the user"
    with pytest.raises(ValueError):
        EstimateMeter(EstimateConfig(watts_per_core=0.0))


def test_cpu_lookup_table() -> None:
    assert watts_per_core_for("Intel(R) Xeon(R) Platinum 8480+")[0] == pytest.approx(350 / 56)
    assert watts_per_core_for("AMD EPYC 7763 64-Core Processor")[0] == pytest.approx(280 / 64)
    assert watts_per_core_for("AMD EPYC 9654 96-Core Processor")[0] == pytest.approx(360 / 96)
    watts, source = watts_per_core_for("Some Unknown CPU")
    assert watts == DEFAULT_WATTS_PER_CORE and "not in table" in source


def test_context_describes_the_formula() -> None:
    context = EstimateMeter().context()
    assert context["meter"] == "estimate" and context["is_estimate"] is True
    assert "cpu_time_s * watts_per_core" in context["formula"]


def test_memory_held_for_other_models_is_left_out_of_the_ram_term(half_second_n: int) -> None:
    """An adaptive run keeps other models loaded while a cell is measured (evaluator/pool.py): their resident
    memory is not the cell's, so the RAM term counts the window's peak less it, never below zero; the
    auto meter passes the figure on to the estimate it falls back to."""
    meter = EstimateMeter(EstimateConfig(watts_per_core=10.0))
    meter.begin("w")
    spin(half_second_n // 5)
    whole = meter.end("w")
    peak = peak_rss_mb()
    meter.hold_rss(peak / 2)
    meter.begin("w")
    spin(half_second_n // 5)
    half = meter.end("w")
    per_s = lambda m: m.components_j["dram"] / m.duration_s  # noqa: E731
    assert per_s(whole) == pytest.approx(peak / 1024 * meter.ram_w_per_gb, rel=0.02)
    assert per_s(half) == pytest.approx(peak / 2 / 1024 * meter.ram_w_per_gb, rel=0.02)
    assert half.details["held_rss_mb"] == pytest.approx(peak / 2)
    meter.hold_rss(peak * 10)
    meter.begin("w")
    none = meter.end("w")
    assert none.components_j["dram"] == 0.0 and none.energy_j == none.components_j["cpu"]
    meter.hold_rss(-5)
    assert meter.held_rss_mb == 0.0
    auto = create_meter("auto", MeterOptions())
    auto.hold_rss(123.0)
    fallback = getattr(auto, "fallback", None)
    assert auto.held_rss_mb == 123.0
    assert all(p.held_rss_mb == 123.0 for p in [*getattr(auto, "parts", []), *([fallback] if fallback else [])])
