"""Reliability: kill -9 and resume, concurrent writers, failed cells (load, out of memory, NaN), no network.

Everything is real: `frugal run` and background jobs as OS processes, SQLite files, pulled models. The
only "fakes" sit at the edges the tests must control: an address-space limit (``RLIMIT_AS``) so a big
model cannot be allocated, a model folder whose weights were rewritten with a NaN, and a
``sitecustomize`` that blocks and logs internet sockets. Figures for docs land in test-output/.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import json
import os
import re
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _synthetic import choice_tasks

from evaluator.store import Store, StoreError

ROOT = Path(__file__).resolve().parent.parent
MODELS_YAML = ROOT / "models.yaml"
PROGRESS = re.compile(r"^\[[# ]*\] +(\d+)/(\d+) .* (\S+)/(\S+) (\S+) \[(\S+)\]: (.*)$")
#: Address-space limit for the out-of-memory case: minilm-l6 runs in ~1.6 GB of address space;
#: a 1000-layer MiniLM (7 GB of fp32 weights) or qwen2.5-1.5b (6.7 GB mmap) cannot fit.
AS_LIMIT = 4 * 2**30


# ------------------------------------------------------------------------------------------- helpers
def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error", "MALLOC_ARENA_MAX": "2",
                "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")})
    env.update(extra)
    return env


def _run_args(store: Path, suites: tuple[str, ...], models: tuple[str, ...], variants: tuple[str, ...] = ("fp32",),
              limit: int = 2, models_file: Path = MODELS_YAML, out: Path | None = None) -> list[str]:
    args = [sys.executable, "-m", "evaluator.cli", "run", "--limit", str(limit), "--repeats", "1", "--meter",
            "estimate", "--idle-s", "0", "--threads", "1", "--store", str(store), "--models-file", str(models_file)]
    for flag, values in (("--suite", suites), ("--model", models), ("--variant", variants),
                         ("--task", choice_tasks(*suites))):
        for v in values:
            args += [flag, v]
    return args + (["--out", str(out)] if out else [])


def _config(store: Path, suites: tuple[str, ...], models: tuple[str, ...], variants: tuple[str, ...] = ("fp32",),
            limit: int = 2, **kw):
    """The RunConfig that `_run_args` spells as flags."""
    from evaluator.config import RunConfig

    return RunConfig(suites=suites, models=models, variants=variants, limit=limit, repeats=1, meter="estimate",
                     idle_s=0.0, threads=1, store=str(store), models_file=str(MODELS_YAML),
                     tasks=choice_tasks(*suites), **kw)


class Frugal:
    """A `frugal run` process; a thread collects its stderr (progress lines) as it comes."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, preexec_fn: Callable | None = None,
                 log: Path | None = None) -> None:
        self.t0 = time.monotonic()
        self.stdout = log or Path(os.devnull)
        with open(self.stdout, "w") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env or _env(), stdout=out, stderr=subprocess.PIPE,
                                         text=True, preexec_fn=preexec_fn)  # noqa: PLW1509 - setrlimit only
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def cells(self, kind: str = "computed") -> list[str]:
        """Progress lines of cells this process finished: 'computed', 'reused', 'failed' or 'all'."""
        out = []
        for line in list(self.lines):
            m = PROGRESS.match(line)
            if not m:
                continue
            tail = m.group(7)
            k = "reused" if tail.endswith("(reused)") else "failed" if tail.startswith("FAILED") else "computed"
            if kind in (k, "all"):
                out.append(line)
        return out

    def wait_for(self, cond: Callable[[], bool], timeout_s: float = 400, poll_s: float = 0.02) -> bool:
        """Poll ``cond`` until it holds (True) or the process ends / the time is up (False)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if cond():
                return True
            if self.proc.poll() is not None:
                self._reader.join(5)
                return cond()
            time.sleep(poll_s)
        return False

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(5)

    def finish(self, timeout_s: float = 600) -> int:
        """Wait for the exit code."""
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(10)
        return rc

    @property
    def stderr(self) -> str:
        """Everything on stderr so far."""
        return "\n".join(self.lines)

    @property
    def text(self) -> str:
        """The end of stderr (for assertion messages)."""
        return self.stderr[-6000:]

    @property
    def seconds(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self.t0


def write_lock_holder(store: Path) -> int | None:
    """The pid holding SQLite's WAL write lock on ``store`` (byte 120 of the -shm file), without taking it."""
    try:
        fd = os.open(f"{store}-shm", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 120, 1, 0)
        kind, _whence, _start, _len, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        return pid if kind != fcntl.F_UNLCK else None
    finally:
        os.close(fd)


