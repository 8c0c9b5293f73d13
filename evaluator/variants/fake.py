"""Variants of the fake test backend (evaluator/backends/fake.py): the model as it is, or at half the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evaluator.variants.base import Variant


@dataclass(frozen=True)
class Fake(Variant):
    """The fake model as it is."""

    name: ClassVar[str] = "fake"
    description: ClassVar[str] = "fake backend, full work (tests only)"
    group: ClassVar[str] = "precision"
    backends: ClassVar[tuple[str, ...]] = ("fake",)


@dataclass(frozen=True)
class FakeLite(Fake):
    """The fake model doing half the work per request (a cheaper 'compressed' point)."""

    name: ClassVar[str] = "fake-lite"
    description: ClassVar[str] = "fake backend, half the work (tests only)"
