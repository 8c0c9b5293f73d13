"""Failure classification: what a failed cell says about why it failed.

A backend raises; the runner stores the cell as failed with the text :func:`describe` gives. Allocation
failures are recognised whatever library raised them (each backend adds the exception types its runtime
uses for out-of-memory, e.g. ``torch.OutOfMemoryError``), and non-finite outputs are their own failure.
"""

from __future__ import annotations

import errno
import math
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path


class NonFiniteOutputs(FloatingPointError):
    """The model produced NaN or inf (embeddings or log-probabilities): the cell fails, it is never scored."""

    def __init__(self, what: str) -> None:
        """``what``: which outputs were not finite, e.g. 'embeddings'."""
        super().__init__(f"non-finite outputs (NaN/inf): the model produced non-finite {what}")


def check_finite(values: Sequence[float], what: str) -> None:
    """Raise NonFiniteOutputs when any value is NaN or +/-inf.

    >>> check_finite([0.0, -1.5], "scores")
    >>> check_finite([float("nan")], "scores")
    Traceback (most recent call last):
    ...
    evaluator.failures.NonFiniteOutputs: non-finite outputs (NaN/inf): the model produced non-finite scores
    """
    if not all(math.isfinite(v) for v in values):
        raise NonFiniteOutputs(what)


#: Messages of allocation failures that libraries raise as RuntimeError/OSError rather than MemoryError
#: (torch's CPU allocator: "DefaultCPUAllocator: can't allocate memory"; mmap/ENOMEM: "Cannot allocate memory").
OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
               "std::bad_alloc", "failed to allocate")


def is_oom(exc: BaseException, oom_types: Iterable[type[BaseException]] = ()) -> bool:
    """Say whether ``exc`` (or an exception it was raised from) is an allocation failure.

    >>> is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    True
    >>> is_oom(ValueError("shape mismatch"))
    False
    """
    types = (MemoryError, *oom_types)
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, types):
            return True
        if isinstance(e, OSError) and e.errno == errno.ENOMEM:
            return True
        if isinstance(e, RuntimeError | OSError) and any(m in str(e).lower() for m in OOM_MARKERS):
            return True
        e = e.__cause__ or e.__context__
    return False


def describe(exc: BaseException, oom_types: Iterable[type[BaseException]] = ()) -> str:
    """The text a failed cell stores: non-finite outputs and out-of-memory by name, else type, message, place."""
    if isinstance(exc, NonFiniteOutputs):
        return str(exc)
    if is_oom(exc, oom_types):
        return f"out of memory ({type(exc).__name__}): {' '.join(str(exc).split())}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"
