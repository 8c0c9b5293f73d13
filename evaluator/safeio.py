"""Atomic output files: a reader sees the old file or the new one, never a torn one.

Every file Frugal writes for people (results.json, results.csv, report.html, summary.md, PNG charts,
badges, cache manifests) goes through :func:`atomic_write`: the bytes go to a temporary file in the same
folder (same file system, so the rename is atomic), are flushed and fsync'ed, then ``os.replace`` puts
them in place. A kill -9 or a full disk in the middle leaves the previous file as it was and at worst a
hidden ``.NAME.*.tmp`` beside it; the error (ENOSPC, EACCES, EFBIG, EROFS...) is raised as an
:class:`~evaluator.errors.OutputError` that names the file, which the CLI prints without a traceback
(exit 2).

:func:`check_output_dir` and :func:`check_store_path` test a path before any work is done, so a run
does not compute for an hour and then find that ``--out`` is a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from evaluator.errors import OutputError

#: Reasons for the errors a write meets. (Python ignores SIGXFSZ, so a file-size limit is EFBIG, not a kill.)
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "file too large (a file-size limit)", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system",
                 errno.ENOTDIR: "a parent is not a folder", errno.EISDIR: "it is a folder",
                 errno.ENOENT: "no such folder"}


def describe_os_error(exc: OSError) -> str:
    """A short human reason for an OSError: 'no space left on the device (ENOSPC)'."""
    code = exc.errno or 0
    name = errno.errorcode.get(code, "")
    reason = _WRITE_ERRNOS.get(code) or (exc.strerror or str(exc)).lower()
    return f"{reason} ({name})" if name else reason


def tmp_path_for(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden temporary name beside ``path`` (same folder, so ``os.replace`` is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                  newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path`` atomically.

    ``mode`` is "w" (text) or "wb". On any error the temporary file is removed, ``path`` is untouched and
    an OSError becomes an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode must be 'w' or 'wb', not {mode!r}")
    tmp = tmp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 & ~umask, like open(): the replaced file keeps ordinary permissions (mkstemp would give 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"could not write {path}: {describe_os_error(exc)}", path=str(path)) from None
    try:
        kw = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"could not write {path}: {describe_os_error(exc)}; the previous file (if any) "
                          "is unchanged", path=str(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; return the path."""
    path = Path(path)
    if isinstance(data, bytes):
        with atomic_writer(path, "wb") as fh:
            fh.write(data)
    else:
        with atomic_writer(path, "w", encoding=encoding) as fh:
            fh.write(data)
    return path


def atomic_render(paths: list[Path], render: Callable[[list[Path]], None]) -> list[Path]:
    """Let ``render`` write to temporary names (same suffixes), then replace each final path.

    For writers that take file names rather than file objects (kaleido's PNG export). Either every file is
    replaced or, on an error, none of the temporaries is left behind.
    """
    tmps = [p.with_name(f".{p.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{p.suffix}") for p in paths]
    where = paths[0]
    try:
        render(tmps)
        for t, p in zip(tmps, paths, strict=True):
            where = p
            with open(t, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(t, p)
    except OSError as exc:
        raise OutputError(f"could not write {where}: {describe_os_error(exc)}; the previous file (if any) "
                          "is unchanged", path=str(where)) from None
    finally:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink()
    return paths


# ---------------------------------------------------------------------------------------- staging
STAGING_PREFIX = ".frugal-staging-"


def staging_dir(out: Path) -> Path:
    """A new hidden folder inside ``out`` where a set of outputs is written before it is moved into place."""
    d = out / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    d.mkdir()
    return d


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_staging(out: Path) -> None:
    """Remove staging folders (and temp files) that a killed writer left in ``out``."""
    import shutil

    for d in out.glob(f"{STAGING_PREFIX}*"):
        try:
            pid = int(d.name[len(STAGING_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------ pre-flight
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_folder(folder: Path, what: str, shown: Path) -> None:
    """Create and remove a file in ``folder``: the real test (os.access lies for root and for ACLs)."""
    probe = folder / f".frugal-write-test.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what} {shown}: cannot write in {folder}: {describe_os_error(exc)}",
                          path=str(shown)) from None


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """Fail now, with the reason, when ``path`` cannot be (or become) a writable output folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder: choose a folder for the outputs",
                          path=str(path))
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise OutputError(f"{what} {path}: {base} is a file, so the folder cannot be created", path=str(path))
    _probe_folder(base, what, path)
    return path


def check_store_path(path: str | Path, what: str = "--store") -> Path:
    """Fail now when the SQLite store at ``path`` could not be created or written.

    A folder given as the store, a read-only store file, or a folder where SQLite cannot create the file
    and its journal (``-wal``, ``-shm``) are refused with the path and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give the path of a .sqlite file (it is created if "
                          "missing)", path=str(path))
    if path.exists():
        # Never open the database file itself: closing any descriptor of a file drops every POSIX lock this
        # process holds on it, SQLite's included (the app or a test may hold a connection to this store).
        if not os.access(path, os.W_OK):
            ro = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
            reason = describe_os_error(OSError(errno.EROFS if ro else errno.EACCES, ""))
            raise OutputError(f"{what} {path} cannot be written: {reason}; a run stores every cell as it "
                              "finishes (read-only commands such as `frugal runs` still work)", path=str(path))
        _probe_folder(path.absolute().parent, what, path)
        return path
    base = _nearest_existing(path.absolute().parent)
    if not base.is_dir():
        raise OutputError(f"{what} {path}: {base} is a file, so the store's folder cannot be created",
                          path=str(path))
    _probe_folder(base, what, path)
    return path


__all__ = ["STAGING_PREFIX", "atomic_render", "atomic_write", "atomic_writer", "check_output_dir",
           "check_store_path", "describe_os_error", "remove_stale_staging", "staging_dir", "tmp_path_for"]
