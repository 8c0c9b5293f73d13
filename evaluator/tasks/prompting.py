r"""The prompt format every task type shares: few-shot examples and chat templates.

Few-shot (``num_fewshot: k``): k examples from the task's train split, drawn for each item with a seed made
of :data:`FEWSHOT_SEED`, the task's name and the item's id. The draw depends on nothing else (not the model,
the variant, the item limit or the item order), so every cell of a task sees the same examples for the same
item and cells stay paired. As in lm-evaluation-harness, an example is its prompt, ``" "``, its answer, and
examples are separated by a blank line (``"\n\n"``) ahead of the item's own prompt.

Chat (``chat: auto | on | off``): ``on`` sends the prompt, and each example as a user turn followed by its
answer as the assistant's turn, through the model's chat template (``Loaded.render_chat``), ending at the
assistant's turn; a model without a template is refused. ``auto`` does so when the model has a template,
else uses plain text. ``off`` is plain text. After a chat template the answer follows the assistant's turn
directly, so a log-likelihood continuation is ``choice`` rather than ``" " + choice``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evaluator.errors import FrugalError

if TYPE_CHECKING:
    from evaluator.backends.base import Loaded
    from evaluator.tasks.base import Item, Task

FEWSHOT_SEED = 1234
CHAT_MODES = ("auto", "on", "off")
EXAMPLE_SEPARATOR = "\n\n"
TARGET_DELIMITER = " "


def fewshot_examples(task: Task, item: Item) -> list[Item]:
    """The ``task.num_fewshot`` train items shown before ``item`` (never the item itself).

    The same for every model and variant: seeded by the task's name and the item's id only.
    """
    k = task.num_fewshot
    if k <= 0:
        return []
    pool = [t for t in task.train_items if t.id != item.id]
    if len(pool) < k:
        raise FrugalError(f"task {task.suite}/{task.name}: num_fewshot {k} needs at least {k} train items "
                          f"(it has {len(pool)})")
    return random.Random(f"{FEWSHOT_SEED}:{task.name}:{item.id}").sample(pool, k)


def uses_chat(task: Task, loaded: Loaded) -> bool:
    """Whether this task's prompts go through ``loaded``'s chat template (refuses ``on`` without one)."""
    if task.chat == "off":
        return False
    has = loaded.chat_template()
    if task.chat == "on" and not has:
        raise FrugalError(f"task {task.suite}/{task.name} sets chat: on, but {loaded.name} has no chat template "
                          f"(use chat: auto to fall back to plain text)")
    return has


def answer_text(item: Item) -> str:
    """An example's answer as the prompt shows it: the gold choice, or the first acceptable answer."""
    return item.target


def context(task: Task, item: Item, loaded: Loaded | None, chat: bool) -> str:
    """The text the model continues: few-shot examples (if any), then the item's prompt.

    ``chat``: render through ``loaded.render_chat`` (from :func:`uses_chat`).
    """
    shots = fewshot_examples(task, item)
    if chat:
        assert loaded is not None
        messages: list[dict[str, str]] = []
        for ex in shots:
            messages += [{"role": "user", "content": task.render_prompt(ex)},
                         {"role": "assistant", "content": answer_text(ex)}]
        messages.append({"role": "user", "content": task.render_prompt(item)})
        return loaded.render_chat(messages)
    parts = [task.render_prompt(ex) + TARGET_DELIMITER + answer_text(ex) for ex in shots]
    return EXAMPLE_SEPARATOR.join([*parts, task.render_prompt(item)])


def contexts(task: Task, items: Sequence[Item], loaded: Loaded | None, chat: bool) -> list[str]:
    """:func:`context` of each item."""
    return [context(task, it, loaded, chat) for it in items]
