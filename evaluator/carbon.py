"""Carbon is derived, not measured: gCO2e = kWh x grid intensity x PUE.

Grid intensities are the carbon intensity of electricity generation, in gCO2e per kWh, for
2023 (2022 where a country's 2023 figure was missing), as shipped in codecarbon 3.3's
``codecarbon/data/private_infra/global_energy_mix.json`` (column ``carbon_intensity``), which
comes from Our World in Data's energy dataset built on Ember's Yearly Electricity Data
(https://ember-energy.org/data/yearly-electricity-data/). ``WORLD`` is Ember's 2023 world average,
480 gCO2/kWh (Global Electricity Review 2024); the generation-weighted mean of the codecarbon
file gives 481. Values are rounded to whole grams. A user with a better local figure (a supplier
contract, a live grid API) passes ``override_g_per_kwh``.
"""

from __future__ import annotations

import math

from evaluator.errors import FrugalError, close_matches

J_PER_KWH = 3.6e6
DEFAULT_COUNTRY = "WORLD"
SOURCE = "Ember yearly electricity data via OWID / codecarbon 3.3 global_energy_mix.json"

#: (alpha-3, alpha-2, name, gCO2e/kWh, year)
_COUNTRIES: tuple[tuple[str, str, str, float, int], ...] = (
    ("WORLD", "WORLD", "World", 480, 2023),
    ("USA", "US", "United States", 369, 2023),
    ("CHN", "CN", "China", 582, 2023),
    ("IND", "IN", "India", 713, 2023),
    ("DEU", "DE", "Germany", 381, 2023),
    ("FRA", "FR", "France", 56, 2023),
    ("GBR", "GB", "United Kingdom", 238, 2023),
    ("JPN", "JP", "Japan", 485, 2023),
    ("CAN", "CA", "Canada", 170, 2023),
    ("AUS", "AU", "Australia", 549, 2023),
    ("BRA", "BR", "Brazil", 98, 2023),
    ("RUS", "RU", "Russia", 441, 2023),
    ("KOR", "KR", "South Korea", 431, 2023),
    ("ITA", "IT", "Italy", 331, 2023),
    ("ESP", "ES", "Spain", 174, 2023),
    ("POL", "PL", "Poland", 662, 2023),
    ("NLD", "NL", "Netherlands", 268, 2023),
    ("SWE", "SE", "Sweden", 41, 2023),
    ("NOR", "NO", "Norway", 30, 2023),
    ("CHE", "CH", "Switzerland", 35, 2023),
    ("ZAF", "ZA", "South Africa", 708, 2023),
    ("MEX", "MX", "Mexico", 507, 2023),
    ("IDN", "ID", "Indonesia", 676, 2022),
    ("SAU", "SA", "Saudi Arabia", 707, 2022),
    ("TUR", "TR", "Turkey", 465, 2023),
    ("BEL", "BE", "Belgium", 138, 2023),
    ("AUT", "AT", "Austria", 111, 2023),
    ("DNK", "DK", "Denmark", 152, 2023),
    ("FIN", "FI", "Finland", 79, 2023),
    ("IRL", "IE", "Ireland", 291, 2023),
    ("PRT", "PT", "Portugal", 166, 2023),
    ("ARG", "AR", "Argentina", 354, 2023),
    ("SGP", "SG", "Singapore", 471, 2023),
    ("TWN", "TW", "Taiwan", 642, 2023),
    ("NZL", "NZ", "New Zealand", 113, 2023),
    ("ISR", "IL", "Israel", 583, 2022),
    ("ARE", "AE", "United Arab Emirates", 561, 2022),
    ("EGY", "EG", "Egypt", 570, 2023),
)

#: Grid intensity in gCO2e/kWh by ISO-3166 alpha-3 and alpha-2 code (and "WORLD").
GRID_INTENSITY_G_PER_KWH: dict[str, float] = {
    code: float(value) for a3, a2, _, value, _ in _COUNTRIES for code in (a3, a2)
}
_YEAR = {code: year for a3, a2, _, _, year in _COUNTRIES for code in (a3, a2)}
_BY_NAME = {name.upper(): a3 for a3, _, name, _, _ in _COUNTRIES}


def grid_intensity(country: str | None = None,
                   override_g_per_kwh: float | None = None) -> tuple[float, str]:
    """Grid intensity in gCO2e/kWh and a label saying where it came from.

    Args:
        country: ISO-3166 alpha-3 or alpha-2 code, a country name from the table, or
            "WORLD"; None means :data:`DEFAULT_COUNTRY`. Case-insensitive.
        override_g_per_kwh: a figure the user supplies; wins over the table.

    Raises:
        FrugalError: unknown country (with close matches) or a negative override.

    """
    if override_g_per_kwh is not None:
        if not math.isfinite(override_g_per_kwh) or override_g_per_kwh < 0:
            raise FrugalError(f"grid intensity override must be >= 0 gCO2e/kWh, "
                              f"not {override_g_per_kwh}")
        return float(override_g_per_kwh), "set by the user"
    key = (country or DEFAULT_COUNTRY).strip().upper()
    key = _BY_NAME.get(key, key)
    if key not in GRID_INTENSITY_G_PER_KWH:
        known = tuple(GRID_INTENSITY_G_PER_KWH) + tuple(_BY_NAME)
        raise FrugalError(f"no grid intensity for country {country!r}; pass an ISO-3166 code "
                          f"or an explicit gCO2e/kWh figure.{close_matches(key, known)}")
    return GRID_INTENSITY_G_PER_KWH[key], f"{key} {_YEAR[key]}, {SOURCE}"


def gco2e(energy_j: float, g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams of CO2-equivalent for ``energy_j`` joules at ``g_per_kwh``, times the data-centre PUE.

    >>> gco2e(3.6e6, 480.0)
    480.0
    >>> gco2e(3.6e6, 100.0, pue=1.5)
    150.0
    """
    if not math.isfinite(pue) or pue < 1.0:
        raise FrugalError(f"PUE must be >= 1.0 (facility energy / IT energy), not {pue}")
    if not math.isfinite(g_per_kwh) or g_per_kwh < 0:
        raise FrugalError(f"grid intensity must be >= 0 gCO2e/kWh, not {g_per_kwh}")
    return energy_j / J_PER_KWH * pue * g_per_kwh
