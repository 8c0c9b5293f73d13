"""Background runs as separate OS processes, so they outlive a browser refresh or an app restart.

``start_job(config)`` writes ``FRUGAL_HOME/jobs/<job_id>.json`` and spawns
``python -m evaluator.jobs <that file>`` in its own session. The child calls the same
:func:`evaluator.runner.run` as the CLI and rewrites the job file (temp file + ``os.replace``, under a
per-job ``flock``) on every event: status, run id, cells done / planned and one line per cell.
``cancel_job`` sends SIGTERM; the child's handler sets the runner's cancel event, the current cell
finishes and the run is stored as cancelled. A job whose process is gone while its file still says it
is active is reported as ``died``.

One run at a time: a job started while another is active is ``queued``. Its child waits for the
per-FRUGAL_HOME run lock (``jobs/run.lock``, an ``flock`` the running child holds; the OS releases it when
that process ends, however it ends) and for the older queued jobs, then runs. Two runs at once on a small
machine would distort each other's timing and any machine-wide meter.

No Streamlit here: the app only reads job files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.config import Gates, RunConfig
from evaluator.errors import FrugalError

ACTIVE = ("starting", "queued", "running", "cancelling")
DONE = ("finished", "finished-with-failures", "cancelled", "interrupted", "failed", "died")
#: A job still "starting" this long after it was written, with no live process, is dead.
START_GRACE_S = 120.0
#: A process this young whose command line does not name the job yet may still be between fork and exec.
EXEC_GRACE_S = 10.0


def jobs_dir() -> Path:
    """FRUGAL_HOME/jobs (created on demand)."""
    from evaluator.models import frugal_home

    d = frugal_home() / "jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Job:
    """What a job file says, plus whether its process is still there."""

    job_id: str
    status: str
    config: dict[str, Any]
    created_at: str
    updated_at: str
    pid: int | None = None
    run_id: str | None = None
    store: str | None = None
    cells_planned: int = 0
    cells_done: int = 0
    cells: tuple[dict[str, Any], ...] = ()
    current: str | None = None
    error: str | None = None
    finished_at: str | None = None
    log_path: str = ""
    cancel_requested: bool = False
    #: When the child began the run (after any wait in the queue).
    started_at: str | None = None
    #: The job this one waits for while queued.
    queued_behind: str | None = None
    #: The planner's estimate of the wall time when the job was started (seconds), for comparison.
    estimate_s: float | None = None
    #: time.time() when the job was written: the queue's order (ids have one-second resolution).
    created_ts: float = 0.0

    @property
    def active(self) -> bool:
        """True while the process is (or should be) working."""
        return self.status in ACTIVE

    @property
    def queued(self) -> bool:
        """True while waiting for another job to finish."""
        return self.status == "queued"

    @property
    def progress(self) -> float:
        """Cells done / planned, 0..1 (0 while the grid is not known yet)."""
        return min(1.0, self.cells_done / self.cells_planned) if self.cells_planned else 0.0

    @property
    def failed_cells(self) -> list[dict[str, Any]]:
        """Cell lines with status failed."""
        return [c for c in self.cells if c.get("status") == "failed"]

    def run_config(self) -> RunConfig:
        """Return the RunConfig the job runs."""
        return config_from_dict(self.config)

    def log_tail(self, n_chars: int = 4000) -> str:
        """Return the end of the child's stdout/stderr log (for diagnosing a failed or dead job)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - n_chars))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of ``RunConfig.to_dict`` (lists back to tuples, gates back to Gates)."""
    d = dict(d)
    for k in ("suites", "models", "variants", "tasks"):
        if k in d:
            d[k] = tuple(d[k])
    g = dict(d.pop("gates", None) or {})
    g["require_on_frontier"] = tuple(g.get("require_on_frontier") or ())
    return RunConfig(**d, gates=Gates(**g))


# ------------------------------------------------------------------------------------- job files
def _path(job_id: str, root: Path | None = None) -> Path:
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise FrugalError(f"bad job id {job_id!r}")
    return (root or jobs_dir()) / f"{job_id}.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _update(path: Path, fn: Any) -> dict[str, Any]:
    """Read-modify-write a job file under its lock; ``fn(data)`` edits the dict in place."""
    with _locked(path):
        data = _read(path)
        fn(data)
        data["updated_at"] = _now()
        _write_atomic(path, data)
    return data


def _to_job(data: dict[str, Any]) -> Job:
    names = set(Job.__dataclass_fields__)
    kw = {k: v for k, v in data.items() if k in names}
    kw["cells"] = tuple(kw.get("cells") or ())
    return Job(**kw)


