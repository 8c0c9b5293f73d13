"""Metric registry: built-in `evaluate` modules by name; any other name goes to ``evaluate.load``.

Each metric declares whether higher is better; the Pareto code relies on it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError

#: name -> (module class path, higher_is_better)
BUILTIN: dict[str, tuple[str, bool]] = {
    "accuracy": ("evaluator.metrics.modules:Accuracy", True),
    "f1_macro": ("evaluator.metrics.modules:F1Macro", True),
}


def check_metric(name: str) -> None:
    """Fail early on a metric name that can never load (built-in, evaluate id, or local path)."""
    if name in BUILTIN:
        return
    if "/" in name or Path(name).exists() or name.replace("_", "").isalnum():
        return
    raise FrugalError(f"unknown metric {name!r}: use one of {', '.join(BUILTIN)}, an evaluate id or a path")


@cache
def _load(name: str) -> Any:
    if name in BUILTIN:
        import importlib

        mod, cls = BUILTIN[name][0].split(":")
        return getattr(importlib.import_module(mod), cls)()
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as exc:  # noqa: BLE001 - evaluate raises many kinds
        raise FrugalError(f"could not load metric {name!r} (offline, or not an evaluate module): {exc}") from None


def higher_is_better(name: str) -> bool:
    """Direction of a metric (external metrics are assumed higher-is-better unless they say)."""
    if name in BUILTIN:
        return BUILTIN[name][1]
    return bool(getattr(_load(name), "higher_is_better", True))


def compute(name: str, predictions: list[int], references: list[int]) -> float:
    """One metric's value on int class indices."""
    out = _load(name).compute(predictions=predictions, references=references)
    key = name if name in out else next(iter(out))
    return float(out[key])
