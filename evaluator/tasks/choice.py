"""Choice task types: ``classification`` (labels shared by every item) and ``multiple_choice``.

Both pick one of an item's choices (for multiple choice, each item has its own).

With a backend that serves log-likelihood (causal LMs), each choice is scored by the log-likelihood of
``" " + choice`` after the prompt: ``acc`` (summed) and ``acc_norm`` (divided by the choice's character
length), as lm-evaluation-harness does. With one that serves embeddings (encoders), zero-shot picks the
label description (or the choice) with the highest cosine; with a train split, a logistic-regression
probe on the embeddings is trained once per cell, outside the measured window.

Few-shot examples and chat templates (evaluator/tasks/prompting.py) shape the log-likelihood context; with
the defaults (``num_fewshot: 0``, ``chat: off``) the context is the prompt alone, as before they existed.
Embeddings use neither: an encoder embeds the item's own text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator.backends.base import EMBEDDING, LOGLIKELIHOOD, Loaded, LoglikRequest
from evaluator.errors import FrugalError
from evaluator.tasks.base import Item, ItemScore, Label, ScoringOptions, ScoringPass, Task, TaskType
from evaluator.tasks.prompting import TARGET_DELIMITER, contexts, uses_chat
from evaluator.texts import is_text


def argmax(xs: Sequence[float]) -> int:
    """Index of the largest value, NaN counting as -inf; the first on ties.

    >>> argmax([0.1, 0.7, 0.7, float("nan")])
    1
    """
    return max(range(len(xs)), key=lambda k: (xs[k] if not math.isnan(xs[k]) else -math.inf))


def loglik_requests(task: Task, items: Sequence[Item], loaded: Loaded | None = None,
                    chat: bool = False) -> list[LoglikRequest]:
    """One request per item: the context (few-shot examples + prompt), and ``" " + choice`` for each choice.

    After a chat template (``chat``, rendered by ``loaded``) the continuation is the bare choice.
    """
    delim = "" if chat else TARGET_DELIMITER
    return [LoglikRequest(ctx, tuple(delim + c for c in it.choices))
            for ctx, it in zip(contexts(task, items, loaded, chat), items, strict=True)]


@dataclass
class EncoderPlan:
    """Per-cell state built outside the measured window: the probe, trained on the train split."""

    method: str  # "probe-logreg" | "zero-shot-cosine"
    probe: Any = None


class ChoiceTask(TaskType):
    """Shared scoring of the two choice types; subclasses parse items and say what an encoder compares."""

    kinds = (LOGLIKELIHOOD, EMBEDDING)

    def shared_comparison_texts(self, task: Task) -> tuple[str, ...] | None:
        """What an encoder compares every input with (zero-shot), when items share it; else None."""
        return None

    def can_probe(self, task: Task) -> bool:
        """Whether a probe can be trained (a classification train split with >= 2 labels)."""
        return False

    # ------------------------------------------------------------------------------ TaskType
    def prepare(self, task: Task, items: Sequence[Item], loaded: Loaded, options: ScoringOptions) -> ScoringPass:
        """Log-likelihood when the backend serves it, else embeddings (zero-shot or probe)."""
        if LOGLIKELIHOOD in loaded.kinds:
            chat = uses_chat(task, loaded)
            prepared = loaded.prepare(LOGLIKELIHOOD, loglik_requests(task, items, loaded, chat))
            scoring = self.loglik_pass(task, items, loaded, options.batch_size, prepared)
            scoring.chat = chat
            return scoring
        if EMBEDDING in loaded.kinds:
            return self._prepare_embedding(task, items, loaded, options)
        raise FrugalError(f"task {task.suite}/{task.name} ({self.name}) needs log-likelihood or embedding requests; "
                          f"{loaded.backend} serves neither for {loaded.name}")

    def cell_figures(self, task: Task, scores: Sequence[ItemScore], scoring: ScoringPass) -> dict[str, Any]:
        """The prompt format; an encoder uses no few-shot examples."""
        return {"num_fewshot": task.num_fewshot if scoring.method == "loglik" else 0, "chat_template": scoring.chat}

    def metrics(self, task: Task, scores: Sequence[ItemScore], method: str) -> dict[str, float]:
        """The task's metrics on choice indices, plus acc_norm for log-likelihood scoring."""
        from evaluator import metrics as metric_registry

        preds, golds = [s.pred for s in scores], [s.gold for s in scores]
        out = {name: metric_registry.compute(name, preds, golds) for name in task.metrics}
        if method == "loglik":
            out["acc_norm"] = sum(s.correct_norm for s in scores) / len(scores)
        return out

    # ---------------------------------------------------------------------------- scoring paths
    def loglik_pass(self, task: Task, items: Sequence[Item], loaded: Loaded, batch_size: int,
                    prepared: Any = None) -> ScoringPass:
        """Score by log-likelihood; ``prepared``: requests already prepared by ``loaded.prepare``."""
        if prepared is None:
            prepared = loaded.prepare(LOGLIKELIHOOD, loglik_requests(task, items))

        def run(a: int, b: int) -> list[ItemScore]:
            lls = loaded.loglikelihood(prepared[a:b], batch_size)
            out = []
            for it, ll in zip(items[a:b], lls, strict=True):
                norm = [x / max(1, len(c)) for x, c in zip(ll, it.choices, strict=True)]
                out.append(_score(it, argmax(ll), argmax(norm), ll))
            return out

        return ScoringPass("loglik", run, len(items), lambda: run(0, batch_size), chunk=batch_size)

    def _prepare_embedding(self, task: Task, items: Sequence[Item], loaded: Loaded,
                           options: ScoringOptions) -> ScoringPass:
        key = ("encoder-plan", task.suite, task.name, options.encoder_method)
        plan = options.memo.get(key) if options.memo is not None else None
        if plan is None:  # the probe is trained once per (model, variant) and task in a run, not per round
            plan = self.encoder_plan(task, loaded, options.encoder_method)
            if options.memo is not None:
                options.memo[key] = plan
        bs = options.batch_size * 2

        def run(a: int, b: int) -> list[ItemScore]:
            return self.score_embedding(task, items[a:b], loaded, plan, bs)

        return ScoringPass(plan.method, run, len(items), lambda: run(0, bs), chunk=bs)

    def encoder_plan(self, task: Task, loaded: Loaded, method: str) -> EncoderPlan:
        """Zero-shot, or a probe trained on the train split (``method``: auto | zero-shot | probe)."""
        can_probe = self.can_probe(task)
        if method == "zero-shot" or (method == "auto" and not can_probe):
            return EncoderPlan("zero-shot-cosine")
        if not can_probe:
            raise FrugalError(f"task {task.suite}/{task.name}: a probe needs a train split with >= 2 labels")
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(loaded.embed([task.render_encoder_input(i) for i in task.train_items], 32))
        y = [i.gold for i in task.train_items]
        return EncoderPlan("probe-logreg", LogisticRegression(max_iter=2000, C=1.0, random_state=0).fit(x, y))

    def score_embedding(self, task: Task, items: Sequence[Item], loaded: Loaded, plan: EncoderPlan,
                        batch_size: int) -> list[ItemScore]:
        """Zero-shot cosine or probe prediction for each item."""
        import numpy as np

        x = np.asarray(loaded.embed([task.render_encoder_input(i) for i in items], batch_size))
        if plan.method == "probe-logreg":
            proba = plan.probe.predict_proba(x)
            classes = list(plan.probe.classes_)
            n = len(task.labels)
            out = []
            for it, p in zip(items, proba, strict=True):
                full = [float(p[classes.index(c)]) if c in classes else 0.0 for c in range(n)]
                pred = argmax(full)
                out.append(_score(it, pred, pred, full))
            return out
        shared = self.shared_comparison_texts(task)
        if shared is not None:  # one set of texts for every item: embed it once
            lab = np.asarray(loaded.embed(list(shared), batch_size))
            return [_score(it, argmax(s), argmax(s), s) for it, s in
                    zip(items, ([float(v) for v in row] for row in x @ lab.T), strict=True)]
        flat = [c for it in items for c in it.choices]
        cv = np.asarray(loaded.embed(flat, batch_size))
        out, pos = [], 0
        for it, q in zip(items, x, strict=True):
            k = len(it.choices)
            s = [float(v) for v in cv[pos:pos + k] @ q]
            pos += k
            out.append(_score(it, argmax(s), argmax(s), s))
        return out


