"""Built-in metrics as `evaluate` modules, defined in the package (nothing is fetched from the Hub).

>>> Accuracy().compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
0.6666666666666666
>>> round(F1Macro().compute(predictions=[0, 1, 2, 2], references=[0, 1, 2, 1])["f1_macro"], 4)
0.7778
"""

from __future__ import annotations

import datasets
import evaluate

_FEATURES = datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")})


class Accuracy(evaluate.Metric):
    """Fraction of items whose predicted index equals the gold index."""

    higher_is_better = True

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description="Proportion of correct predictions.", citation="",
                                   inputs_description="predictions, references: int class indices",
                                   features=_FEATURES)

    def _compute(self, predictions: list[int], references: list[int]) -> dict[str, float]:
        n = len(references)
        return {"accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / n if n else 0.0}


class F1Macro(evaluate.Metric):
    """Unweighted mean of per-class F1 over the classes present in references or predictions."""

    higher_is_better = True

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description="Macro-averaged F1.", citation="",
                                   inputs_description="predictions, references: int class indices",
                                   features=_FEATURES)

    def _compute(self, predictions: list[int], references: list[int]) -> dict[str, float]:
        classes = sorted(set(references) | set(predictions))
        f1s = []
        for c in classes:
            tp = sum(p == c and r == c for p, r in zip(predictions, references, strict=True))
            fp = sum(p == c and r != c for p, r in zip(predictions, references, strict=True))
            fn = sum(p != c and r == c for p, r in zip(predictions, references, strict=True))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return {"f1_macro": sum(f1s) / len(f1s) if f1s else 0.0}