def _db(store: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=60)
    db.row_factory = sqlite3.Row
    return db


def _rows(store: Path) -> list[dict]:
    if not store.exists():
        return []
    with contextlib.closing(_db(store)) as db:
        return [dict(r) for r in db.execute("SELECT id, run_id, cell_key, suite, task, model, variant, status,"
                                            " reused_from, result_json FROM cells ORDER BY id")]


def _originals(store: Path) -> dict[str, dict]:
    """Computed (not reused) ok cells by cell key."""
    return {r["cell_key"]: r for r in _rows(store) if r["status"] == "ok" and r["reused_from"] is None}


def check_store(store: Path) -> dict[str, int]:
    """SQLite's and the store's integrity checks, WAL mode, and no duplicated or half-written cells."""
    with contextlib.closing(_db(store)) as db:
        assert [r[0] for r in db.execute("PRAGMA integrity_check")] == ["ok"]
        assert list(db.execute("PRAGMA foreign_key_check")) == []
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        dup_cells = db.execute("SELECT run_id, suite, task, model, variant FROM cells GROUP BY run_id, suite, task,"
                               " model, variant HAVING COUNT(*) > 1").fetchall()
        assert not dup_cells, [tuple(r) for r in dup_cells]
        dup_keys = db.execute("SELECT cell_key FROM cells WHERE status='ok' AND reused_from IS NULL GROUP BY cell_key"
                              " HAVING COUNT(*) > 1").fetchall()
        assert not dup_keys, f"a finished cell was computed twice: {[r[0] for r in dup_keys]}"
        for r in db.execute("SELECT c.id, c.result_json, COUNT(i.idx) AS n FROM cells c LEFT JOIN items i"
                            " ON i.cell_id=c.id WHERE c.status='ok' AND c.reused_from IS NULL GROUP BY c.id"):
            assert r["n"] == json.loads(r["result_json"])["n_items"], f"cell {r['id']} has {r['n']} items"
        bad_reuse = db.execute("SELECT c.id FROM cells c JOIN cells o ON o.id=c.reused_from WHERE"
                               " o.cell_key != c.cell_key OR o.status != 'ok' OR o.reused_from IS NOT NULL").fetchall()
        assert not bad_reuse, [r[0] for r in bad_reuse]
        counts = {"runs": db.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                  "cells": db.execute("SELECT COUNT(*) FROM cells").fetchone()[0],
                  "items": db.execute("SELECT COUNT(*) FROM items").fetchone()[0]}
    assert Store(store).integrity_check() == []
    return counts


def _run_ids(store: Path) -> list[str]:
    with contextlib.closing(_db(store)) as db:
        return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY rowid")]


def _accuracy_and_preds(store: Path, run_id: str) -> dict[tuple, tuple]:
    st = Store(store)
    return {(c.suite, c.task, c.model, c.variant): (c.status, c.accuracy, c.cell_key,
                                                    tuple(i.pred for i in st.items(run_id, c.suite, c.task, c.model,
                                                                                   c.variant)))
            for c in st.cells(run_id)}


def run_here(config):
    """``runner.run`` in this process, torch's thread count restored afterwards."""
    import torch

    from evaluator.runner import run

    threads = torch.get_num_threads()
    try:
        return run(config)
    finally:
        torch.set_num_threads(threads)


