"""Outputs under faults: kill -9 while writing, a full disk, a file-size limit, read-only and wrong paths.

Every output is staged in a hidden folder inside ``--out`` and moved into place with ``os.replace``
(evaluator/safeio.py, evaluator/report/__init__.py), so a reader finds each file either as it was or as it
was meant to be, never torn or empty; a write error names the file and exits 2 without a traceback;
``--out`` and ``--store`` are checked before the first cell. The faults are real: SIGKILL to a writing
process, a small tmpfs filled to the brim (when this machine lets the test mount one), RLIMIT_FSIZE in a
child process, a read-only mount.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _synthetic import results_json, two_models

from evaluator.cli import main as frugal
from evaluator.errors import OutputError
from evaluator.report import write_outputs
from evaluator.safeio import STAGING_PREFIX, atomic_write

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _snapshot(folder: Path) -> dict[str, bytes]:
    """The outputs a reader sees (hidden staging folders and temporaries left by a kill are not outputs)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".")]


@contextlib.contextmanager
def _mount_tmpfs(where: Path, size: str, *, read_only: bool = False):
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()[:120]}); the RLIMIT_FSIZE test covers it")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """The complete outputs of two different runs, A and B, as bytes (the writers are deterministic)."""
    root = tmp_path_factory.mktemp("versions")
    a, b = two_models("20260101-000000-aaaaaa", 2.0), two_models("20260101-000000-bbbbbb", 5.0)
    write_outputs(a, root / "a")
    write_outputs(b, root / "b")
    return {"a": _snapshot(root / "a"), "b": _snapshot(root / "b"), "dirs": (root / "a", root / "b")}


def test_write_outputs_leaves_complete_files_and_no_temporaries(versions, tmp_path):
    write_outputs(two_models("20260101-000000-aaaaaa", 2.0), tmp_path / "out")
    assert _snapshot(tmp_path / "out") == versions["a"]
    assert not _leftovers(tmp_path / "out")
    assert {"results.json", "results.csv", "report.html", "summary.md"} <= set(versions["a"])
    assert any(k.startswith("badges/") for k in versions["a"])


def test_a_write_error_names_the_file_and_earlier_files_stay(versions, tmp_path):
    out = tmp_path / "out"
    write_outputs(two_models("20260101-000000-aaaaaa", 2.0), out)
    before = _snapshot(out)
    (out / "summary.md").unlink()
    (out / "summary.md").mkdir()  # os.replace onto a folder fails (EISDIR)
    (out / "summary.md" / "keep").write_text("x")
    with pytest.raises(OutputError) as info:
        write_outputs(two_models("20260101-000000-bbbbbb", 5.0), out)
    assert str(out / "summary.md") in str(info.value) and STAGING_PREFIX not in str(info.value)
    assert (out / "report.html").read_bytes() in (before["report.html"], versions["b"]["report.html"])
    assert not _leftovers(out)


_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from _synthetic import two_models
from evaluator.report import write_outputs
out = Path(sys.argv[1])
runs = [two_models("20260101-000000-bbbbbb", 5.0), two_models("20260101-000000-aaaaaa", 2.0)]
print("ready", flush=True)
i = 0
while True:
    write_outputs(runs[i % 2], out)
    i += 1
"""


def test_kill_9_while_writing_leaves_every_output_whole(versions, tmp_path):
    """SIGKILL a process rewriting the outputs, at random moments: each file is version A or B, whole."""
    out = tmp_path / "out"
    write_outputs(two_models("20260101-000000-aaaaaa", 2.0), out)
    rng = random.Random(17)
    kills = 0
    for delay in [rng.uniform(0.05, 4.0) for _ in range(4)]:
        proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(tests=str(TESTS)), str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and the browser kaleido started for it
        proc.wait(timeout=30)
        kills += proc.returncode == -signal.SIGKILL
        now = _snapshot(out)
        assert set(now) == set(versions["a"]), sorted(set(now) ^ set(versions["a"]))
        for name, data in now.items():
            assert data in (versions["a"][name], versions["b"][name]), f"{name}: torn ({len(data)} bytes)"
    assert kills == 4
    write_outputs(two_models("20260101-000000-aaaaaa", 2.0), out)  # the next write cleans up after the kills
    assert not _leftovers(out)


