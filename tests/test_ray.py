"""The Ray executor on a real two-node Ray cluster on loopback (two raylets started with `ray start`).

Each node advertises 2 CPUs and one `frugal_machine_meter`. Cells run on the fake backend (no weights), so
the grid is quick; the same grid with real models is the slow test at the end. The cluster is stopped
at the end (`ray stop --force`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from evaluator.config import RunConfig
from evaluator.runner import plan, run
from evaluator.store import Store

ROOT = Path(__file__).resolve().parent.parent
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'frugal-eval[ray]')")
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Feeder(threading.Thread):
    """A synthetic one-package powercap tree whose counter advances at 10 W (the RAPL meter reads it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.pkg = root / "intel-rapl:0"
        self.pkg.mkdir(parents=True)
        (self.pkg / "name").write_text("package-0\n")
        (self.pkg / "max_energy_range_uj").write_text("262143328850\n")
        (self.pkg / "energy_uj").write_text("0\n")
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.wait(0.01):
            tmp = self.pkg / "energy_uj.tmp"
            tmp.write_text(f"{int((time.monotonic() - t0) * 10e6)}\n")
            tmp.replace(self.pkg / "energy_uj")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node (127.0.0.2) and a second node (127.0.0.3), each with 2 CPUs and one machine-meter slot."""
    d = tmp_path_factory.mktemp("ray")
    feeder = _Feeder(d / "powercap")
    feeder.start()
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FRUGAL_RAPL_ROOT": str(d / "powercap"),
           "FRUGAL_CORES_FILE": str(d / "cores.json"), "PYTHONPATH": str(ROOT)}
    # Ray turns 127.0.0.1 into the machine's own address; other loopback addresses it keeps: one per node
    common = ["--num-cpus=2", '--resources={"frugal_machine_meter": 1}', "--disable-usage-stats"]
    try:
        subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}",
                        "--include-dashboard=false", *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([str(RAY), "start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        ray.init(address=f"127.0.0.2:{port}", log_to_driver=False, _node_ip_address="127.0.0.2")
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield f"127.0.0.2:{port}", d / "powercap"
    finally:
        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        feeder.stop.set()


def _cfg(fakes: Path, tmp_path: Path, address: str, **kw) -> RunConfig:
    base = {"suites": ("finance", "health"), "models": ("fake-lm", "fake-enc"), "variants": ("fake", "fake-lite"),
            "limit": 5, "repeats": 1, "meter": "estimate", "idle_s": 0, "store": str(tmp_path / "s.sqlite"),
            "models_file": str(fakes), "executor": "ray", "ray_address": address}
    return RunConfig(**{**base, **kw})


def _stored(cfg: RunConfig, run_id: str) -> list[tuple]:
    with sqlite3.connect(cfg.store) as db:
        return db.execute("SELECT suite, task, model, variant FROM cells WHERE run_id=?", (run_id,)).fetchall()


def _predictions(store: str, result) -> dict:
    st = Store(store)
    return {(c.suite, c.task, c.model, c.variant): [(i.item_id, i.pred) for i in
                                                    st.items(result.run_id, c.suite, c.task, c.model, c.variant)]
            for c in result.cells}


def test_the_grid_on_ray_equals_the_local_grid_and_records_where_it_ran(cluster, fakes, tmp_path):
    cfg = _cfg(fakes, tmp_path, cluster[0])
    on_ray = run(cfg)
    local = run(replace(cfg, executor="local", store=str(tmp_path / "local.sqlite")))
    p = plan(cfg)
    assert len(on_ray.cells) == len(local.cells) == p.n_cells
    assert sorted(_stored(cfg, on_ray.run_id)) == sorted(set(_stored(cfg, on_ray.run_id)))  # each cell once
    assert _predictions(cfg.store, on_ray) == _predictions(str(tmp_path / "local.sqlite"), local)
    assert {c.status for c in on_ray.cells} == {c.status for c in local.cells}
    nodes = {c.placement["node_id"] for c in on_ray.cells if c.placement}
    assert all(c.placement.get("executor") == "ray" for c in on_ray.cells if c.status == "ok")
    assert len(nodes) == 2, "four groups on two 2-CPU nodes use both nodes"
    for c in on_ray.cells:
        if c.status == "ok":
            assert c.placement["node_ip"] in ("127.0.0.2", "127.0.0.3") and c.placement["threads"] == 1
            assert isinstance(c.placement["co_running"], list)
    # a second run resumes: everything is reused through the driver's store reader
    again = run(cfg)
    assert all(c.reused for c in again.cells if c.status == "ok")


@pytest.mark.slow  # three runs of a deliberately slow group (about a minute)
def test_a_worker_killed_mid_group_is_retried_and_nothing_is_lost_or_stored_twice(cluster, fakes, tmp_path):
    slow = tmp_path / "models" / "fake-slow"
    slow.mkdir()
    (slow / "fake.json").write_text(json.dumps({"seed": 9, "cost": 400}))
    mf = tmp_path / "slow.yaml"
    mf.write_text(f"models:\n  - name: fake-slow\n    kind: causal-lm\n    path: {slow}\n")
    cfg = _cfg(mf, tmp_path, cluster[0], models=("fake-slow",), variants=("fake",), suites=("finance",), max_retries=1)
    killed: list[int] = []

    def on_event(e: dict) -> None:
        if e["type"] == "cell" and not killed:  # the first cell is in: kill the worker mid-group
            pid = next(iter(placed))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        elif e["type"] == "placed":
            placed.add(e["pid"])

    placed: set[int] = set()
    result = run(cfg, on_event=on_event)
    assert killed, "the worker was killed"
    rows = _stored(cfg, result.run_id)
    assert len(rows) == len(set(rows)) == plan(cfg).n_cells
    assert all(c.status == "ok" for c in result.cells), [c.error for c in result.cells]
    pids = {c.placement["pid"] for c in result.cells}
    assert killed[0] in pids and len(pids) == 2  # cells from the first attempt kept, the rest from the retry

    # without retries the lost group's remaining cells are stored as failed with the reason; a rerun completes
    cfg0 = replace(cfg, max_retries=0, store=str(tmp_path / "s0.sqlite"))
    killed.clear()
    placed.clear()
    lost = run(cfg0, on_event=on_event)
    failed = [c for c in lost.cells if c.status == "failed"]
    assert failed and all("worker lost" in c.error for c in failed)
    assert len(_stored(cfg0, lost.run_id)) == plan(cfg0).n_cells
    rerun = run(replace(cfg0, max_retries=1))
    assert all(c.status == "ok" for c in rerun.cells)
    assert {c.task for c in rerun.cells if not c.reused} == {c.task for c in failed}


def test_groups_measured_with_rapl_never_share_a_node(cluster, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(cluster[1]))  # the driver's meter reads the same synthetic tree
    cfg = _cfg(fakes, tmp_path, cluster[0], meter="rapl", suites=("health",), idle_s=0)
    result = run(cfg)
    ok = [c for c in result.cells if c.status == "ok"]
    assert ok and all(c.energy_method == "rapl" and not c.is_estimate for c in ok)
    assert all(c.placement["co_running"] == [] for c in ok)  # nothing ran beside a RAPL group on its node
    assert len({(c.model, c.variant) for c in ok}) == 4
    spans: dict[str, list[tuple[float, float]]] = {}  # node -> (group start, its last cell done), worker clocks
    for key in {(c.model, c.variant) for c in ok}:
        cs = [c for c in ok if (c.model, c.variant) == key]
        spans.setdefault(cs[0].placement["node_id"], []).append(
            (cs[0].placement["started_at"], max(c.placement["done_at"] for c in cs)))
    for node_spans in spans.values():
        node_spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(node_spans, node_spans[1:], strict=False)), node_spans


@pytest.mark.slow
def test_the_quick_grid_with_real_models_on_ray_equals_local(cluster, pulled, tmp_path):
    cfg = RunConfig(suites=("finance", "health", "climate"), models=("minilm-l6", "smollm2-135m"),
                    variants=("fp32",), limit=4, repeats=1, meter="estimate", idle_s=0,
                    store=str(tmp_path / "s.sqlite"), models_file=str(ROOT / "models.yaml"), executor="ray",
                    ray_address=cluster[0])
    t0 = time.monotonic()
    on_ray = run(cfg)
    t_ray = time.monotonic() - t0
    t0 = time.monotonic()
    local = run(replace(cfg, executor="local", store=str(tmp_path / "local.sqlite")))
    t_local = time.monotonic() - t0
    assert _predictions(cfg.store, on_ray) == _predictions(str(tmp_path / "local.sqlite"), local)
    print(f"quick grid (fp32, 4 items): local {t_local:.1f} s, ray 2 nodes {t_ray:.1f} s")


def test_ray_needs_the_machine_meter_resource_for_a_machine_wide_meter(cluster, fakes, tmp_path, monkeypatch):
    from evaluator import executors
    from evaluator.errors import FrugalError

    monkeypatch.setenv("FRUGAL_RAPL_ROOT", str(cluster[1]))
    monkeypatch.setattr(executors, "MACHINE_METER_RESOURCE", "not_advertised_anywhere")
    with pytest.raises(FrugalError, match="not_advertised_anywhere"):
        run(_cfg(fakes, tmp_path, cluster[0], meter="rapl"))