def clean_reference(config) -> dict[tuple, tuple]:
    """An uninterrupted run of ``config`` in this process: per cell, status, accuracy, key, predictions."""
    result = run_here(config)
    assert result.status == "finished", [c.error for c in result.failed]
    return _accuracy_and_preds(Path(config.store), result.run_id)


def _figures(output_dir: Path, name: str, data: dict) -> None:
    (output_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))


# --------------------------------------------------------------------------------- 1. kill -9 and resume
def _resume_and_compare(store: Path, args: list[str], config, committed: dict[str, dict]) -> dict:
    """Run the same command again: every committed cell reused, the rest computed, results as a clean run."""
    p = Frugal(args)
    assert p.finish() == 0, p.text
    resume_s = round(p.seconds, 1)
    final = _run_ids(store)[-1]
    rows = [r for r in _rows(store) if r["run_id"] == final]
    n_cells = len(_accuracy_and_preds(store, final))
    reused = {r["cell_key"] for r in rows if r["reused_from"] is not None}
    assert reused == set(committed), "every cell finished before a kill is reused, none recomputed"
    for r in rows:
        if r["reused_from"] is not None:
            assert r["reused_from"] == committed[r["cell_key"]]["id"]
    assert len(p.cells("reused")) == len(reused) and len(p.cells("computed")) == n_cells - len(reused)
    assert Store(store).get_run(final)["status"] == "finished"
    counts = check_store(store)
    got = _accuracy_and_preds(store, final)
    want = clean_reference(config)
    assert got == want, "resumed results differ from a clean uninterrupted run"
    return {"grid_cells": n_cells, "reused": len(reused), "computed": n_cells - len(reused), "store": counts,
            "resume_s": resume_s}


def test_kill9_after_a_finished_cell_resumes_without_loss(tmp_path, pulled, output_dir):
    t0 = time.monotonic()
    store = tmp_path / "s.sqlite"
    grid = {"suites": ("health",), "models": ("minilm-l6",), "limit": 4}
    args = _run_args(store, **grid)
    p = Frugal(args)
    assert p.wait_for(lambda: len(p.cells()) >= 1), p.text
    p.kill()
    killed = _run_ids(store)[0]
    assert Store(store).get_run(killed)["status"] == "interrupted"
    check_store(store)
    committed = _originals(store)
    assert len(committed) >= 1 and all(r["run_id"] == killed for r in committed.values())
    figures = _resume_and_compare(store, args, _config(tmp_path / "clean.sqlite", **grid), committed)
    assert figures["reused"] >= 1
    _figures(output_dir, "kill9", {"kill_points": ["after 1 finished cell"], **figures,
                                   "runtime_s": round(time.monotonic() - t0, 1)})


