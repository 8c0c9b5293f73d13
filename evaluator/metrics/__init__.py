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
    # text metrics, for generated answers (predictions: text; references: lists of acceptable answers)
    "exact_match": ("evaluator.metrics.modules:ExactMatch", True),
    "f1": ("evaluator.metrics.modules:TokenF1", True),
    "numeric": ("evaluator.metrics.modules:Numeric", True),
}
#: Built-in text metrics whose per-item value is right/wrong (the first one a task lists decides correctness).
BINARY_TEXT = ("exact_match", "numeric")
TEXT = ("exact_match", "f1", "numeric")


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


def compute_text(name: str, predictions: list[str], references: list[list[str]], **kwargs: Any) -> float:
    """One metric's value on text answers; ``references``: the acceptable answers of each item.

    Built-in metrics take ``kwargs`` (``tolerance`` for numeric); an external evaluate module (ROUGE, BLEU...)
    gets the lists of references, or the first reference of each item when every item has only one.
    """
    metric = _load(name)
    if name in BUILTIN:
        out = metric.compute(predictions=predictions, references=references, **kwargs)
    else:
        refs: list[Any] = references if any(len(r) > 1 for r in references) else [r[0] for r in references]
        try:
            out = metric.compute(predictions=predictions, references=refs)
        except Exception as exc:  # noqa: BLE001 - evaluate modules raise many kinds
            raise FrugalError(f"metric {name!r} failed on the generated answers: {exc}") from None
    key = name if name in out else next(iter(out))
    value = out[key]
    return float(value if not isinstance(value, list | tuple) else sum(value) / max(1, len(value)))
