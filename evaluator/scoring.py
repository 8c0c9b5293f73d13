"""Direct scoring of one loaded torch model on a task, outside the runner (bench scripts, variant tests).

The runner does not use this module: it goes through the seams (a backend from evaluator/backends/
serves requests that a task type from evaluator/tasks/ builds). These functions compose the same two
pieces for callers that hold one PyTorch model and one task, and give the figures the runner would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluator.backends import get_backend
from evaluator.backends.torch_hf import TokenizedRequest, TorchLoaded, loglikelihood_naive
from evaluator.backends.torch_hf import embed as _embed
from evaluator.backends.torch_hf import encode_requests as _encode
from evaluator.errors import FrugalError
from evaluator.failures import NonFiniteOutputs, check_finite
from evaluator.models import ResolvedModel
from evaluator.tasks import Item, ItemScore, Task, get_task_type
from evaluator.tasks.choice import ChoiceTask, EncoderPlan, loglik_requests
from evaluator.variants import Composite

LoadedModel = TorchLoaded


def pick_device(requested: str = "auto") -> str:
    """'auto' -> cuda when available, else cpu."""
    return get_backend("torch").pick_device(requested)


def load(resolved: ResolvedModel, variant: Composite, device: str = "cpu") -> TorchLoaded:
    """Load a model with the torch backend (weights, variant applied, eval mode)."""
    return get_backend("torch").load(resolved, variant, device)


def encode_requests(tok: Any, task: Task, items: Sequence[Item]) -> list[TokenizedRequest]:
    """Tokenised log-likelihood requests of ``items`` (prompt + ' choice' pairs, as lm-eval splits them)."""
    return _encode(tok, loglik_requests(task, items))


def score_causal(lm: TorchLoaded, task: Task, items: Sequence[Item], batch_size: int = 16,
                 requests: list[TokenizedRequest] | None = None) -> list[ItemScore]:
    """Log-likelihood scores of each item's choices (acc and acc_norm predictions)."""
    return _choice(task).loglik_pass(task, items, lm, batch_size, requests).run()


def score_causal_naive(lm: TorchLoaded, task: Task, items: Sequence[Item]) -> list[list[float]]:
    """Reference: each (prompt + choice) as its own sequence, no batching. For tests only."""
    return loglikelihood_naive(lm, loglik_requests(task, items))


def embed(lm: TorchLoaded, texts: Sequence[str], batch_size: int = 32) -> Any:
    """Mean-pooled (or CLS), L2-normalised float32 embeddings (a torch tensor), in input order."""
    return _embed(lm, texts, batch_size)


def prepare_encoder(lm: TorchLoaded, task: Task, method: str = "auto") -> EncoderPlan:
    """Choose zero-shot or probe and train the probe when asked/possible (outside any window)."""
    return _choice(task).encoder_plan(task, lm, method)


def score_encoder(lm: TorchLoaded, task: Task, items: Sequence[Item], plan: EncoderPlan,
                  batch_size: int = 32) -> list[ItemScore]:
    """Zero-shot cosine or probe prediction for each item."""
    return _choice(task).score_embedding(task, items, lm, plan, batch_size)


def _choice(task: Task) -> ChoiceTask:
    ttype = get_task_type(task.type)
    if not isinstance(ttype, ChoiceTask):
        raise FrugalError(f"task {task.suite}/{task.name} is not a choice task ({task.type})")
    return ttype


__all__ = ["EncoderPlan", "ItemScore", "LoadedModel", "NonFiniteOutputs", "check_finite", "embed", "encode_requests",
           "load", "pick_device", "prepare_encoder", "score_causal", "score_encoder", "score_causal_naive"]
