"""A tiny deterministic backend with no weights, for tests of the runner, store, reuse, failures and reports.

A "model" is a folder holding ``fake.json`` (see :class:`FakeConfig`), named in a models file with
``path:`` like any local model, and run with the ``fake`` variant (or ``fake-lite``, half the work).
Scores are a hash of (seed, texts): the same request gives the same answer in every process, so cells
are reproducible and reuse can be checked exactly. Each request costs a fixed amount of CPU work, so the
estimate meter sees energy in proportion. Failures are injected by text: a request whose context holds a
``fail_when`` string raises out-of-memory, NaN outputs or an error, as a real runtime would.

Generation: a "token" is a word (or a newline). The answer is ``replies[key]`` for the first key the prompt
contains, else words drawn from a hash of (seed, prompt); each answer ends with EOS, unless
``max_new_tokens`` or a stop text ends it first. The prompt costs one unit of work and so does each generated
token, so a prefill pass (max_new_tokens=1) costs less than the whole pass. ``chat_template: true``
gives the model a simple chat template.

It imports neither torch nor transformers: a grid of fake cells runs in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.backends.base import (
    EMBEDDING,
    GENERATION,
    LOGLIKELIHOOD,
    Backend,
    Generation,
    GenerationRequest,
    Loaded,
    LoglikRequest,
)
from evaluator.errors import FrugalError
from evaluator.failures import NonFiniteOutputs

if TYPE_CHECKING:
    from evaluator.models import ResolvedModel
    from evaluator.variants import Composite

VERSION = "1"
_DIM = 16


@dataclass(frozen=True)
class FakeConfig:
    """What ``fake.json`` may hold (every field optional)."""

    seed: int = 0
    #: Units of CPU work per request (about 0.1 ms each on these machines).
    cost: float = 1.0
    #: Raise this message at load time (a broken model).
    fail_load: str | None = None
    #: {text: "oom" | "nan" | "error"}: fail a request whose context contains ``text``.
    fail_when: dict[str, str] = field(default_factory=dict)
    params: int = 1_000_000
    #: {text: answer}: a prompt containing ``text`` is answered with ``answer`` (then EOS).
    replies: dict[str, str] = field(default_factory=dict)
    #: Whether the model has a chat template (``<|user|>...<|assistant|>``).
    chat_template: bool = False
    #: Synthetic accuracy for choice items whose context says ``[gold=K]`` (test suites of known difficulty):
    #: the model prefers choice K on a hash-drawn share ``skill`` of those items, another choice on the rest.
    skill: float | None = None


_GOLD = re.compile(r"\[gold=(\d+)\]")
_WORDS = ("the", "answer", "is", "42", "7.5", "tablets", "daily", "\n", "2030", "million", "yes", "no")

class FakeBackend(Backend):
    """Deterministic hash-based scores and embeddings; no weights, no torch."""

    name = "fake"
    description = "deterministic test backend (no weights): hash-based scores, CPU work in proportion"
    capabilities = {"causal-lm": frozenset({LOGLIKELIHOOD, GENERATION}), "encoder": frozenset({EMBEDDING})}

    def load(self, resolved: ResolvedModel, variant: Composite, device: str) -> FakeLoaded:
        """Read ``fake.json`` from the model's folder."""
        path = Path(resolved.location) / "fake.json"
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FrugalError(f"fake model {resolved.spec.name!r}: cannot read {path}: {exc}") from None
        cfg = FakeConfig(**raw)
        if cfg.fail_load:
            raise RuntimeError(cfg.fail_load)
        scale = 0.5 if variant.name == "fake-lite" else 1.0
        return FakeLoaded(resolved.spec.name, resolved.spec.kind, device, self.name, self.serves(resolved.spec.kind),
                          config=cfg, work=max(1, int(cfg.cost * scale * 400)), variant=variant.name)

    def version(self) -> str:
        """The fake's own version."""
        return f"fake {VERSION}"

    def environment(self) -> dict[str, Any]:
        """Nothing but its version."""
        return {"fake": VERSION}


def _h(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).digest()


