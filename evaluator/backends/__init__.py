"""Backend registry: one dict of built-ins, imported lazily (a runtime's libraries load on first use).

Adding a runtime: a module (or folder) here with a :class:`~evaluator.backends.base.Backend` subclass,
one line in ``BACKENDS``, and variants that name it in their ``backends``.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache

from evaluator.backends.base import (
    EMBEDDING,
    GENERATION,
    LOGLIKELIHOOD,
    REQUEST_KINDS,
    Backend,
    Generation,
    GenerationRequest,
    Loaded,
    LoglikRequest,
    Unsupported,
)
from evaluator.errors import FrugalError, close_matches

#: name -> "module:Class"
BACKENDS: dict[str, str] = {
    "torch": "evaluator.backends.torch_hf:TorchBackend",
    "fake": "evaluator.backends.fake:FakeBackend",
    "llamacpp": "evaluator.backends.llamacpp:LlamaCppBackend",
    "onnxruntime": "evaluator.backends.onnxrt:OnnxRuntimeBackend",
    "openvino": "evaluator.backends.openvino_backend:OpenVinoBackend",
}


@cache
def get_backend(name: str) -> Backend:
    """The backend registered under ``name`` (one instance per process)."""
    if name not in BACKENDS:
        raise FrugalError(f"unknown backend {name!r}.{close_matches(name, tuple(BACKENDS))}")
    mod, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(mod), cls)()


def backend_availability(name: str) -> str | None:
    """None when backend ``name``'s runtime is installed here, else why not (without importing it)."""
    needs = getattr(type(get_backend(name)), "needs", ())
    lacking = [m for m in needs if importlib.util.find_spec(m) is None]
    return f"{', '.join(lacking)} not installed (pip install -e '.[runtimes]')" if lacking else None


__all__ = ["BACKENDS", "EMBEDDING", "GENERATION", "LOGLIKELIHOOD", "REQUEST_KINDS", "Backend", "Generation",
           "GenerationRequest", "backend_availability", "Loaded", "LoglikRequest", "Unsupported", "get_backend"]
