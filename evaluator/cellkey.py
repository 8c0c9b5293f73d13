"""Cell keys and reuse: when a stored cell may stand in for one the run would compute.

Same weights, variant, backend (and its version), task data, scoring and measurement setup -> same key
-> the stored measurement is reused. The key covers a task's content, not its name or its suite's: a
renamed suite reuses its cells, and every reused cell is stored again under the names of the current
run (the measurement is shared; the identity is the run's own).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evaluator.records import SCHEMA_VERSION, CellResult
from evaluator.tasks.base import Item, items_digest

if TYPE_CHECKING:
    from evaluator.config import RunConfig
    from evaluator.store import Store
    from evaluator.tasks.base import Task
    from evaluator.variants import Composite


@dataclass(frozen=True)
class KeyContext:
    """What the key needs beyond the config, task and variant: where and how the cell is measured."""

    fingerprint: str  # of the weights
    meter: str
    device: str
    threads: int
    cpu: str
    backend: str
    backend_version: str
    #: Name and folder of a model given by a local path: a folder's fingerprint is file sizes and times,
    #: which two folders sharing weights (links) but not config.json can have in common.
    model: str | None = None


def cell_key(config: RunConfig, variant: Composite, task: Task, ctx: KeyContext,
             items: Sequence[Item] | None = None) -> str:
    """The reuse key of one (task, model, variant) cell on ``items`` (default: the config's selection)."""
    return _digest({**_setup(config, variant, task, ctx),
                    "items": items_digest(task.select(config.limit) if items is None else items)})


def setup_key(config: RunConfig, variant: Composite, task: Task, ctx: KeyContext) -> str:
    """The cell key without the item set: cells that differ only in which of the task's items they scored."""
    return _digest(_setup(config, variant, task, ctx))


def _setup(config: RunConfig, variant: Composite, task: Task, ctx: KeyContext) -> dict[str, Any]:
    payload = {"schema": SCHEMA_VERSION, "weights": ctx.fingerprint, "variant": variant.record(),
               "backend": ctx.backend, "backend_version": ctx.backend_version,
               "task": task.fingerprint(0), "batch": config.batch_size, "repeats": config.repeats,
               "encoder_method": config.encoder_method, "meter": ctx.meter, "device": ctx.device,
               "threads": ctx.threads, "cpu": ctx.cpu, "watts_per_core": config.watts_per_core,
               "pue": config.pue, "grid": config.grid_intensity, "country": config.country}
    if ctx.model is not None:
        payload["model"] = ctx.model
    return payload


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def extendable(store: Store, setup: str, items: Sequence[Item]) -> tuple[CellResult, list[Any]] | None:
    """The newest stored cell of this setup key on a subset of ``items`` with the same contents, if any.

    The runner extends it with the rest of the items; the planner prices that extension.
    """
    by_id = {it.id: it for it in items}
    for cell, recs in store.find_extendable(setup, by_id):
        if items_digest([by_id[r.item_id] for r in recs]) == cell.items_digest:
            return cell, recs
    return None


def reuse(store: Store, run_id: str, key: str, task: Task, model: str, variant: str) -> CellResult | None:
    """Store a copy of the newest ok cell with ``key`` under this run's names, or return None when none is."""
    hit = store.find_reusable(key)
    if hit is None:
        return None
    original_id, cell = hit
    copy = replace(cell, suite=task.suite, task=task.name, model=model, variant=variant, reused=True)
    store.add_cell(run_id, copy, reused_from=original_id)
    return copy