@pytest.mark.slow
def test_kill9_at_many_points_resumes_without_loss(tmp_path, pulled, output_dir):
    """Six kills in a row on one store: during the fp32 load, after 1 cell, while holding SQLite's write lock
    (a cell's write), during the bf16 load, after 2 more cells, while holding the write lock among the reused
    copies; then the same command to the end, compared with a clean run."""
    t0 = time.monotonic()
    store = tmp_path / "s.sqlite"
    grid = {"suites": ("finance", "health"), "models": ("minilm-l6",), "variants": ("fp32", "bf16"), "limit": 4}
    args = _run_args(store, **grid)

    def loading(variant: str) -> Callable[[Frugal], bool]:
        return lambda p: any(f"loading minilm-l6 [{variant}]" in ln for ln in p.lines)

    def after(n: int) -> Callable[[Frugal], bool]:
        return lambda p: len(p.cells()) >= n

    def writing(after_kind: str) -> Callable[[Frugal], bool]:
        # after a progress line of that kind, the next holder of the write lock is a cell's add_cell
        return lambda p: len(p.cells(after_kind)) >= 1 and write_lock_holder(store) == p.pid

    points = [("during model load (fp32)", loading("fp32")), ("after 1 computed cell", after(1)),
              ("holding the SQLite write lock after a computed cell", writing("computed")),
              ("during model load (bf16)", loading("bf16")), ("after 2 computed cells", after(2)),
              ("holding the SQLite write lock after a reused copy", writing("reused"))]
    log = []
    for name, cond in points:
        before = _originals(store)
        p = Frugal(args)
        fired = p.wait_for(lambda c=cond, p=p: c(p), poll_s=0.0005)
        if not fired:  # the run ended before the moment came: nothing to kill
            assert p.finish() == 0, p.text
            log.append({"point": name, "hit": False})
            break
        p.kill()
        run_id = _run_ids(store)[-1] if store.exists() else None
        counts = check_store(store) if store.exists() else {}
        after_kill = _originals(store)
        assert set(before) <= set(after_kill), "a kill lost a cell committed by an earlier run"
        if run_id:
            assert Store(store).get_run(run_id)["status"] == "interrupted"
            reused_now = {r["cell_key"] for r in _rows(store) if r["run_id"] == run_id and r["reused_from"]}
            assert reused_now <= set(before)
        log.append({"point": name, "hit": True, "at_s": round(p.seconds, 1), "cells_committed": len(after_kill),
                    "computed_lines": len(p.cells()), "reused_lines": len(p.cells("reused")), **counts})
    committed = _originals(store)
    figures = _resume_and_compare(store, args, _config(tmp_path / "clean.sqlite", **grid), committed)
    assert figures["grid_cells"] == 8
    assert sum(e["hit"] for e in log) >= 5, log
    _figures(output_dir, "kill9_many", {"kill_points": log, "final": figures,
                                        "runtime_s": round(time.monotonic() - t0, 1)})


# ------------------------------------------------------------------------------------ 2. concurrent writers
def test_store_uses_wal_short_transactions_and_waits_when_busy(tmp_path):
    from evaluator.records import CellResult

    store = Store(tmp_path / "s.sqlite")
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store._connect() as db:
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    run_id = store.create_run({}, 1, {}, {})
    # another process holds the write lock for 1.5 s: our write waits for it instead of failing
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1],"
                               " isolation_level=None); db.execute('BEGIN IMMEDIATE'); print('locked', flush=True);"
                               " time.sleep(1.5); db.execute('COMMIT')", str(store.path)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    t0 = time.monotonic()
    store.add_cell(run_id, CellResult(suite="s", task="t", model="m", variant="v", status="failed", cell_key="k"))
    assert time.monotonic() - t0 > 0.5 and holder.wait(30) == 0
    assert len(store.cells(run_id)) == 1
    # a failing body is rolled back once and its own error comes out (the body is never re-run)
    calls = []
    with pytest.raises(StoreError, match="database is locked"), store._tx() as db:
        calls.append(1)
        db.execute("INSERT INTO runs (run_id, created_at, status, config_json) VALUES ('x', 'now', 'r', '{}')")
        raise sqlite3.OperationalError("database is locked")
    assert calls == [1] and [r["run_id"] for r in store.list_runs()] == [run_id]


_WRITER = """
import sys, time
from pathlib import Path
from evaluator.records import CellResult, ItemRecord
from evaluator.store import Store
store, go, wid, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
while not go.exists():
    time.sleep(0.002)
st = Store(store)  # every writer creates the (new) file at the same moment
run = st.create_run({"writer": wid}, n, {}, {})
for i in range(n):
    cell = CellResult(suite="s", task=f"t{i}", model=f"m{wid}", variant="fp32", status="ok", cell_key=f"{wid}-{i}",
                      n_items=10, n_correct=i % 11, accuracy=(i % 11) / 10)
    st.add_cell(run, cell, [ItemRecord(f"it{j}", j % 3, (i + j) % 3, 0, (0.1, 0.2, 0.7)) for j in range(10)])
    if i % 10 == 0:
        assert len(st.cells(run)) == i + 1 and st.find_reusable(f"{wid}-{i}") is not None
        st.list_runs()
st.update_run(run, status="finished")
print(run)
"""