def _score(item: Item, pred: int, pred_norm: int, scores: Sequence[float]) -> ItemScore:
    return ItemScore(item.id, pred, pred_norm, item.gold, tuple(scores), item.target, item.choices[pred])


class Classification(ChoiceTask):
    """A fixed set of labels; each item names its label."""

    name = "classification"

    def parse_item(self, obj: Mapping[str, Any], labels: Sequence[Label],
                   bad: Callable[[str, str], Exception]) -> tuple[tuple[str, ...], int, str]:
        """``label``: one of the task's label names."""
        from evaluator.errors import close_matches

        index = {lab.name: i for i, lab in enumerate(labels)}
        label = obj.get("label")
        if not isinstance(label, str) or label not in index:
            names = tuple(index)
            hint = close_matches(str(label), names) if isinstance(label, str) else f" Known: {', '.join(names)}."
            raise bad(f"{label!r} is not one of the task's labels.{hint}", "label")
        choices = tuple(lab.text for lab in labels)
        return choices, index[label], choices[index[label]]

    def shared_comparison_texts(self, task: Task) -> tuple[str, ...] | None:
        """The label descriptions."""
        return tuple(lab.description for lab in task.labels)

    def can_probe(self, task: Task) -> bool:
        """A train split with at least two labels."""
        return len({i.gold for i in task.train_items}) >= 2


class MultipleChoice(ChoiceTask):
    """Each item has its own choices and the index of the right one."""

    name = "multiple_choice"

    def parse_item(self, obj: Mapping[str, Any], labels: Sequence[Label],
                   bad: Callable[[str, str], Exception]) -> tuple[tuple[str, ...], int, str]:
        """``choices``: 2-10 distinct non-empty strings; ``answer``: the 0-based index of the right one."""
        choices = obj.get("choices")
        if not isinstance(choices, list) or not 2 <= len(choices) <= 10 or not all(
                isinstance(c, str) and c.strip() for c in choices):
            raise bad("must be a list of 2-10 non-empty strings", "choices")
        if not all(is_text(c) for c in choices):
            raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", "choices")
        if len(set(choices)) != len(choices):
            raise bad("choices must be distinct", "choices")
        gold = obj.get("answer")
        if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
            raise bad(f"must be the 0-based index of the correct choice (0-{len(choices) - 1})", "answer")
        return tuple(choices), gold, choices[gold]
