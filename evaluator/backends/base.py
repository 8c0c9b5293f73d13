"""The Backend seam: a runtime that loads a model (with its variant) and serves requests.

Models never see suites: they see texts. A task type turns items into requests of the kinds below; a
backend serves the kinds it declares, and the runner only matches the two (it never asks which library
or which model kind it holds). In the spirit of lm-evaluation-harness's ``LM`` (``loglikelihood``,
``generate_until``) and optimum-benchmark's ``backends/<name>/``.

A backend has three required methods: ``load`` (resolved model + variant + device -> a :class:`Loaded`),
``version`` and ``environment``. What the runner needs to stay runtime-free has defaults a backend may
override: ``serves`` (request kinds per model kind, i.e. its capabilities), ``check`` (refuse a model,
variant or device before anything loads), ``pick_device``, ``set_threads`` and ``oom_types``.

A :class:`Loaded` model serves requests: ``loglikelihood`` (one context, several continuations: the
summed log-probability of each), ``embed`` (L2-normalised vectors), ``generate`` (greedy answers with
token counts and stop reasons); each raises
:class:`Unsupported` unless its backend declares it. ``prepare`` does request work that belongs outside
the measured window (tokenising); ``footprint`` says how big the loaded model is.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from evaluator.errors import FrugalError

if TYPE_CHECKING:
    from evaluator.models import ModelSpec, ResolvedModel
    from evaluator.variants import Composite

#: Request kinds a backend may serve.
LOGLIKELIHOOD = "loglikelihood"
EMBEDDING = "embedding"
GENERATION = "generation"
REQUEST_KINDS = (LOGLIKELIHOOD, EMBEDDING, GENERATION)


class Unsupported(FrugalError):
    """A backend was asked for a request kind it does not serve."""


@dataclass(frozen=True)
class LoglikRequest:
    """One context and its candidate continuations; the response is one summed log-probability each.

    ``continuations`` are texts as they follow the context (a task type writes ``" " + choice``); the
    backend tokenises the pair as lm-evaluation-harness does (trailing whitespace of the context moves
    to the continuation).
    """

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt to continue greedily (temperature 0), up to ``max_new_tokens``, stopping at EOS or a stop text.

    ``prompt`` is the full text the model sees (a chat template, when one applies, is already rendered by
    :meth:`Loaded.render_chat`). Never a forced minimum length.
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """What a model wrote for one GenerationRequest (the stop text itself is cut off)."""

    text: str
    prompt_tokens: int
    #: Every token the model produced, one per forward pass: the EOS that ended the answer included (it was
    #: computed), and the tokens of a stop text that was cut off. The same convention on every backend, so
    #: energy per token and decode tokens/s compare like with like.
    generated_tokens: int
    stop_reason: str  # "eos" | "stop" | "length"


def greedy(req: GenerationRequest, prompt_tokens: int, logits: Any, step: Callable[[int, int], Any],
           eos_ids: frozenset[int], decode: Callable[[list[int]], str]) -> Generation:
    """The greedy loop of a backend that decodes one sequence token by token (llama.cpp, ONNX, OpenVINO).

    ``logits``: the prompt's last-position logits; ``step(token, position)`` runs one new token at that
    position and returns the next logits; ``decode(ids)``: the tokens' text. Stops at an EOS id, a stop
    text (cut off) or ``max_new_tokens``, and counts tokens as :class:`Generation` says (the EOS counts).
    """
    new: list[int] = []
    reason = "length"
    while len(new) < req.max_new_tokens:
        tok = int(logits.argmax())
        if tok in eos_ids:
            reason = "eos"
            break
        new.append(tok)
        if req.stop and any(s in decode(new) for s in req.stop):
            reason = "stop"
            break
        if len(new) >= req.max_new_tokens:
            break
        logits = step(tok, prompt_tokens + len(new) - 1)
    text = decode(new)
    if reason == "stop":
        text = text[:min(text.find(s) for s in req.stop if s in text)]
    return Generation(text, prompt_tokens, len(new) + (reason == "eos"), reason)


@dataclass
class Loaded(abc.ABC):
    """A model loaded by a backend, ready to serve requests."""

    name: str
    kind: str  # "encoder" | "causal-lm"
    device: str
    backend: str
    #: Request kinds this loaded model serves (a subset of its backend's ``serves(kind)``).
    kinds: frozenset[str] = frozenset()
    stats: dict[str, Any] = field(default_factory=dict)

    def prepare(self, kind: str, requests: Sequence[Any]) -> Any:
        """Work on ``requests`` that belongs outside the measured window (tokenising); default: none."""
        return list(requests)

    def loglikelihood(self, prepared: Any, batch_size: int) -> list[tuple[float, ...]]:
        """Summed log-probability of each continuation of each request (prepared by ``prepare``)."""
        raise Unsupported(f"{self.backend} does not serve log-likelihood requests for {self.name} ({self.kind})")

    def embed(self, texts: Sequence[str], batch_size: int) -> Any:
        """L2-normalised float32 embeddings (a 2-D torch tensor or array), in input order."""
        raise Unsupported(f"{self.backend} does not serve embedding requests for {self.name} ({self.kind})")

    def generate(self, prepared: Any, batch_size: int) -> list[Generation]:
        """Greedy generations for GenerationRequests (prepared by ``prepare(GENERATION, ...)``), in order."""
        raise Unsupported(f"{self.backend} does not serve generation requests for {self.name} ({self.kind})")

    def chat_template(self) -> bool:
        """Whether this model has a chat template (``chat: auto`` then uses it).

        The default reads the Hugging Face tokenizer a backend keeps as ``self.tokenizer`` (every runtime
        here tokenises with the model's own tokenizer, so prompts are the same text everywhere).
        """
        return bool(getattr(getattr(self, "tokenizer", None), "chat_template", None))

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """``messages`` ({role, content}) as prompt text in this model's chat template, for the assistant's turn."""
        if not self.chat_template():
            raise Unsupported(f"{self.name} has no chat template")
        return self.tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            list(messages), tokenize=False, add_generation_prompt=True)

    def footprint(self) -> dict[str, Any]:
        """params, nonzero_params, size_mb, weight_dtype where known (informative, never fatal)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the model holds (memory is freed when the object goes)."""


class Backend(abc.ABC):
    """A runtime. Subclasses set ``name`` and implement ``load``, ``version`` and ``environment``."""

    name: ClassVar[str] = "base"
    #: One line for `frugal list variants` and the docs.
    description: ClassVar[str] = ""
    #: Request kinds served, by model kind (the declared capabilities).
    capabilities: ClassVar[dict[str, frozenset[str]]] = {}
    #: Devices this backend can run on.
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    @abc.abstractmethod
    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> Loaded:
        """Load weights, apply the variant, return the model ready to serve."""

    @abc.abstractmethod
    def version(self) -> str:
        """The runtime's version (it enters the cell key: another version, another cell)."""

    @abc.abstractmethod
    def environment(self) -> dict[str, Any]:
        """Library versions and device facts stored with the run."""

    # ------------------------------------------------------------------ optional, with defaults
    def serves(self, model_kind: str) -> frozenset[str]:
        """Request kinds this backend serves for a model of ``model_kind``."""
        return self.capabilities.get(model_kind, frozenset())

    def check(self, spec: ModelSpec, variant: Composite, device: str) -> None:
        """Refuse, before anything loads, a model kind, variant or device this backend cannot handle."""
        if not self.serves(spec.kind):
            raise FrugalError(f"backend {self.name!r} cannot load {spec.name} ({spec.kind} models are not supported)")
        if device not in self.devices:
            raise FrugalError(f"backend {self.name!r} runs on {', '.join(self.devices)}, not {device!r}")

    def pick_device(self, requested: str) -> str:
        """'auto' -> the best device this backend has here; an explicit device is checked."""
        if requested in ("auto", "cpu"):
            return "cpu"
        raise FrugalError(f"backend {self.name!r} runs on {', '.join(self.devices)}, not {requested!r}")

    def default_threads(self) -> int:
        """Threads used when the run does not say."""
        return os.cpu_count() or 1

    def set_threads(self, n: int) -> int:
        """Use ``n`` threads for compute; returns the number in effect."""
        return n

    def oom_types(self) -> tuple[type[BaseException], ...]:
        """Exception types this runtime raises when it runs out of memory (besides MemoryError)."""
        return ()
