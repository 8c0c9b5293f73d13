"""Executors: where the runner's (model, variant) groups run: this process, or a Ray cluster.

``local``: this process, one after another. ``ray``: spread over a Ray cluster, without giving up what
makes each energy figure clean. An executor never imports the runner: the runner hands it ``hooks`` (its
group code, and how to build a worker's context and store a failed cell), which Ray pickles by reference.

The unit of work is a group (one load, all its tasks). On Ray each group is a task whose resources come
from how its cells are measured:

- CUDA cells ask for ``num_gpus=1`` (NVML measures one GPU: one group per GPU);
- cells measured with a machine-wide meter (RAPL, CodeCarbon; ``auto`` where a counter is readable) ask
  for the custom resource ``frugal_machine_meter: 1``, which each node advertises once
  (``ray start --resources '{"frugal_machine_meter": 1}'``): no two such groups share a node;
- estimate-meter cells measure their own process, so they may share a node: each asks for as many CPUs
  as it has threads, sets its thread count to that, and is pinned to cores no other Frugal group on that
  machine holds.

The driver is the only writer of the store: a worker runs the runner's own group code against a proxy
store whose reads (the reuse lookup) go to a read-only store reader on the driver's node and whose
writes come back to the driver as they happen; the driver commits each cell when it arrives, so a lost
worker or driver loses nothing finished and rerunning the same command resumes. A worker that dies
mid-group is resubmitted by the driver up to ``max_retries`` times (its cells already committed come back as
reused copies and are not stored twice), then its
remaining cells are stored as failed with the reason; the other groups go on. Each node resolves models
through its own cache and pulls an offline model there on first use, so no weights travel through Ray.
Every cell records its placement: node, pid, GPU ids, pinned cores, threads, and the groups that ran
beside it on that node.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.errors import FrugalError, ModelNotAvailable

if TYPE_CHECKING:
    from evaluator.models import ModelSpec
    from evaluator.tasks import Task
    from evaluator.variants import Composite

#: Custom Ray resource each node advertises once: a machine-wide meter's exclusive claim on the node.
MACHINE_METER_RESOURCE = "frugal_machine_meter"
#: Meters that read a whole CPU package (and its DRAM), not only the measured process.
MACHINE_WIDE_METERS = ("rapl", "codecarbon")
_CORES_FILE = Path(os.environ.get("FRUGAL_CORES_FILE", "/tmp/frugal-cores.json"))


class LocalExecutor:
    """Every group in this process, one after another (the default)."""

    name = "local"

    def run_groups(self, ctx: Any, the_plan: Any, hooks: Any) -> None:
        """Run each (model, variant) group in turn, the cells committed as they finish."""
        for spec in the_plan.models:
            for variant in the_plan.variants:
                if ctx.cancelled():
                    return
                hooks.run_group(ctx, the_plan.tasks, spec, variant)


def get_executor(name: str) -> Any:
    """The executor named by ``RunConfig.executor``."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor()
    raise FrugalError(f"unknown executor {name!r}: use local or ray")


def machine_wide(meter: Any) -> bool:
    """Whether ``meter`` reads a whole machine (so its groups must not share a node)."""
    if meter.name in MACHINE_WIDE_METERS:
        return True
    parts = getattr(meter, "parts", None)  # auto: the counters it found
    return bool(parts) and any(getattr(p, "name", "") == "rapl" for p in parts)


