"""The TaskType seam: what a task is, and how a kind of task turns items into requests and scores.

:class:`Task` and :class:`Item` are what a task type works on.

Tasks never see models and models never see tasks: a task type reads a task's items, builds requests of
the kinds a backend serves (``evaluator.backends.base``: log-likelihood, embedding, generation), and turns
the responses into one :class:`ItemScore` per item and the task's metrics. Three required methods:

- ``parse_item(obj, labels, bad)``: validate the type-specific fields of one data row and return its
  choices, gold index and text target (``bad(message, field)`` builds the error naming file, line, field);
- ``prepare(task, items, loaded, options)``: everything outside the measured window (building and
  tokenising requests, training a probe) -> a :class:`ScoringPass` the runner measures;
- ``metrics(task, scores, method)``: the cell's metric values from its item scores.

``kinds`` lists the request kinds a type can be scored with, in order of preference; the runner refuses
a (task, backend) pair that shares none before anything loads. Optional hooks: ``parse_task`` (the type's
own task-level fields of suite.yaml, e.g. generation's ``max_new_tokens``) and ``cell_figures`` (extra
figures of a cell, e.g. generated tokens and truncation rate).

Every task type shares the prompt format (evaluator/tasks/prompting.py): ``num_fewshot`` examples from the
train split, seeded per item and the same for every model and variant, and ``chat`` (auto | on | off) to
send the prompt and the few-shot turns through the model's chat template.
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from evaluator.backends.base import Loaded


@dataclass(frozen=True)
class Label:
    """A class of a classification task."""

    name: str
    description: str
    text: str


@dataclass(frozen=True)
class Item:
    """One scored example: the fields the templates use, the choices and the gold index, the target text.

    ``gold`` is the index of the right choice (-1 for a task type without choices); ``target`` is the
    right answer as text (for choice tasks, the gold choice), so every task type fits one shape.
    """

    id: str
    fields: Mapping[str, Any]
    choices: tuple[str, ...]
    gold: int
    split: str = "test"
    difficulty: str | None = None
    line: int | None = None
    target: str = ""
    #: Every acceptable answer (generation; ``target`` is the first); empty for choice tasks.
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    """A named task: items plus how to present and score them."""

    suite: str
    name: str
    type: str
    description: str
    prompt: str
    encoder_input: str | None
    labels: tuple[Label, ...]
    metrics: tuple[str, ...]
    items: tuple[Item, ...]
    train_items: tuple[Item, ...] = ()
    source: str = ""
    #: Few-shot examples per prompt, taken from ``train_items`` (0: zero-shot).
    num_fewshot: int = 0
    #: "auto" | "on" | "off": whether the prompt goes through the model's chat template.
    chat: str = "off"
    #: The task type's own settings (parsed by ``TaskType.parse_task``), e.g. max_new_tokens, stop, extract.
    options: Mapping[str, Any] = field(default_factory=dict)

    def render_prompt(self, item: Item) -> str:
        """The prompt text for a causal LM."""
        return render(self.prompt, item.fields)

    def render_encoder_input(self, item: Item) -> str:
        """The text an encoder embeds."""
        return render(self.encoder_input or self.prompt, item.fields)

    def choice_descriptions(self, item: Item) -> tuple[str, ...]:
        """What an encoder compares the input with: label descriptions, or the item's choices."""
        return tuple(lab.description for lab in self.labels) if self.labels else item.choices

    def fingerprint(self, limit: int | None = None) -> str:
        """Changes whenever anything that affects scores changes (templates, labels, items)."""
        h = hashlib.sha256()
        payload = {"type": self.type, "prompt": self.prompt, "enc": self.encoder_input,
                   "labels": [(lab.name, lab.description, lab.text) for lab in self.labels],
                   "metrics": self.metrics}
        if self.num_fewshot or self.chat != "off" or self.options:  # absent by default: old keys stay valid
            payload.update(fewshot=self.num_fewshot, chat=self.chat, options=dict(self.options))
        h.update(json.dumps(payload, sort_keys=True).encode())
        for it in (*self.select(limit), *self.train_items):
            h.update(item_row(it))
        return h.hexdigest()[:20]

    def select(self, limit: int | None) -> tuple[Item, ...]:
        """The first ``limit`` test items, in file order (fixed, reproducible)."""
        return self.items if limit is None else self.items[:limit]


def item_row(it: Item) -> bytes:
    """What of an item affects its score, as canonical bytes (task fingerprints and item digests hash it)."""
    row = [it.id, dict(it.fields), it.choices, it.gold, it.split]
    if it.targets:  # generated answers are scored against these texts
        row.append(list(it.targets))
    return json.dumps(row, sort_keys=True, default=str).encode()


