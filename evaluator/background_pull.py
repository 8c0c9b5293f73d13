"""Pull models in a background process, so the app can serve while the weights are assembled.

``python -m evaluator.background_pull --detach NAME ...`` returns at once; a child pulls the models one
after another (the same :func:`evaluator.models.pull` as ``frugal models pull``) and writes its progress to
``FRUGAL_HOME/pulls/status.json`` (temp file + ``os.replace``): per model ``waiting`` | ``pulling`` |
``ready`` | ``failed`` with a message. The Run page reads that file. A second start while a pull
process is alive does nothing (``FRUGAL_HOME/pulls/pull.lock``, an ``flock`` held by the child).

No Streamlit here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def pulls_dir() -> Path:
    """FRUGAL_HOME/pulls (created on demand)."""
    from evaluator.models import frugal_home

    d = frugal_home() / "pulls"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_status() -> dict[str, Any]:
    """{"pid", "started_at", "models": {name: {"status", "message", "at"}}}; {} when no pull ran here."""
    try:
        data = json.loads((pulls_dir() / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    data["alive"] = is_running()
    return data


def is_running() -> bool:
    """Whether a background pull process holds the lock now."""
    path = pulls_dir() / "pull.lock"
    try:
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


def _write(data: dict[str, Any]) -> None:
    path = pulls_dir() / "status.json"
    tmp = path.with_name(f".status.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def start(names: list[str]) -> bool:
    """Spawn the pulling child (detached); False when one is already running."""
    if is_running():
        return False
    log = pulls_dir() / "pull.log"
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as out:
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "evaluator.background_pull", *names], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    return True


def pull_all(names: list[str], models_file: str | None = None) -> int:
    """Pull ``names`` in order, recording progress; 0 when all are ready."""
    from evaluator.models import default_registry_path, list_local, load_registry, pull

    lock = open(pulls_dir() / "pull.lock", "a")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another background pull is running", file=sys.stderr)
        return 0
    reg = load_registry(models_file or default_registry_path())
    local = {r["name"]: r["status"] for r in list_local(reg)}
    data: dict[str, Any] = {"pid": os.getpid(), "started_at": _now(), "models": {}}
    for n in names:
        ready = local.get(n) in ("cache", "path")
        data["models"][n] = {"status": "ready" if ready else "waiting", "message": "", "at": _now()}
    _write(data)
    code = 0
    for n in names:
        if data["models"][n]["status"] == "ready":
            continue
        data["models"][n] = {"status": "pulling", "message": "", "at": _now()}
        _write(data)
        try:
            if n not in reg:
                raise KeyError(f"no model {n!r} in models.yaml")
            res = pull(reg[n], log=lambda m, n=n: (data["models"][n].update(message=m), _write(data)))
        except Exception as exc:  # noqa: BLE001 - recorded for the page
            data["models"][n] = {"status": "failed", "message": f"{type(exc).__name__}: {exc}", "at": _now()}
            code = 1
        else:
            data["models"][n] = {"status": "ready", "message": f"{res.size_mb:,.0f} MB", "at": _now()}
        _write(data)
    data["finished_at"] = _now()
    _write(data)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluator.background_pull [--detach] NAME ...``."""
    ap = argparse.ArgumentParser(prog="python -m evaluator.background_pull")
    ap.add_argument("--detach", action="store_true", help="start the pull in the background and return at once")
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    if args.detach:
        started = start(args.names)
        print(f"pulling {', '.join(args.names)} in the background (progress on the app's Run page; "
              f"log in {pulls_dir() / 'pull.log'})" if started else "a background pull is already running")
        return 0
    return pull_all(args.names)


if __name__ == "__main__":
    sys.exit(main())
