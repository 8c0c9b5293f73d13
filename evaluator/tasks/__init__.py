"""Task-type registry: one dict of built-ins.

Adding a kind of task: a module here with a :class:`~evaluator.tasks.base.TaskType` subclass and one line
in ``TASK_TYPES``; suite.yaml's ``type:`` names it.
"""

from __future__ import annotations

import importlib
from functools import cache

from evaluator.errors import FrugalError, close_matches
from evaluator.tasks.base import Item, ItemScore, Label, ScoringOptions, ScoringPass, Task, TaskType

#: name -> "module:Class"
TASK_TYPES: dict[str, str] = {
    "classification": "evaluator.tasks.choice:Classification",
    "multiple_choice": "evaluator.tasks.choice:MultipleChoice",
    "generation": "evaluator.tasks.generation:GenerationTask",
}


@cache
def get_task_type(name: str) -> TaskType:
    """The task type registered under ``name``."""
    if name not in TASK_TYPES:
        raise FrugalError(f"unknown task type {name!r}.{close_matches(name, tuple(TASK_TYPES))}")
    mod, cls = TASK_TYPES[name].split(":")
    return getattr(importlib.import_module(mod), cls)()


__all__ = ["TASK_TYPES", "Item", "ItemScore", "Label", "ScoringOptions", "ScoringPass", "Task", "TaskType",
           "get_task_type"]