def test_many_writer_processes_lose_and_corrupt_nothing(tmp_path, output_dir):
    t0 = time.monotonic()
    store, go, n_writers, n_cells = tmp_path / "s.sqlite", tmp_path / "go", 6, 150
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store), str(go), f"w{w}", str(n_cells)],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(n_writers)]
    time.sleep(1.0)
    go.touch()
    checks = 0
    while any(p.poll() is None for p in procs):  # a reader checks integrity while they write
        if store.exists():
            with contextlib.suppress(sqlite3.OperationalError):  # the file may not have its tables yet
                check_store(store)
                checks += 1
        time.sleep(0.2)
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * n_writers, [o[1][-2000:] for o in outs]
    counts = check_store(store)
    assert counts == {"runs": n_writers, "cells": n_writers * n_cells, "items": n_writers * n_cells * 10}
    st = Store(store)
    for (stdout, _), w in zip(outs, range(n_writers), strict=True):
        cells = st.cells(stdout.strip())
        assert [c.task for c in cells] == [f"t{i}" for i in range(n_cells)] and {c.model for c in cells} == {f"mw{w}"}
        assert [c.accuracy for c in cells] == [(i % 11) / 10 for i in range(n_cells)]
    _figures(output_dir, "writers", {"writers": n_writers, "cells_each": n_cells, **counts,
                                     "integrity_checks_during": checks, "runtime_s": round(time.monotonic() - t0, 1)})


@pytest.fixture
def home(tmp_path, monkeypatch, pulled):
    """A fresh FRUGAL_HOME for job files that still sees the real model cache."""
    from evaluator.models import frugal_home

    h = tmp_path / "home"
    h.mkdir()
    (h / "models").symlink_to(frugal_home() / "models", target_is_directory=True)
    monkeypatch.setenv("FRUGAL_HOME", str(h))
    return h


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (Linux /proc)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd) == str(path):
                return True
    return False


def test_two_cli_runs_and_a_job_write_one_store_at_once(tmp_path, home, output_dir):
    """Two CLIs and a background job on one store, released together: their runs really overlap.

    The test holds the store's write lock until all three processes have opened the file (each then
    waits in SQLite's busy handler), so the overlap does not depend on how fast each interpreter starts
    on a loaded machine. Creating a new file from many processes at once is the test above.
    """
    from evaluator.jobs import start_job, wait_job

    t0 = time.monotonic()
    store = tmp_path / "shared.sqlite"
    Store(store)  # schema and WAL
    gate = sqlite3.connect(store, isolation_level=None)
    gate.execute("BEGIN IMMEDIATE")  # the barrier: nobody writes until all three are waiting
    a = Frugal(_run_args(store, ("finance",), ("minilm-l6",)))
    b = Frugal(_run_args(store, ("health",), ("minilm-l6",)))
    job = start_job(_config(store, ("climate",), ("minilm-l6",)))
    deadline = time.monotonic() + 240
    pids = [a.pid, b.pid, job.pid]
    while not all(_has_open(pid, store.resolve()) for pid in pids) and time.monotonic() < deadline:
        assert a.proc.poll() is None and b.proc.poll() is None, (a.text, b.text)
        time.sleep(0.1)
    waited = round(time.monotonic() - t0, 1)
    assert all(_has_open(pid, store.resolve()) for pid in pids), f"not all writers opened the store in {waited} s"
    time.sleep(0.5)  # let each reach its first write
    gate.execute("COMMIT")
    gate.close()
    assert a.finish() == 0, a.text
    assert b.finish() == 0, b.text
    done = wait_job(job.job_id, timeout_s=600)
    assert done.status == "finished", (done.error, done.log_tail())
    counts = check_store(store)
    assert counts["runs"] == 3 and counts["cells"] == 6 and counts["items"] == 12
    st = Store(store)
    runs = {r["run_id"]: r for r in st.list_runs()}
    assert {r["status"] for r in runs.values()} == {"finished"} and done.run_id in runs
    suites = {rid: {(c.suite, c.task, c.status) for c in st.cells(rid)} for rid in runs}
    assert sorted(tuple(sorted(s)) for s in suites.values()) == sorted([
        (("climate", "claim-evidence", "ok"), ("climate", "report-relevance", "ok")),
        (("finance", "headline-sentiment", "ok"), ("finance", "numeracy", "ok")),
        (("health", "triage", "ok"), ("health", "yes-no-maybe", "ok"))])
    windows = sorted((r["created_at"], r["finished_at"]) for r in runs.values())
    assert windows[-1][0] <= windows[0][1], f"the three runs did not overlap: {windows}"
    _figures(output_dir, "cli_and_job", {"writers": ["cli", "cli", "job"], **counts, "barrier_s": waited,
                                         "runtime_s": round(time.monotonic() - t0, 1)})


