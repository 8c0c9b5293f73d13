"""Carbon: derived from energy, grid intensity and PUE."""

from __future__ import annotations

import pytest

from evaluator.carbon import DEFAULT_COUNTRY, GRID_INTENSITY_G_PER_KWH, gco2e, grid_intensity
from evaluator.errors import FrugalError


def test_one_kwh_at_the_grid_intensity() -> None:
    assert gco2e(3.6e6, 400.0) == pytest.approx(400.0)
    assert gco2e(3_600.0, 500.0) == pytest.approx(0.5)  # 1 Wh
    assert gco2e(0.0, 500.0) == 0.0


def test_pue_scales_and_is_validated() -> None:
    assert gco2e(3.6e6, 100.0, pue=1.5) == pytest.approx(150.0)
    with pytest.raises(FrugalError, match="PUE"):
        gco2e(1.0, 100.0, pue=0.9)
    with pytest.raises(FrugalError):
        gco2e(1.0, -1.0)


def test_default_is_world() -> None:
    assert DEFAULT_COUNTRY == "WORLD"
    value, source = grid_intensity(None)
    assert value == GRID_INTENSITY_G_PER_KWH["WORLD"] and "WORLD" in source and "Ember" in source


def test_alpha2_alpha3_and_names_agree() -> None:
    assert grid_intensity("FRA")[0] == grid_intensity("fr")[0] == grid_intensity("France")[0]
    assert grid_intensity("DE")[0] == grid_intensity("DEU")[0]
    assert grid_intensity("FRA")[0] < grid_intensity("POL")[0]


def test_table_covers_major_countries() -> None:
    alpha3 = [k for k in GRID_INTENSITY_G_PER_KWH if len(k) == 3]
    assert len(alpha3) >= 30
    assert all(0 < v < 1200 for v in GRID_INTENSITY_G_PER_KWH.values())


def test_override_wins() -> None:
    assert grid_intensity("FRA", override_g_per_kwh=123.0) == (123.0, "set by the user")
    with pytest.raises(FrugalError):
        grid_intensity(None, override_g_per_kwh=-5.0)


def test_unknown_country_lists_close_matches() -> None:
    with pytest.raises(FrugalError, match="DEU"):
        grid_intensity("DEUU")
    with pytest.raises(FrugalError, match="GERMANY"):
        grid_intensity("Germny")