# ------------------------------------------------------------------------------------------ core pinning
@contextlib.contextmanager
def pinned_cores(n: int, owner: str) -> Iterator[list[int]]:
    """Claim ``n`` cores of this machine that no other live Frugal group holds, pin this process to them.

    Claims live in a small JSON file under a lock (one machine, any number of Ray nodes on it); a claim
    whose process is gone is dropped. When fewer cores are free, the process keeps its affinity and the
    placement says it was not pinned.
    """
    allowed = sorted(os.sched_getaffinity(0))
    _CORES_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{_CORES_FILE}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        claims = _live_claims()
        taken = {c for v in claims.values() for c in v["cores"]}
        free = [c for c in allowed if c not in taken]
        mine = free[:n] if len(free) >= n else []
        if mine:
            claims[str(os.getpid())] = {"cores": mine, "owner": owner}
            _CORES_FILE.write_text(json.dumps(claims))
        fcntl.flock(lock, fcntl.LOCK_UN)
    before = os.sched_getaffinity(0)
    if mine:
        os.sched_setaffinity(0, mine)
    try:
        yield mine
    finally:
        if mine:
            os.sched_setaffinity(0, before)
            with open(f"{_CORES_FILE}.lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                claims = _live_claims()
                claims.pop(str(os.getpid()), None)
                _CORES_FILE.write_text(json.dumps(claims))
                fcntl.flock(lock, fcntl.LOCK_UN)


def _live_claims() -> dict[str, Any]:
    try:
        claims = json.loads(_CORES_FILE.read_text())
    except (OSError, ValueError):
        return {}
    live = {}
    for pid, claim in claims.items():
        try:
            os.kill(int(pid), 0)
            live[pid] = claim
        except (OSError, ValueError):
            continue
    return live


# -------------------------------------------------------------------------------------------------- ray
class _ProxyStore:
    """What a worker's group sees as the store: reads go to the driver's reader, writes back to the driver."""

    def __init__(self, reader: Any, out: queue.Queue) -> None:
        self.reader, self.out, self.path = reader, out, Path("<driver>")

    def find_reusable(self, key: str) -> Any:
        import ray

        return ray.get(self.reader.find_reusable.remote(key))

    def find_extendable(self, setup_key: str, item_ids: Any) -> Any:
        import ray

        return ray.get(self.reader.find_extendable.remote(setup_key, list(item_ids)))

    def add_cell(self, run_id: str, cell: Any, items: Any = (), reused_from: int | None = None) -> int:
        self.out.put(("cell", (cell, list(items), reused_from)))
        return 0


class _StoreReader:
    """A read-only view of the driver's store, on the driver's node (the reuse lookup of every worker)."""

    def __init__(self, path: str) -> None:
        from evaluator.store import Store

        self.store = Store(path, readonly=True)

    def find_reusable(self, key: str) -> Any:
        return self.store.find_reusable(key)

    def find_extendable(self, setup_key: str, item_ids: list[str]) -> Any:
        return list(self.store.find_extendable(setup_key, item_ids))


def _ensure_local(spec: ModelSpec) -> None:
    """Resolve the model on this node; pull an offline model into this node's cache on first use."""
    from evaluator.models import pull, resolve

    try:
        resolve(spec)
    except ModelNotAvailable:
        if not spec.offline:
            raise
        pull(spec)


def _group_worker(hooks: Any, config: Any, spec: ModelSpec, variant_name: str, tasks: list[Task], run_id: str,
                  idle_w: float, g_per_kwh: float, reader: Any, threads: int) -> Iterator[tuple[str, Any]]:
    """In a Ray worker: run the runner's group code, yielding its events and cells as they happen."""
    import ray

    from evaluator.variants import resolve_variant

    variant = resolve_variant(variant_name)
    node = ray.get_runtime_context()
    out: queue.Queue = queue.Queue()
    with pinned_cores(threads, f"{spec.name}:{variant.name}") as cores:
        ctx, rt = hooks.worker_ctx(config, variant, run_id, idle_w, g_per_kwh, _ProxyStore(reader, out),
                                   lambda e: out.put(("event", e)), threads)
        node_id = node.get_node_id()
        node_ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        placement = {"executor": "ray", "node_id": node_id, "node_ip": node_ip,
                     "host": socket.gethostname(), "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                     "pinned_cores": cores, "threads": rt.threads, "device": rt.device, "started_at": time.time()}
        yield "started", placement

        def work() -> None:
            try:
                _ensure_local(spec)
                hooks.run_group(ctx, tasks, spec, variant)
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which stores the cells as failed
                out.put(("error", f"{type(exc).__name__}: {exc}"))
            finally:
                ctx.meter.close()
                out.put(("done", None))

        t = threading.Thread(target=work, daemon=True)
        t.start()
        while True:
            kind, payload = out.get()
            if kind == "done":
                break
            if kind == "cell":
                cell, items, reused_from = payload
                payload = (replace(cell, placement={**placement, "done_at": time.time()}), items, reused_from)
            yield kind, payload
        t.join()


class RayExecutor:
    """Groups as Ray tasks with resources derived from their cells; the driver commits every cell."""

    name = "ray"

    def run_groups(self, ctx: Any, the_plan: Any, hooks: Any) -> None:
        """Submit every group, then commit cells as they arrive from the workers."""
        try:
            import ray
        except ImportError:
            raise FrugalError("--executor ray needs Ray: pip install 'frugal-eval[ray]'") from None
        cfg = ctx.config
        if not ray.is_initialized():
            address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or "auto"
            host = address.rsplit(":", 1)[0]
            # a cluster on loopback (Ray turns 127.0.0.1 into the machine's address; 127.0.0.2 and up it keeps)
            loop = {"_node_ip_address": host} if host.startswith("127.") and host != "127.0.0.1" else {}
            try:
                ray.init(address=address, log_to_driver=False, ignore_reinit_error=True, **loop)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FrugalError(f"no Ray cluster at {address!r} ({exc}): start one (`ray start --head`) or "
                                  f"pass --ray-address HOST:PORT") from None
        exclusive = machine_wide(ctx.meter)
        if exclusive and not ray.cluster_resources().get(MACHINE_METER_RESOURCE):
            raise FrugalError(f"meter {cfg.meter!r} reads a whole machine, so its groups need a node each: start "
                              f"every Ray node with --resources '{{\"{MACHINE_METER_RESOURCE}\": 1}}'")
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        reader = ray.remote(num_cpus=0)(_StoreReader).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        ).remote(str(ctx.store.path))
        worker = ray.remote(_group_worker)
        threads = cfg.threads or 1
        jobs = [(spec, variant) for spec in the_plan.models for variant in the_plan.variants]
        inbox: queue.Queue = queue.Queue()
        opts: dict[str, Any] = {"num_cpus": threads, "max_retries": 0}  # retries are the driver's (below)
        if cfg.device == "cuda":
            opts["num_gpus"] = 1
        if exclusive:
            opts["resources"] = {MACHINE_METER_RESOURCE: 1}

        def submit(i: int) -> None:
            spec, variant = jobs[i]
            gen = worker.options(**opts).remote(hooks, cfg, spec, variant.name, the_plan.tasks, ctx.run_id,
                                                ctx.idle_w, ctx.g_per_kwh, reader, threads)
            threading.Thread(target=_drain, args=(i, gen, inbox), daemon=True).start()

        for i in range(len(jobs)):
            submit(i)
        try:
            self._commit(ctx, the_plan, jobs, inbox, hooks, submit)
        finally:
            with contextlib.suppress(Exception):
                ray.kill(reader)

    @staticmethod
    def _commit(ctx: Any, the_plan: Any, jobs: list[tuple[ModelSpec, Composite]], inbox: queue.Queue,
                hooks: Any, submit: Any) -> None:
        """Commit what the workers send, in the order it arrives; resubmit a lost group while retries last.

        A retried group runs again from the start: its cells already committed come back as reused copies
        (through the store reader) and are skipped, so no cell is stored twice.
        """
        open_jobs = set(range(len(jobs)))
        stored: dict[int, set[tuple[str, str]]] = {i: set() for i in open_jobs}
        where: dict[int, dict[str, Any]] = {}  # job -> placement of its current attempt
        running: dict[str, set[int]] = {}  # node -> jobs running there now
        errors: dict[int, str] = {}
        attempts = dict.fromkeys(open_jobs, 0)
        while open_jobs:
            i, kind, payload = inbox.get()
            spec, variant = jobs[i]
            label = f"{spec.name}:{variant.name}"
            if kind == "started":  # (again, when a retried attempt starts)
                for nodes in running.values():
                    nodes.discard(i)
                where[i] = payload
                running.setdefault(payload["node_id"], set()).add(i)
                ctx.emit({"type": "placed", "model": spec.name, "variant": variant.name, "node": payload["node_ip"],
                          "node_id": payload["node_id"], "pid": payload["pid"]})
            elif kind == "event":
                node = where.get(i, {}).get("node_ip")
                ctx.emit({**payload, "node": node} if node else payload)
            elif kind == "cell":
                cell, items, reused_from = payload
                if (cell.suite, cell.task) in stored[i]:
                    continue  # a retried worker re-yields what its first attempt already delivered
                node = cell.placement.get("node_id", "")
                beside = sorted(f"{jobs[j][0].name}:{jobs[j][1].name}" for j in running.get(node, set()) if j != i)
                cell = replace(cell, placement={**cell.placement, "co_running": beside, "committed_at": time.time()})
                ctx.store.add_cell(ctx.run_id, cell, items, reused_from=reused_from)
                stored[i].add((cell.suite, cell.task))
            elif kind == "error":
                errors[i] = payload
            elif kind == "lost" and attempts[i] < ctx.config.max_retries and not ctx.cancelled():
                attempts[i] += 1
                for nodes in running.values():
                    nodes.discard(i)
                ctx.emit({"type": "retry", "model": spec.name, "variant": variant.name, "attempt": attempts[i] + 1,
                          "reason": payload})
                submit(i)
            elif kind in ("end", "lost"):
                for nodes in running.values():
                    nodes.discard(i)
                missing = [t for t in the_plan.tasks if (t.suite, t.name) not in stored[i]]
                if missing and not ctx.cancelled():
                    why = errors.get(i) or payload or "the group ended without these cells"
                    for t in missing:
                        hooks.store_failed(ctx, t, {"model": spec.name, "variant": variant.name},
                                      f"worker lost ({label}): {why}", "")
                open_jobs.discard(i)


def _drain(i: int, gen: Any, inbox: queue.Queue) -> None:
    """Read one group's generator (in a thread of the driver) into the driver's inbox."""
    import ray

    try:
        for ref in gen:
            kind, payload = ray.get(ref)
            inbox.put((i, kind, payload))
    except Exception as exc:  # noqa: BLE001 - the worker died (killed, out of memory): the driver decides
        inbox.put((i, "lost", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
        return
    inbox.put((i, "end", None))