# ------------------------------------------------------------------------------------------ 3. failed cells
def _model_folder(name: str) -> Path:
    from evaluator.models import load_registry, resolve

    return Path(resolve(load_registry(MODELS_YAML)[name]).location)


def _variant_folder(src: Path, dst: Path, config: str | None = None, nan_weight: str | None = None) -> Path:
    """A model folder of links to ``src``, with its own config.json and/or weights rewritten with a NaN."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).symlink_to(f, target_is_directory=f.is_dir())
    if config is not None:
        (dst / "config.json").unlink()
        (dst / "config.json").write_text(config)
    if nan_weight is not None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(src / "model.safetensors")
        tensors[nan_weight].view(-1)[0] = float("nan")
        (dst / "model.safetensors").unlink()
        save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def _models_file(tmp_path: Path, extra: dict[str, tuple[str, Path]]) -> Path:
    entries = "".join(f"  - name: {n}\n    kind: {k}\n    path: {p}\n" for n, (k, p) in extra.items())
    mf = tmp_path / "models.yaml"
    mf.write_text(MODELS_YAML.read_text().replace("models:\n", "models:\n" + entries, 1))
    return mf


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def _check_failed_outputs(out: Path, stderr: str, expect: dict[str, str], good: str) -> dict:
    from evaluator.report.writers import md_escape

    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "finished-with-failures"
    by_model: dict[str, list[dict]] = {}
    for c in doc["cells"]:
        by_model.setdefault(c["model"], []).append(c)
    assert {c["status"] for c in by_model[good]} == {"ok"} and len(by_model[good]) == 2, "the rest of the grid ran"
    summary, report = (out / "summary.md").read_text(), (out / "report.html").read_text()
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    assert f"{len(failed)} cell(s) failed:" in stderr
    for model, reason in expect.items():
        cells = by_model[model]
        assert len(cells) == 2 and all(c["status"] == "failed" and reason in c["error"] for c in cells), cells
        for c in cells:
            line = f"  {c['suite']}/{c['task']} {model} [{c['variant']}]: {c['error']}"
            assert line in stderr, line
            row = [md_escape(v) for v in (c["suite"], c["task"], model, c["variant"], c["error"][:300])]
            assert "| " + " | ".join(row) + " |" in summary, row
            assert html.escape(c["error"]) in report
    return {"failed": {m: by_model[m][0]["error"][:200] for m in expect}, "ok": good}


def test_failed_cells_load_oom_nan_the_rest_completes(tmp_path, pulled, output_dir):
    """A broken config.json, a model too big for the address space, NaN weights: three failed models,
    each with its reason; minilm-l6 still runs; exit code 1; results.json, summary.md and the report say so."""
    t0 = time.monotonic()
    src = _model_folder("minilm-l6")
    cfg = json.loads((src / "config.json").read_text())
    extra = {
        "broken-config": ("encoder", _variant_folder(src, tmp_path / "broken", config='{"model_type": "bert", "hid')),
        "too-big": ("encoder", _variant_folder(src, tmp_path / "big", json.dumps({**cfg, "num_hidden_layers": 1000}))),
        "nan-weights": ("encoder", _variant_folder(src, tmp_path / "nan", nan_weight="embeddings.LayerNorm.weight")),
    }
    out = tmp_path / "out"
    p = Frugal(_run_args(tmp_path / "s.sqlite", ("finance",), (*extra, "minilm-l6"), out=out,
                         models_file=_models_file(tmp_path, extra)), preexec_fn=_limit_address_space)
    assert p.finish() == 1, p.text
    expect = {"broken-config": "load failed: OSError", "too-big": "load failed: out of memory",
              "nan-weights": "non-finite outputs (NaN/inf)"}
    figures = _check_failed_outputs(out, p.stderr, expect, "minilm-l6")
    assert "config" in figures["failed"]["broken-config"]
    check_store(tmp_path / "s.sqlite")
    _figures(output_dir, "failed_cells", {**figures, "address_space_limit_gb": AS_LIMIT / 2**30,
                                          "runtime_s": round(time.monotonic() - t0, 1)})


def test_out_of_memory_and_non_finite_reasons_are_named():
    """Real allocation failures (no limit needed: a petabyte never fits) are described as out of memory."""
    import torch

    from evaluator.failures import describe as _describe
    from evaluator.scoring import NonFiniteOutputs, check_finite

    with pytest.raises(RuntimeError) as torch_oom:
        torch.empty(2**50, dtype=torch.uint8)
    with pytest.raises(MemoryError) as py_oom:
        bytearray(2**50)
    assert _describe(torch_oom.value).startswith("out of memory (RuntimeError): ")
    assert _describe(py_oom.value).startswith("out of memory (MemoryError)")
    assert not _describe(ValueError("shapes do not match")).startswith("out of memory")
    with pytest.raises(NonFiniteOutputs) as nan:
        check_finite([0.5, float("nan")], "scores")
    assert _describe(nan.value) == "non-finite outputs (NaN/inf): the model produced non-finite scores"
    with pytest.raises(NonFiniteOutputs):
        check_finite([-float("inf")], "log-probabilities")


def test_local_models_sharing_weights_are_never_reused_for_each_other(tmp_path, pulled):
    """Two local folders linking the same weights, with config.json files of the same size and time: the
    second model must be computed, not served the first one's cells (the folder fingerprint is sizes and
    times, so only the model's name and folder in the cell key tell them apart)."""
    src = _model_folder("minilm-l6")
    cfg = json.loads((src / "config.json").read_text())
    five = _variant_folder(src, tmp_path / "five", json.dumps({**cfg, "num_hidden_layers": 5}))
    four = _variant_folder(src, tmp_path / "four", json.dumps({**cfg, "num_hidden_layers": 4}))
    stamp = time.time()
    for folder in (five, four):
        os.utime(folder / "config.json", (stamp, stamp))
    mf = _models_file(tmp_path, {"minilm-5": ("encoder", five), "minilm-4": ("encoder", four)})
    config = _config(tmp_path / "s.sqlite", ("health",), ("minilm-5", "minilm-4"), encoder_method="zero-shot")
    from dataclasses import replace

    result = run_here(replace(config, models_file=str(mf)))
    assert result.status == "finished" and len(result.cells) == 4
    assert not any(c.reused for c in result.cells), [(c.model, c.task, c.reused) for c in result.cells]
    assert len({c.cell_key for c in result.cells}) == 4
    scores = {c.model: [i.scores for i in Store(config.store).items(result.run_id, c.suite, c.task, c.model,
                                                                    c.variant)] for c in result.cells
              if c.task == "triage"}
    assert scores["minilm-5"] != scores["minilm-4"]


