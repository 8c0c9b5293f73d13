r"""Task type ``generation``: the model writes an answer, scored after a recorded extraction step.

A recorded extraction step picks the answer out of what the model wrote; text metrics score it against
one or more acceptable answers.

suite.yaml (beside the common fields ``prompt``, ``metrics``, ``num_fewshot``, ``chat``)::

    type: generation
    max_new_tokens: 32          # the most tokens an answer may have (1-4096); never a forced minimum
    stop: ["\n"]                # stop texts (default ["\n\n"]); EOS always stops
    extract: number             # first-line (default) | number | {regex: "Answer: (.+)"}
    tolerance: 0.001            # relative tolerance of the numeric metric (default 0.001)
    metrics: [numeric]          # exact_match | f1 | numeric | any evaluate id or path (e.g. rouge)
    chat: auto                  # default auto for generation: instruct models get their chat template

Items: the fields the prompt uses and ``target`` (a string) or ``targets`` (a list of acceptable answers).

Decoding is greedy (temperature 0) through the backend's ``generate``: batched, stopping at EOS or a stop
text, up to ``max_new_tokens``. Per item the runner stores the raw output (``output``), correctness and,
as the item's scores, ``(prompt tokens, generated tokens, stop code, answer start, answer end)``: the stop
code is 0 eos, 1 stop, 2 length (:data:`STOP_CODES`), and ``output[start:end]`` is the extracted answer
(:func:`item_detail` reads them back). Correctness is the per-item value of the first binary metric the
task lists (exact_match or numeric; exact_match when it lists neither). The scoring pass carries a prefill
pass (the same prompts with max_new_tokens=1) that the measurement protocol measures apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from evaluator.backends.base import GENERATION, Generation, GenerationRequest, Loaded
from evaluator.errors import FrugalError
from evaluator.metrics.text import exact_match, number_span, numeric_match
from evaluator.tasks.base import Item, ItemScore, Label, ScoringOptions, ScoringPass, Task, TaskType
from evaluator.tasks.prompting import contexts, uses_chat
from evaluator.texts import is_text

STOP_CODES = {"eos": 0, "stop": 1, "length": 2}
STOP_NAMES = {v: k for k, v in STOP_CODES.items()}
EXTRACTORS = ("first-line", "number", "regex")
DEFAULT_STOP = ("\n\n",)
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_TOLERANCE = 1e-3
_CHOICE_METRICS = ("accuracy", "f1_macro")


def extract_span(raw: str, how: str) -> tuple[int, int]:
    r"""Where the answer lies in ``raw``: ``raw[start:end]`` ((0, 0) when nothing is found).

    ``how``: "first-line" (the first non-empty line, stripped), "number" (the first number with its
    currency and scale word) or "regex:PATTERN" (the pattern's first group).

    >>> raw = "  42 mg\nthen more"
    >>> [raw[slice(*extract_span(raw, h))] for h in ("first-line", "number", "regex:(\\d+) mg")]
    ['42 mg', '42', '42']
    """
    if how == "first-line":
        start = len(raw) - len(raw.lstrip())
        end = raw.find("\n", start)
        end = len(raw) if end < 0 else end
        return start, start + len(raw[start:end].rstrip())
    if how == "number":
        return number_span(raw) or (0, 0)
    if how.startswith("regex:"):
        m = re.search(how[len("regex:"):], raw)
        return m.span(1) if m and m.group(1) is not None else (0, 0)
    raise FrugalError(f"unknown answer extraction {how!r}")


def item_detail(output: str, scores: Sequence[float]) -> dict[str, Any]:
    """A generation item's stored scores, read back: tokens, stop reason and the extracted answer.

    >>> item_detail(" 42 mg", (12, 3, 1, 1, 3))
    {'prompt_tokens': 12, 'generated_tokens': 3, 'stop_reason': 'stop', 'answer': '42'}
    """
    if len(scores) < 5:
        return {}
    p, g, code, a, b = (int(x) for x in scores[:5])
    return {"prompt_tokens": p, "generated_tokens": g, "stop_reason": STOP_NAMES.get(code, "?"), "answer": output[a:b]}


def primary_metric(task: Task) -> str:
    """The metric whose per-item value decides correctness: the first binary one listed, else exact_match."""
    from evaluator.metrics import BINARY_TEXT

    return next((m for m in task.metrics if m in BINARY_TEXT), "exact_match")


def is_right(task: Task, answer: str, targets: Sequence[str]) -> bool:
    """Whether ``answer`` is right by the task's primary metric."""
    if primary_metric(task) == "numeric":
        return numeric_match(answer, targets, float(task.options.get("tolerance", DEFAULT_TOLERANCE)))
    return exact_match(answer, targets)


class GenerationTask(TaskType):
    """Answers written by the model, scored after a recorded extraction step."""

    name = "generation"
    kinds = (GENERATION,)
    extra_fields = frozenset({"max_new_tokens", "stop", "extract", "tolerance"})
    default_chat = "auto"

    # ------------------------------------------------------------------------------ parsing
    def parse_task(self, doc: Mapping[str, Any], err: Callable[[str, str], Exception]) -> dict[str, Any]:
        """max_new_tokens, stop, extract, tolerance; and metrics that take text."""
        n = doc.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 4096:
            raise err("must be a whole number from 1 to 4096 (the most tokens an answer may have)", "max_new_tokens")
        stop = doc.get("stop", list(DEFAULT_STOP))
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 8 or not all(isinstance(x, str) and x for x in stop):
            raise err('must be a list of up to 8 non-empty texts, e.g. ["\\n"]', "stop")
        if not all(is_text(x) for x in stop):
            raise err("not valid Unicode text (an unpaired surrogate or a NUL character)", "stop")
        how = doc.get("extract", "first-line")
        if isinstance(how, dict):
            if set(how) != {"regex"} or not isinstance(how["regex"], str):
                raise err('must be first-line, number, or {regex: "PATTERN with one (group)"}', "extract")
            try:
                groups = re.compile(how["regex"]).groups
            except re.error as exc:
                raise err(f"invalid regular expression: {exc}", "extract.regex") from None
            if groups < 1:
                raise err("the regular expression needs a (group): the answer is its first group", "extract.regex")
            how = f"regex:{how['regex']}"
        elif how not in ("first-line", "number"):
            raise err(f'must be first-line, number, or {{regex: "PATTERN"}} (got {how!r})', "extract")
        tol = doc.get("tolerance", DEFAULT_TOLERANCE)
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < 1:
            raise err("must be a relative tolerance from 0 to below 1, e.g. 0.001 (0.1 %)", "tolerance")
        metrics = doc.get("metrics")
        for m in [metrics] if isinstance(metrics, str) else metrics if isinstance(metrics, list) else []:
            if m in _CHOICE_METRICS:
                raise err(f"{m} scores choices; a generation task takes exact_match, f1, numeric or an evaluate "
                          f"metric on text", "metrics")
        return {"max_new_tokens": n, "stop": list(stop), "extract": how, "tolerance": float(tol)}

    def parse_item(self, obj: Mapping[str, Any], labels: Sequence[Label],
                   bad: Callable[[str, str], Exception]) -> tuple[tuple[str, ...], int, str | tuple[str, ...]]:
        """``target`` (text) or ``targets`` (a list of acceptable answers) -> (no choices, -1, the answers)."""
        if "targets" in obj and "target" in obj:
            raise bad("give either target or targets, not both", "targets")
        if "targets" in obj:
            t = obj["targets"]
            if not isinstance(t, list) or not t or not all(isinstance(x, str | int | float) and not isinstance(
                    x, bool) and str(x).strip() for x in t):
                raise bad("must be a non-empty list of acceptable answers (texts)", "targets")
            targets = tuple(str(x) for x in t)
        else:
            t = obj.get("target")
            if not isinstance(t, str | int | float) or isinstance(t, bool) or not str(t).strip():
                raise bad("required: the right answer as text (or targets: a list of acceptable answers)", "target")
            targets = (str(t),)
        if not all(is_text(x) for x in targets):
            raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", "target")
        return (), -1, targets

    # ------------------------------------------------------------------------------ scoring
    def prepare(self, task: Task, items: Sequence[Item], loaded: Loaded, options: ScoringOptions) -> ScoringPass:
        """Greedy generation requests (and their prefill-only twins), tokenised outside the window."""
        if GENERATION not in loaded.kinds:
            raise FrugalError(f"task {task.suite}/{task.name} (generation) needs generation requests; "
                              f"{loaded.backend} does not generate with {loaded.name} ({loaded.kind})")
        chat = uses_chat(task, loaded)
        opts = task.options
        n_max, stop = int(opts.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)), tuple(opts.get("stop", DEFAULT_STOP))
        reqs = [GenerationRequest(p, n_max, stop) for p in contexts(task, items, loaded, chat)]
        prepared = loaded.prepare(GENERATION, reqs)
        prefill = loaded.prepare(GENERATION, [replace(r, max_new_tokens=1) for r in reqs])
        bs = max(1, options.batch_size)
        how = str(opts.get("extract", "first-line"))

        def run(a: int, b: int) -> list[ItemScore]:
            gens = loaded.generate(prepared[a:b], bs)
            return [self.score(task, it, g, how) for it, g in zip(items[a:b], gens, strict=True)]

        def warm() -> object:
            run(0, bs)
            return loaded.generate(prefill[:bs], bs)

        return ScoringPass("generate-greedy", run, len(items), warm, chunk=bs,
                           prefill_items=lambda a, b: loaded.generate(prefill[a:b], bs), chat=chat)

    def score(self, task: Task, item: Item, gen: Generation, how: str) -> ItemScore:
        """One item: the extracted answer judged by the primary metric; tokens and stop reason as scores."""
        a, b = extract_span(gen.text, how)
        right = is_right(task, gen.text[a:b], item.targets or (item.target,))
        code = STOP_CODES.get(gen.stop_reason)
        if code is None:
            raise FrugalError(f"backend returned stop reason {gen.stop_reason!r}; expected eos, stop or length")
        return ItemScore(item.id, -1, -1, -1, (float(gen.prompt_tokens), float(gen.generated_tokens), float(code),
                                               float(a), float(b)), item.target, gen.text, right)

    def metrics(self, task: Task, scores: Sequence[ItemScore], method: str) -> dict[str, float]:
        """Each listed metric on the extracted answers against every acceptable answer."""
        from evaluator import metrics as metric_registry

        by_id = {it.id: it for it in task.items}
        answers = [item_detail(s.output, s.scores).get("answer", "") for s in scores]
        refs = [list(by_id[s.item_id].targets or (s.target,)) if s.item_id in by_id else [s.target] for s in scores]
        out = {}
        for name in task.metrics:
            kwargs = {"tolerance": float(task.options.get("tolerance", DEFAULT_TOLERANCE))} if name == "numeric" else {}
            out[name] = metric_registry.compute_text(name, answers, refs, **kwargs)
        return out

    def cell_figures(self, task: Task, scores: Sequence[ItemScore], scoring: ScoringPass) -> dict[str, Any]:
        """Prompt format, decoding settings, token counts, stop reasons and the truncation rate."""
        details = [item_detail(s.output, s.scores) for s in scores]
        reasons = {k: sum(d["stop_reason"] == k for d in details) for k in STOP_CODES}
        n = len(details)
        return {**super().cell_figures(task, scores, scoring),
                "max_new_tokens": int(task.options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
                "answer_extraction": str(task.options.get("extract", "first-line")),
                "prompt_tokens": sum(d["prompt_tokens"] for d in details),
                "generated_tokens": sum(d["generated_tokens"] for d in details),
                "stop_reasons": reasons, "truncation_rate": reasons["length"] / n if n else None}

    def chance(self, task: Task, items: Sequence[Item]) -> float:
        """No choices to guess among: 0."""
        return 0.0