def items_digest(items: Sequence[Item]) -> str:
    """The contents of a set of items, in any order (a cell measured on them can be reused or extended)."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: i.id):
        h.update(item_row(it))
    return h.hexdigest()[:20]


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Replace ``{name}`` with the item's field; ``{{``/``}}`` are literal braces; nothing else runs."""
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            out.append(ch)
            i += 2
        elif ch == "{":
            j = template.index("}", i)
            out.append(str(fields[template[i + 1:j]]))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def template_fields(template: str) -> list[str]:
    """Field names a template uses, read exactly as :func:`render` reads them.

    Raises ValueError on anything but plain names and on a ``{`` that is never closed.
    """
    names, i = [], 0
    while i < len(template):
        if template.startswith("{{", i) or template.startswith("}}", i):
            i += 2
        elif template[i] == "{":
            j = template.find("}", i)
            if j < 0:
                raise ValueError(f"'{{' at character {i + 1} is never closed; write '{{{{' for a literal brace")
            name = template[i + 1:j]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"'{{{name}}}' is not a plain field name")
            names.append(name)
            i = j + 1
        else:
            i += 1
    return names


@dataclass(frozen=True)
class ItemScore:
    """Per-item output of a task type: predictions (choice indices, -1 where none), texts, raw scores."""

    item_id: str
    pred: int
    pred_norm: int
    gold: int
    scores: tuple[float, ...]
    target: str = ""
    output: str = ""
    #: Whether the answer is right, when the task type decides it otherwise than by ``pred == gold``.
    is_correct: bool | None = None

    @property
    def correct(self) -> bool:
        """The task type's verdict, else prediction (acc) equals gold."""
        return self.is_correct if self.is_correct is not None else self.pred == self.gold

    @property
    def correct_norm(self) -> bool:
        """Prediction (acc_norm) equals gold."""
        return self.pred_norm == self.gold


@dataclass(frozen=True)
class ScoringOptions:
    """Run settings a task type may use."""

    batch_size: int = 16
    encoder_method: str = "auto"  # auto | zero-shot | probe
    #: What a task type prepared for this (model, variant) earlier in the run and may use again (the
    #: runner keeps one per pair: an adaptive round reloads the model, but its weights are the same), e.g.
    #: an encoder's probe trained on the task's train split. None: nothing is kept.
    memo: dict[Any, Any] | None = field(default=None, compare=False, hash=False)


@dataclass
class ScoringPass:
    """One cell's scoring, prepared outside the measured window.

    ``run_items(a, b)`` scores items ``a:b`` of the prepared items (what measured windows run, batch by
    batch: ``chunk`` items at a time); ``warm`` runs one batch first. ``prefill_items(a, b)``, when set,
    runs the same requests' prefill only (generation: max_new_tokens=1), measured in its own windows so
    that decode = total - prefill.
    """

    method: str
    run_items: Callable[[int, int], list[ItemScore]]
    n_items: int
    warm: Callable[[], object]
    chunk: int = 16
    prefill_items: Callable[[int, int], object] | None = None
    #: Whether the prompts went through the model's chat template.
    chat: bool = False

    def run(self) -> list[ItemScore]:
        """Score every item once."""
        return self.run_items(0, self.n_items)

    @property
    def batches(self) -> int:
        """Batches of one pass."""
        return -(-self.n_items // max(1, self.chunk))


class TaskType(abc.ABC):
    """Base class: subclasses set ``name``/``kinds`` and implement the three methods."""

    name: ClassVar[str] = "base"
    kinds: ClassVar[tuple[str, ...]] = ()
    #: Fields of suite.yaml's task entry this type accepts beyond the common ones (``parse_task`` reads them).
    extra_fields: ClassVar[frozenset[str]] = frozenset()
    #: ``chat`` when suite.yaml does not say (choice tasks: off, so results without it never change).
    default_chat: ClassVar[str] = "off"

    @abc.abstractmethod
    def parse_item(self, obj: Mapping[str, Any], labels: Sequence[Label],
                   bad: Callable[[str, str], Exception]) -> tuple[tuple[str, ...], int, str]:
        """(choices, gold index, target text) of one data row, or raise ``bad(message, field)``."""

    @abc.abstractmethod
    def prepare(self, task: Task, items: Sequence[Item], loaded: Loaded, options: ScoringOptions) -> ScoringPass:
        """Build and prepare the requests (outside the window) and return the pass to measure."""

    @abc.abstractmethod
    def metrics(self, task: Task, scores: Sequence[ItemScore], method: str) -> dict[str, float]:
        """Metric values of one cell."""

    def parse_task(self, doc: Mapping[str, Any], err: Callable[[str, str], Exception]) -> dict[str, Any]:
        """The type's own task-level settings from suite.yaml (``extra_fields``), validated; default: none."""
        return {}

    def cell_figures(self, task: Task, scores: Sequence[ItemScore], scoring: ScoringPass) -> dict[str, Any]:
        """Figures of a cell beyond metrics and energy (CellResult fields): the prompt format by default."""
        return {"num_fewshot": task.num_fewshot, "chat_template": scoring.chat}

    def chance(self, task: Task, items: Sequence[Item]) -> float:
        """Accuracy of a uniform random guess on ``items`` (0 where it has no meaning)."""
        return sum(1 / len(i.choices) for i in items if i.choices) / len(items) if items else 0.0