@pytest.mark.slow
def test_failed_cells_real_big_model_and_nan_causal_lm(tmp_path, pulled, output_dir):
    """qwen2.5-1.5b (6.7 GB of fp32 weights) under a 4 GiB address space, and a SmolLM2 whose final norm
    holds a NaN: both fail with their reason; minilm-l6 completes."""
    from evaluator.models import load_registry, resolve

    t0 = time.monotonic()
    try:
        resolve(load_registry(MODELS_YAML)["qwen2.5-1.5b"])
    except Exception:  # noqa: BLE001 - not pulled on this machine
        pytest.skip("qwen2.5-1.5b is not in the model cache (frugal models pull qwen2.5-1.5b)")
    extra = {"nan-smollm2": ("causal-lm", _variant_folder(_model_folder("smollm2-135m"), tmp_path / "nan",
                                                          nan_weight="model.norm.weight"))}
    out = tmp_path / "out"
    p = Frugal(_run_args(tmp_path / "s.sqlite", ("finance",), ("qwen2.5-1.5b", *extra, "minilm-l6"), out=out,
                         models_file=_models_file(tmp_path, extra)), preexec_fn=_limit_address_space)
    assert p.finish() == 1, p.text
    expect = {"qwen2.5-1.5b": "load failed: out of memory", "nan-smollm2": "non-finite outputs (NaN/inf)"}
    figures = _check_failed_outputs(out, p.stderr, expect, "minilm-l6")
    _figures(output_dir, "failed_cells_big", {**figures, "runtime_s": round(time.monotonic() - t0, 1)})