@dataclass
class FakeLoaded(Loaded):
    """Serves log-likelihood (causal-lm) or embedding (encoder) requests from hashes."""

    config: FakeConfig = field(default_factory=FakeConfig)
    work: int = 400
    variant: str = "fake"

    def _burn(self, text: str) -> None:
        h = text.encode()
        for _ in range(self.work):
            h = hashlib.blake2b(h, digest_size=16).digest()

    def _check(self, text: str) -> None:
        for needle, what in self.config.fail_when.items():
            if needle in text:
                if what == "oom":
                    raise MemoryError("fake allocator: cannot allocate memory")
                if what == "nan":
                    raise NonFiniteOutputs("log-probabilities")
                raise RuntimeError(f"fake failure on {needle!r}")

    def loglikelihood(self, prepared: Any, batch_size: int) -> list[tuple[float, ...]]:
        """-(hash mod 1000)/100 per continuation: deterministic, finite, different per model seed."""
        if self.kind != "causal-lm":
            return super().loglikelihood(prepared, batch_size)
        out = []
        for req in prepared:
            assert isinstance(req, LoglikRequest)
            self._check(req.context)
            self._burn(req.context)
            lls = [-(int.from_bytes(_h(self.config.seed, req.context, c)[:4], "big") % 1000) / 100.0
                   for c in req.continuations]
            gold = _GOLD.search(req.context) if self.config.skill is not None else None
            if gold is not None and int(gold.group(1)) < len(lls):
                k = int(gold.group(1))
                draw = int.from_bytes(_h(self.config.seed, "skill", req.context)[:4], "big") / 2**32
                knows = draw < self.config.skill
                pick = k if knows else (k + 1) % len(lls)
                lls[pick] = max(lls) + 1.0
            out.append(tuple(lls))
        return out

    def embed(self, texts: Sequence[str], batch_size: int) -> Any:
        """Unit vectors from hashes of the texts."""
        import numpy as np

        if self.kind != "encoder":
            return super().embed(texts, batch_size)
        rows = []
        for t in texts:
            self._check(t)
            self._burn(t)
            raw = _h(self.config.seed, t) + _h(self.config.seed, t, 1)
            v = np.array(struct.unpack(f"{_DIM}h", raw[: 2 * _DIM]), dtype=np.float32)
            rows.append(v / (np.linalg.norm(v) or 1.0))
        return np.stack(rows) if rows else np.zeros((0, _DIM), dtype=np.float32)

    def generate(self, prepared: Any, batch_size: int) -> list[Generation]:
        """Replies from ``replies`` or hash-drawn words; EOS, stop texts and max_new_tokens end them."""
        if self.kind != "causal-lm":
            return super().generate(prepared, batch_size)
        out = []
        for req in prepared:
            assert isinstance(req, GenerationRequest)
            self._check(req.prompt)
            self._burn(req.prompt)  # prefill
            reply = next((v for k, v in self.config.replies.items() if k in req.prompt), None)
            if reply is None:
                h = _h(self.config.seed, req.prompt)
                reply = " ".join(_WORDS[b % len(_WORDS)] for b in h[1:2 + h[0] % 12])
            words = [w for w in reply.replace("\n", " \n ").split(" ") if w]
            text, reason, count = "", "length", 0
            for w in [*words, None][:req.max_new_tokens]:
                count += 1
                if w is None:
                    reason = "eos"
                    break
                self._burn(w)  # decode work per token
                text += ("" if w == "\n" or not text or text.endswith("\n") else " ") + w
                cut = min((p for p in (text.find(s) for s in req.stop) if p >= 0), default=-1)
                if cut >= 0:
                    text, reason = text[:cut], "stop"
                    break
            out.append(Generation(text, len(req.prompt.split()), count, reason))
        return out

    def chat_template(self) -> bool:
        """As fake.json says."""
        return self.config.chat_template

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """``<|role|>content`` lines, then ``<|assistant|>``."""
        if not self.config.chat_template:
            return super().render_chat(messages)
        return "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"

    def footprint(self) -> dict[str, Any]:
        """The params fake.json declares; 4 bytes each."""
        p = self.config.params
        return {"params": p, "nonzero_params": p, "size_mb": p * 4 / 1e6, "weight_dtype": "fake"}