def test_a_full_disk_keeps_the_previous_outputs_and_prints_no_traceback(versions, pulled, tmp_path):
    """`frugal run --out` on a tmpfs with a few kB left: exit 2, the file and ENOSPC named, outputs intact."""
    with _mount_tmpfs(tmp_path / "disk", "12m") as disk:
        out = disk / "out"
        write_outputs(two_models("20260101-000000-aaaaaa", 2.0), out)
        before = _snapshot(out)
        with open(disk / "filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        (disk / "filler").write_bytes(b"\0" * (os.path.getsize(disk / "filler") - 96 * 1024))  # ~96 kB free
        env = {**os.environ, "FRUGAL_MODELS": str(ROOT / "models.yaml")}
        env.pop("FRUGAL_DEBUG", None)
        proc = subprocess.run([sys.executable, "-m", "evaluator.cli", "run", "--suite", "finance", "--model",
                               "minilm-l6", "--variant", "fp32", "--limit", "2", "--repeats", "1", "--meter",
                               "estimate", "--store", str(tmp_path / "s.sqlite"), "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and "_pytree" not in proc.stderr
        assert "ENOSPC" in proc.stderr and f"could not write {out}/" in proc.stderr
        assert _snapshot(out) == before
        assert not _leftovers(out)


_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from evaluator.cli import main
sys.exit(main(["report", {src!r}, "--out", {dest!r}]))
"""


def test_a_file_size_limit_keeps_the_previous_report_and_prints_no_traceback(versions, tmp_path):
    """RLIMIT_FSIZE (EFBIG) in a child: the same guarantee without mounting anything."""
    src = results_json(tmp_path / "results.json", two_models("20260101-000000-bbbbbb", 5.0))
    dest = tmp_path / "report.html"
    atomic_write(dest, versions["a"]["report.html"])
    limit = 1_000_000
    assert len(versions["a"]["report.html"]) > limit
    proc = subprocess.run([sys.executable, "-c", _LIMITED.format(limit=limit, src=str(src), dest=str(dest))],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "EFBIG" in proc.stderr and str(dest) in proc.stderr
    assert dest.read_bytes() == versions["a"]["report.html"]
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("which", ["out", "store"])
def test_a_read_only_out_or_store_fails_before_the_first_cell(tmp_path, capsys, which):
    with _mount_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        out = ro / "out" if which == "out" else tmp_path / "out"
        store = ro / "s.sqlite" if which == "store" else tmp_path / "s.sqlite"
        code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--variant", "fp32", "--limit", "2",
                       "--store", str(store), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2
        assert f"--{which} " in err and "read-only file system (EROFS)" in err and "Traceback" not in err
        assert "cells ->" not in err  # no run started
        assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-555 folder; the read-only mount covers it")
def test_a_folder_without_write_permission_fails_before_the_first_cell(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--store", str(tmp_path / "s.sqlite"),
                       "--out", str(ro / "out")])
        assert code == 2 and "permission denied" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_an_existing_store_on_a_read_only_mount_fails_before_the_first_cell(tmp_path, capsys):
    with _mount_tmpfs(tmp_path / "disk", "4m") as disk:
        store = disk / "s.sqlite"
        store.write_bytes(b"")  # an existing (empty) store file; SQLite would create its tables on open
        if subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=False).returncode != 0:
            pytest.skip("cannot remount read-only")
        code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--store", str(store)])
        err = capsys.readouterr().err
        assert code == 2 and f"--store {store} cannot be written: read-only file system (EROFS)" in err
        assert "cells ->" not in err and "Traceback" not in err


def test_an_existing_file_as_out_fails_before_the_first_cell(tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a folder")
    code = frugal(["run", "--suite", "finance", "--model", "minilm-l6", "--store", str(tmp_path / "s.sqlite"),
                   "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {out} is a file" in err and "cells ->" not in err
    assert not (tmp_path / "s.sqlite").exists()