# ------------------------------------------------------------------------------------ 4. no network at all
SITECUSTOMIZE = '''
"""Test harness: log and refuse every internet connection and DNS lookup (Unix sockets pass)."""
import os
import socket
import traceback

_LOG = os.environ["FRUGAL_TEST_SOCKET_LOG"]
with open(_LOG + ".armed", "a") as _fh:
    _fh.write(f"{os.getpid()}\\n")


def _refuse(what):
    with open(_LOG, "a") as fh:
        fh.write(f"pid {os.getpid()}: {what}\\n{''.join(traceback.format_stack(limit=15))}\\n")
    raise OSError(101, f"network blocked by the test: {what}")


def _inet(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6)


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    return _refuse(f"connect {address!r}") if _inet(self) else _connect(self, address)


def connect_ex(self, address):
    return _refuse(f"connect_ex {address!r}") if _inet(self) else _connect_ex(self, address)


def create_connection(address, *args, **kwargs):
    return _refuse(f"create_connection {address!r}")


def getaddrinfo(host, *args, **kwargs):
    return _refuse(f"getaddrinfo {host!r}")


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.create_connection = create_connection
socket.getaddrinfo = socket.gethostbyname = socket.gethostbyname_ex = getaddrinfo
'''


def test_run_opens_no_internet_socket(tmp_path, pulled, output_dir):
    t0 = time.monotonic()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "sockets.log"
    env = _env(FRUGAL_TEST_SOCKET_LOG=str(log))
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        env.pop(var, None)  # no offline switches: what a user gets by default, with the models pulled
    # the harness works: a connection attempt is logged and refused; a Unix socket is not
    code = ("import socket\nprint(socket.socket(socket.AF_UNIX).connect_ex('/nonexistent'))\n"
            "try:\n    socket.create_connection(('example.com', 80))\nexcept OSError as e:\n    print(e)\n")
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "network blocked" in probe.stdout, probe.stdout + probe.stderr
    assert "example.com" in log.read_text() and "nonexistent" not in log.read_text()
    log.unlink()
    Path(f"{log}.armed").unlink()
    p = Frugal(_run_args(tmp_path / "s.sqlite", ("finance",), ("minilm-l6", "smollm2-135m"), limit=3,
                         out=tmp_path / "out"), env=env)
    assert p.finish() == 0, p.text
    assert (Path(f"{log}.armed")).read_text().strip(), "sitecustomize was not loaded"
    assert not log.exists(), log.read_text()
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(doc["cells"]) == 4 and {c["status"] for c in doc["cells"]} == {"ok"}
    _figures(output_dir, "sockets", {"cells": 4, "connection_attempts": 0,
                                     "processes_armed": len(Path(f"{log}.armed").read_text().split()),
                                     "runtime_s": round(time.monotonic() - t0, 1)})
