"""Built-in metrics as `evaluate` modules, defined in the package (nothing is fetched from the Hub).

Choice metrics (accuracy, f1_macro) take class indices; text metrics (exact_match, f1, numeric) take
answers as text and, per item, a list of acceptable answers.

>>> Accuracy().compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
0.6666666666666666
>>> round(F1Macro().compute(predictions=[0, 1, 2, 2], references=[0, 1, 2, 1])["f1_macro"], 4)
0.7778
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate

from evaluator.metrics.text import exact_match, numeric_match, token_f1

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


# --------------------------------------------------------------------------- generated answers (text)
_TEXT_FEATURES = datasets.Features({"predictions": datasets.Value("string"),
                                    "references": datasets.Sequence(datasets.Value("string"))})


class _TextMetric(evaluate.Metric):
    """Mean of a per-item text score over a cell; references: one list of acceptable answers per item."""

    higher_is_better = True
    key = ""
    what = ""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description=self.what, citation="",
                                   inputs_description="predictions: answers as text; references: lists of "
                                                      "acceptable answers", features=_TEXT_FEATURES)

    def item(self, prediction: str, references: Sequence[str], **kwargs: float) -> float:
        """One item's score in [0, 1]."""
        raise NotImplementedError

    def _compute(self, predictions: list[str], references: list[list[str]], **kwargs: float) -> dict[str, float]:
        n = len(predictions)
        total = sum(self.item(p, r, **kwargs) for p, r in zip(predictions, references, strict=True))
        return {self.key: total / n if n else 0.0}


class ExactMatch(_TextMetric):
    """Share of answers equal to a reference after SQuAD normalisation.

    >>> ExactMatch().compute(predictions=["The 2 tablets", "x"], references=[["2 tablets"], ["y"]])["exact_match"]
    0.5
    """

    key, what = "exact_match", "Exact match after SQuAD normalisation (case, punctuation, articles, spaces)."

    def item(self, prediction: str, references: Sequence[str], **kwargs: float) -> float:
        """1 or 0."""
        return float(exact_match(prediction, references))


class TokenF1(_TextMetric):
    """Mean SQuAD token F1 (best over references)."""

    key, what = "f1", "SQuAD token F1 on normalised answers, the best over the references."

    def item(self, prediction: str, references: Sequence[str], **kwargs: float) -> float:
        """Token F1 in [0, 1]."""
        return token_f1(prediction, references)


class Numeric(_TextMetric):
    """Share of answers whose number is within a relative tolerance of a reference's (default 0.1 %).

    >>> Numeric().compute(predictions=["$1,200", "12"], references=[["1200"], ["13"]], tolerance=0.01)["numeric"]
    0.5
    """

    key, what = "numeric", "Numeric match within a relative tolerance; units and thousands separators handled."

    def item(self, prediction: str, references: Sequence[str], tolerance: float = 1e-3, **kwargs: float) -> float:
        """1 or 0."""
        return float(numeric_match(prediction, references, tolerance))