# ------------------------------------------------------------------------------------ processes
def _alive(pid: int | None, job_id: str) -> bool:
    """Say whether ``pid`` is a live (not zombie) process running this job."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it finished
    except (ChildProcessError, OSError):
        pass  # not our child (another app session or CLI started it): look at /proc below
    else:
        # (0, 0): our child and still running, possibly between fork and exec, when its cmdline is still ours
        return done != pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():  # Linux: make sure it is not a zombie nor a recycled pid
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        return job_id in cmdline or _younger_than(proc, EXEC_GRACE_S)  # young: may not have exec'd yet
    return True


def _younger_than(proc: Path, seconds: float) -> bool:
    """Say whether the process at ``/proc/PID`` started less than ``seconds`` ago."""
    try:
        start_ticks = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK") < seconds


def _check_dead(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("status") not in ACTIVE or _alive(data.get("pid"), data["job_id"]):
        return data
    if data.get("status") in ("starting", "queued") and not data.get("pid"):
        age = time.time() - datetime.fromisoformat(data["created_at"]).timestamp()
        if age < START_GRACE_S:
            return data

    def mark(d: dict[str, Any]) -> None:
        if d.get("status") in ACTIVE:
            d["status"] = "died"
            d["finished_at"] = _now()
            d["error"] = d.get("error") or "the job's process ended without recording a result (killed?)"

    with _locked(path):  # re-check under the lock: the child may just have written its last status
        data = _read(path)
        if data.get("status") in ACTIVE and not _alive(data.get("pid"), data["job_id"]):
            mark(data)
            data["updated_at"] = _now()
            _write_atomic(path, data)
    return data


def start_job(config: RunConfig, estimate_s: float | None = None, wait_for_pull: Sequence[str] = ()) -> Job:
    """Validate ``config`` (raises FrugalError), write the job file, spawn the child; return the Job.

    ``estimate_s`` (the planner's estimate shown to the user) is kept in the job file, to compare with the
    time the run took. ``wait_for_pull``: models the background pull (evaluator/background_pull.py) is still
    assembling; the job waits, queued, until they are ready (or the pull ends) before it takes its turn.
    """
    from evaluator.runner import plan

    config.validate()
    the_plan = plan(config)  # every bad input raises here, in the caller, not in the child
    from evaluator.safeio import check_output_dir, check_store_path
    from evaluator.store import default_store_path

    if config.out:  # an output folder or store that cannot be written fails now, not after the grid
        check_output_dir(config.out, "output folder")
    check_store_path(config.store or default_store_path(), "store")
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    path = _path(job_id)
    log = path.with_suffix(".log")
    ahead = [j for j in list_jobs() if j.active]
    data = {"job_id": job_id, "status": "queued" if ahead or wait_for_pull else "starting", "config": config.to_dict(),
            "created_at": _now(), "queued_behind": ahead[-1].job_id if ahead else None, "estimate_s": estimate_s,
            "created_ts": time.time(),
            "updated_at": _now(), "pid": None, "run_id": None, "store": config.store,
            "cells_planned": the_plan.n_cells, "cells_done": 0, "cells": [],
            "current": (f"waiting for the background pull of {', '.join(wait_for_pull)}" if wait_for_pull
                        else f"waiting for job {ahead[-1].job_id} to finish" if ahead else "starting"),
            "error": None, "finished_at": None, "log_path": str(log), "cancel_requested": False,
            "wait_for_pull": list(wait_for_pull)}
    with _locked(path):
        _write_atomic(path, data)
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "evaluator.jobs", str(path)], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)

    def set_pid(d: dict[str, Any]) -> None:
        d["pid"] = d.get("pid") or proc.pid

    return _to_job(_update(path, set_pid))


def get_job(job_id: str) -> Job:
    """Return a job by id (raises FrugalError when unknown); a dead process shows as status 'died'."""
    path = _path(job_id)
    if not path.is_file():
        raise FrugalError(f"no job {job_id!r} in {path.parent}")
    return _to_job(_check_dead(path, _read(path)))


def list_jobs(limit: int = 50) -> list[Job]:
    """Jobs, newest first."""
    out = []
    for p in sorted(jobs_dir().glob("*.json"), reverse=True)[:limit]:
        try:
            out.append(_to_job(_check_dead(p, _read(p))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a foreign or half-written file is not a job
    return out


def cancel_job(job_id: str) -> Job:
    """Ask a job to stop: SIGTERM to its process; the current cell finishes, the run is marked cancelled."""
    job = get_job(job_id)
    if not job.active:
        return job
    path = _path(job_id)

    def flag(d: dict[str, Any]) -> None:
        d["cancel_requested"] = True
        if d.get("status") in ACTIVE:
            d["status"] = "cancelling"

    data = _update(path, flag)
    if data.get("pid") and _alive(data["pid"], job_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(data["pid"], signal.SIGTERM)
    return _to_job(data)


def wait_job(job_id: str, timeout_s: float = 600, poll_s: float = 0.5) -> Job:
    """Block until a job is no longer active (for tests and scripts)."""
    end = time.monotonic() + timeout_s
    while True:
        job = get_job(job_id)
        if not job.active or time.monotonic() > end:
            return job
        time.sleep(poll_s)


# ----------------------------------------------------------------------------------------- estimate
def estimate_seconds(config: RunConfig, store_path: str | None = None) -> float:
    """Estimate a run's wall-clock seconds from rates measured on this machine (see evaluator.planner)."""
    return estimate(config, store_path).total_s


def estimate(config: RunConfig, store_path: str | None = None) -> Any:
    """The cell-by-cell :class:`evaluator.planner.GridEstimate` of ``config``, with this home's job files."""
    from evaluator.planner import estimate_grid

    return estimate_grid(config, store_path or config.store, jobs_dir=jobs_dir())


# --------------------------------------------------------------------------------------------- child
def _child(job_file: str) -> int:
    path = Path(job_file)
    cancel = threading.Event()
    hits = {"n": 0}

    def on_term(_sig: int, _frame: Any) -> None:
        hits["n"] += 1
        cancel.set()
        if hits["n"] > 1:
            raise KeyboardInterrupt  # a second SIGTERM stops the current cell too

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    waits = _read(path).get("wait_for_pull") or []
    arrived = _wait_for_models(path, cancel, waits) if waits else True  # False: cancelled while waiting
    lock = _wait_for_turn(path, cancel) if arrived else None
    if lock is None:  # cancelled while queued
        def dropped(d: dict[str, Any]) -> None:
            d["status"], d["finished_at"], d["current"] = "cancelled", _now(), None
            d["error"] = None
            d["pid"] = os.getpid()

        _update(path, dropped)
        return 0

    def started(d: dict[str, Any]) -> None:
        d["pid"] = os.getpid()
        d["started_at"] = _now()
        d["queued_behind"] = None
        if d.get("cancel_requested"):
            cancel.set()
        else:
            d["status"] = "running"
        d["current"] = "loading libraries"

    data = _update(path, started)
    config = config_from_dict(data["config"])
    order = _cell_order(config)  # (suite, task) per (model, variant), in the runner's order
    pending: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def on_event(e: dict[str, Any]) -> None:
        def apply(d: dict[str, Any]) -> None:
            if e["type"] == "start":
                d["run_id"], d["cells_planned"], d["store"] = e["run_id"], e["cells"], e.get("store")
                d["current"] = "starting"
            elif e["type"] == "load":
                mv = (e["model"], e["variant"])
                todo = pending.setdefault(mv, list(order.get(mv, [])))
                d["current"] = (f"{e['model']} [{e['variant']}] still loaded" if e.get("kept") else
                                f"loading {e['model']} [{e['variant']}]") + (
                    f", then measuring {todo[0][0]}/{todo[0][1]}" if todo else "")
            elif e["type"] == "cell-start":
                on = f" on {e['node']}" if e.get("node") else ""  # the Ray executor says where
                d["current"] = (f"measuring {e['suite']}/{e['task']} · {e['model']} [{e['variant']}]{on} "
                                f"(cell {int(d.get('cells_done') or 0) + 1} of {d.get('cells_planned') or '?'})")
            elif e["type"] == "placed":
                d.setdefault("nodes", {})[f"{e['model']} [{e['variant']}]"] = e["node"]
            elif e["type"] == "cell":
                d["cells_done"] = int(d.get("cells_done") or 0) + 1
                keep = ("suite", "task", "model", "variant", "status", "accuracy", "energy_j", "energy_method",
                        "error", "node")
                d.setdefault("cells", []).append({k: e.get(k) for k in keep} | {"at": _now()})
                mv = (e["model"], e["variant"])
                todo = pending.setdefault(mv, list(order.get(mv, [])))
                if (e["suite"], e["task"]) in todo:
                    todo.remove((e["suite"], e["task"]))
                if todo and e.get("status") != "reused":  # the runner measures the next task of this model now
                    d["current"] = (f"measuring {todo[0][0]}/{todo[0][1]} · {e['model']} [{e['variant']}] "
                                    f"(cell {d['cells_done'] + 1} of {d.get('cells_planned') or '?'})")
                else:
                    d["current"] = f"{e['model']} [{e['variant']}]: {e['suite']}/{e['task']} {e.get('status')}"
            elif e["type"] == "end":
                d["current"] = None
                if e.get("wall_split_s"):
                    d["wall_split_s"] = e["wall_split_s"]  # where the run's time went (runner.PHASES)
            if cancel.is_set() and d.get("status") in ("starting", "running"):
                d["status"] = "cancelling"

        _update(path, apply)

    status, error, code = "failed", None, 1
    try:
        from evaluator.runner import run

        result = run(config, on_event=on_event, cancel=cancel)
        status, code = result.status, 0
        if config.out:  # every output atomically; a write error (full disk) is the job's error, cells stay stored
            from evaluator.report import write_outputs

            try:
                write_outputs(result, Path(config.out), config)
            except FrugalError as exc:
                error, code = f"the run is stored, but its outputs were not written: {exc}", 2
    except KeyboardInterrupt:
        status, error = "cancelled", "stopped during a cell (second stop request)"
    except FrugalError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded for the app; the traceback goes to the log
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"

    def finish(d: dict[str, Any]) -> None:
        d["status"], d["error"], d["finished_at"], d["current"] = status, error, _now(), None

    _update(path, finish)
    lock.close()
    return code


def _cell_order(config: RunConfig) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(model, variant) -> [(suite, task), ...] in the order the runner measures them (empty on any error)."""
    try:
        from evaluator.runner import plan

        p = plan(config)
    except Exception:  # noqa: BLE001 - the run itself reports a bad plan
        return {}
    tasks = [(t.suite, t.name) for s in p.suites for t in s.tasks]
    return {(m.name, v.name): list(tasks) for m in p.models for v in p.variants}


def _wait_for_models(path: Path, cancel: threading.Event, names: Sequence[str], poll_s: float = 1.0) -> bool:
    """Wait, queued, while the background pull still assembles any of ``names``; False if cancelled meanwhile.

    Returns when each is ready or failed, or the pull process is gone: a model that did not arrive then fails
    its cells with the usual "not pulled" reason, the others' cells run.
    """
    from evaluator.background_pull import read_status

    shown = None
    while True:
        if cancel.is_set() or _read(path).get("cancel_requested"):
            return False
        bg = read_status()
        models = bg.get("models") or {}
        pending = [n for n in names if (models.get(n) or {}).get("status") in ("waiting", "pulling")]
        if not bg.get("alive") or not pending:
            return True
        if pending != shown:
            def note(d: dict[str, Any], pending: list[str] = pending) -> None:
                d["pid"] = d.get("pid") or os.getpid()
                if d.get("status") in ("starting", "queued"):
                    d["status"] = "queued"
                    d["current"] = f"waiting for the background pull of {', '.join(pending)}"

            _update(path, note)
            shown = pending
        time.sleep(poll_s)


def _wait_for_turn(path: Path, cancel: threading.Event, poll_s: float = 0.5) -> Any:
    """Hold the run lock (an open file; closing it releases) once no older queued job waits; None if cancelled."""
    lock_path = path.parent / "run.lock"
    me = path.stem
    mine = _read(path)
    my_order = (float(mine.get("created_ts") or 0.0), me)
    marked = False
    while True:
        if cancel.is_set() or _read(path).get("cancel_requested"):
            return None
        fh = open(lock_path, "a")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            got = False
        else:
            got = True
        others = [j for j in list_jobs() if j.job_id != me and j.active]
        # ahead of me: any job measuring now, an older one about to (between start and the lock), older queued
        older = [j for j in others if j.status in ("running", "cancelling")
                 or ((j.created_ts, j.job_id) < my_order and j.status in ("starting", "queued") and j.pid)]
        if got and not older:
            return fh
        if got:
            fh.close()
        if not marked:
            busy = [j.job_id for j in others if j.status != "queued"]
            behind = busy[0] if busy else (older[-1].job_id if older else None)

            def queued(d: dict[str, Any], behind: str | None = behind) -> None:
                d["pid"] = os.getpid()
                if d.get("status") in ("starting", "queued"):
                    d["status"] = "queued"
                    d["queued_behind"] = behind
                    d["current"] = f"waiting for job {behind} to finish" if behind else "waiting for its turn"

            _update(path, queued)
            marked = True
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process: ``python -m evaluator.jobs JOB.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m evaluator.jobs JOB.json", file=sys.stderr)
        return 2
    return _child(argv[0])


__all__ = ["ACTIVE", "DONE", "Job", "cancel_job", "config_from_dict", "estimate_seconds", "get_job", "jobs_dir",
           "list_jobs", "start_job", "wait_job"]

if __name__ == "__main__":
    sys.exit(main())
