"""Text-answer scoring as pure functions (no evaluate import), for generated answers.

SQuAD normalisation, exact match, token F1, numbers read as reports write them, and numeric match with a
relative tolerance.

The evaluate modules in evaluator/metrics/modules.py average these over a cell; the generation task type
uses them per item. References are lists: an item may accept several answers; the best match counts.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces.

    >>> normalize_answer("  The Dose: 2 Tablets! ")
    'dose 2 tablets'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str]) -> bool:
    """Whether the normalised prediction equals one normalised reference.

    >>> exact_match("an adult.", ["Adult", "grown-up"])
    True
    """
    p = normalize_answer(prediction)
    return any(p == normalize_answer(r) for r in references)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD token F1 (bag of normalised tokens), the best over the references.

    >>> round(token_f1("every 6 hours", ["every 4 to 6 hours"]), 3)
    0.75
    """
    best = 0.0
    p = normalize_answer(prediction).split()
    for r in references:
        g = normalize_answer(r).split()
        if not p or not g:
            best = max(best, float(p == g))
            continue
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            prec, rec = common / len(p), common / len(g)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best


#: Scale words after a number (whole words only: "m" could be metres, so it is not one).
SCALES = {"thousand": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12, "tn": 1e12}
#: A number as reports write it: sign, currency, thousands separators (comma, thin or no-break space),
#: decimals, then an optional percent sign or scale word. A comma is a thousands separator only before
#: exactly three digits, so "3,5" reads as 3 (no decimal commas).
NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?\s?(?:[$\u20ac\u00a3\u00a5]|USD|EUR|GBP)?\s?"
    r"(?P<int>\d{1,3}(?:[,\u202f\u00a0]\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?"
    r"(?:\s?(?P<unit>%|per ?cent\b|thousand\b|million\b|mn\b|billion\b|bn\b|trillion\b|tn\b))?", re.IGNORECASE)


def number_span(text: str) -> tuple[int, int] | None:
    """Start and end of the first number in ``text`` (with its sign, currency and scale word), or None.

    >>> t = "Revenue rose to $1,250.5 million."
    >>> s = number_span(t); t[s[0]:s[1]]
    '$1,250.5 million'
    """
    m = NUMBER_RE.search(text)
    if m is None:
        return None
    start = m.start("sign") if m.group("sign") else m.start("int")
    if not m.group("sign"):  # keep a currency sign that precedes the digits
        pre = text[max(0, start - 4):start].rstrip()
        for cur in ("$", "\u20ac", "\u00a3", "\u00a5", "USD", "EUR", "GBP"):
            if pre.endswith(cur):
                start = start - (len(text[:start]) - len(text[:start].rstrip())) - len(cur)
                break
    return start, m.end()


def parse_number(text: str) -> float | None:
    """The first number in ``text`` as a float: separators and currency dropped, scale words applied.

    >>> parse_number("USD 4.5 million"), parse_number("-1,200"), parse_number("12 %"), parse_number("none")
    (4500000.0, -1200.0, 12.0, None)
    """
    m = NUMBER_RE.search(text)
    if m is None:
        return None
    digits = re.sub(r"[,\u202f\u00a0]", "", m.group("int")) + (m.group("dec") or "")
    value = float(digits) * SCALES.get((m.group("unit") or "").lower(), 1.0)
    return -value if m.group("sign") else value


def as_number(text: str) -> float | None:
    """``text`` as a number when it is nothing but one (with currency, scale word, final full stop), else None.

    >>> as_number("$4.5 million"), as_number("tonnes of CO2 equivalent"), as_number("2030.")
    (4500000.0, None, 2030.0)
    """
    t = text.strip().rstrip(".").strip()
    span = number_span(t)
    return parse_number(t) if span is not None and span == (0, len(t)) else None


def numeric_match(prediction: str, references: Sequence[str], tolerance: float = 1e-3) -> bool:
    """Whether the prediction's first number is within ``tolerance`` (relative) of a reference's number.

    A reference that is not a number (a unit, a name: see :func:`as_number`) is compared by exact match.

    >>> numeric_match("about 4,500,000 tonnes", ["4.5 million"]), numeric_match("4.6 million", ["4.5 million"])
    (True, False)
    >>> numeric_match("0", ["0"]), numeric_match("Tonnes.", ["tonnes"]), numeric_match("2", ["tCO2e"])
    (True, True, False)
    """
    p = parse_number(prediction)
    for r in references:
        v = as_number(r)
        if v is None:
            if exact_match(prediction, [r]):
                return True
        elif p is not None and math.isclose(p, v, rel_tol=tolerance, abs_tol=0.0):
            return True
    return False
