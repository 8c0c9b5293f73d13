"""Numbers as people read them, formatted once for every writer (report, plots, badges, compare, app).

Units stay in field names everywhere else (``energy_j``); this is the report edge where they become text.
"""

from __future__ import annotations

import math

DASH = "\u2013"


def fmt_joules(value: float | None) -> str:
    """An energy in joules without its unit: thousands separated, 3 significant digits below 1.

    >>> fmt_joules(12345.6), fmt_joules(42.125), fmt_joules(0.012345), fmt_joules(None)
    ('12,346', '42.12', '0.0123', '–')
    """
    if value is None or not math.isfinite(value):
        return DASH
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value >= 1 else f"{value:.3g}"


def cell_label(suite: str, task: str, model: str, variant: str) -> str:
    """'suite/task model [variant]', the one way a cell is named in text.

    >>> cell_label("finance", "numeracy", "smollm2-135m", "fp32")
    'finance/numeracy smollm2-135m [fp32]'
    """
    return f"{suite}/{task} {model} [{variant}]"
