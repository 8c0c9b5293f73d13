"""The results store: SQLite (WAL), one short transaction per finished cell.

Tables: ``runs`` (config, environment, meter context), ``cells`` (one row per cell and run, the
result as JSON plus indexed columns) and ``items`` (per-item predictions: choice indices and the
target and output texts). A cell whose ``cell_key`` matches an earlier ok cell is reused: the new row,
under the current run's names, points at the original with ``reused_from`` and shares its items.
Several processes may write at once (WAL + busy timeout).

The schema version is SQLite's ``user_version``: 1 (or 0) is the first release's, 2 adds the text
columns of ``items``; an older store is migrated in place when first opened for writing. Opening checks
that the file is an SQLite database that is not truncated, and runs SQLite's ``quick_check`` once per
process and file; every SQLite failure becomes a :class:`StoreError` naming the store and what to do.
A store that cannot be written (read-only file or folder) opens read-only for reading commands.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError
from evaluator.records import CellResult, ItemRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    planned_cells INTEGER NOT NULL DEFAULT 0,
    config_json TEXT NOT NULL,
    environment_json TEXT NOT NULL DEFAULT '{}',
    meter_json TEXT NOT NULL DEFAULT '{}',
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    cell_key TEXT NOT NULL,
    suite TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, variant TEXT NOT NULL,
    status TEXT NOT NULL,
    reused_from INTEGER,
    result_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, suite, task, model, variant)
);
CREATE INDEX IF NOT EXISTS cells_key ON cells (cell_key, status);
CREATE TABLE IF NOT EXISTS items (
    cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    gold INTEGER NOT NULL, pred INTEGER NOT NULL, pred_norm INTEGER NOT NULL,
    scores_json TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '', correct INTEGER,
    PRIMARY KEY (cell_id, idx)
);
"""

#: The schema this code writes (SQLite ``user_version``).
STORE_VERSION = 2
#: v1 -> v2: per-item text target and output, and correctness decided by the task type.
_MIGRATE_V2 = ("ALTER TABLE items ADD COLUMN target TEXT NOT NULL DEFAULT ''",
               "ALTER TABLE items ADD COLUMN output TEXT NOT NULL DEFAULT ''",
               "ALTER TABLE items ADD COLUMN correct INTEGER")


class StoreError(FrugalError):
    """The results store cannot be used: a bad path, a file that is not a store, corruption, a full disk."""


_CHECKED: set[tuple[str, int, int]] = set()


#: How long a statement waits for another connection's lock before SQLite answers SQLITE_BUSY.
BUSY_TIMEOUT_MS = 60_000
#: Extra attempts at BEGIN IMMEDIATE / COMMIT when SQLite answers SQLITE_BUSY anyway.
BUSY_RETRIES = 20


def _retry_busy(db: sqlite3.Connection, sql: str) -> None:
    """Execute ``sql`` (BEGIN IMMEDIATE or COMMIT), retrying with a growing pause while the database is busy."""
    for attempt in range(BUSY_RETRIES):
        try:
            db.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or attempt == BUSY_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _record(r: sqlite3.Row) -> ItemRecord:
    return ItemRecord(r["item_id"], r["gold"], r["pred"], r["pred_norm"], tuple(json.loads(r["scores_json"])),
                      r["target"], r["output"], None if r["correct"] is None else bool(r["correct"]))


def now_iso() -> str:
    """UTC timestamp, seconds precision."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_store_file(path: str | Path | None) -> bool:
    """Whether ``path`` is an existing SQLite file (a store), not a results.json or nothing."""
    if not path:
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def default_store_path() -> Path:
    """``FRUGAL_STORE``, else FRUGAL_HOME/results.sqlite."""
    from evaluator.models import frugal_home

    return Path(os.environ.get("FRUGAL_STORE") or frugal_home() / "results.sqlite")


def _sqlite_problem(path: Path, exc: BaseException) -> StoreError:
    """A StoreError for an sqlite3 failure on ``path``, saying what to do."""
    msg = str(exc).lower()
    if "full" in msg:
        hint = "the disk is full: free space, or pass --store on another disk"
    elif "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        hint = ("the file is damaged or not a Frugal store: move it aside (results in it are lost) "
                "or pass another --store")
    elif "readonly" in msg or "read-only" in msg or "unable to open" in msg or "permission" in msg:
        hint = "it cannot be written here: check its permissions and its folder's, or pass another --store"
    else:
        hint = "check the file, or pass another --store"
    return StoreError(f"results store {path}: {exc} ({hint})")


class Store:
    """A handle on one SQLite results file. Cheap to open; safe across processes.

    ``readonly=True`` (or a file or folder this process cannot write) opens it read-only: reading
    commands work on a store they may not change; writes then raise StoreError.
    """

    def __init__(self, path: str | Path | None = None, readonly: bool = False) -> None:
        self.path = Path(path) if path else default_store_path()
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder; --store needs a file path, "
                             f"e.g. {self.path / 'results.sqlite'}")
        exists = self.path.is_file()
        if exists:
            self._check_file()
        self.readonly = readonly or (exists and not os.access(self.path, os.W_OK)) or (
            exists and not os.access(self.path.parent, os.W_OK))
        if self.readonly:
            if not exists:
                raise StoreError(f"results store {self.path} does not exist (no run has been stored there yet)")
            self._quick_check()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"results store {self.path}: cannot create its folder: {exc.strerror or exc}") from None
        with self._connect() as db:
            try:
                self._migrate(db)
            except sqlite3.DatabaseError as exc:
                raise _sqlite_problem(self.path, exc) from None
        if exists:
            self._quick_check()

    def _check_file(self) -> None:
        """Cheap checks of an existing file: an SQLite database with readable pages (quick_check does the rest).

        Through SQLite only: a plain open() and close() of the file would drop this process's SQLite locks.
        """
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise StoreError(f"results store {self.path}: cannot read it: {exc.strerror or exc}") from None
        if size == 0:
            return  # an empty file is a new store
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise _sqlite_problem(self.path, exc) from None
        try:
            page = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(f"results store {self.path} is not a Frugal store (not an SQLite database); "
                                 f"pass another --store or move the file aside") from None
            raise _sqlite_problem(self.path, exc) from None
        finally:
            db.close()
        if not pages or not page:
            raise StoreError(f"results store {self.path} has no pages: move it aside or pass another --store")

    def _quick_check(self) -> None:
        """SQLite's quick_check, once per process for each (file, size, mtime)."""
        st = self.path.stat()
        key = (str(self.path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _CHECKED:
            return
        with self._connect() as db:
            try:
                problems = [r[0] for r in db.execute("PRAGMA quick_check") if r[0] != "ok"]
            except sqlite3.DatabaseError as exc:
                raise _sqlite_problem(self.path, exc) from None
        if problems:
            raise StoreError(f"results store {self.path} is corrupt ({'; '.join(problems[:3])}): move it aside "
                             f"(results in it are lost) or pass another --store")
        _CHECKED.add(key)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create the tables, or bring an older store to STORE_VERSION in place (one transaction)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > STORE_VERSION:
            raise StoreError(f"results store {self.path} has schema {version}, newer than this Frugal "
                             f"({STORE_VERSION}): upgrade Frugal or pass another --store")
        if version == STORE_VERSION:
            return
        _retry_busy(db, "BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            if version < STORE_VERSION:
                had_items = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='items'").fetchone()
                cols = {r[1] for r in db.execute("PRAGMA table_info(items)")} if had_items else set()
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                if had_items:
                    for stmt in _MIGRATE_V2:
                        if stmt.split("ADD COLUMN ")[1].split()[0] not in cols:
                            db.execute(stmt)
                db.execute(f"PRAGMA user_version={STORE_VERSION}")
            _retry_busy(db, "COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.readonly:
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            else:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise _sqlite_problem(self.path, exc) from None
        try:
            try:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                if not self.readonly:
                    self._wal(db)
                db.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as exc:
                raise _sqlite_problem(self.path, exc) from None
            db.row_factory = sqlite3.Row
            try:
                yield db
            except sqlite3.DatabaseError as exc:
                raise _sqlite_problem(self.path, exc) from None
        finally:
            db.close()

    @staticmethod
    def _wal(db: sqlite3.Connection) -> None:
        for attempt in range(50):  # persistent; a no-op once in WAL. Switching ignores busy_timeout when
            try:                   # several processes create the file at once, so retry it here.
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.02 * (attempt + 1))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction: BEGIN IMMEDIATE, the body once, COMMIT (or ROLLBACK on any error).

        Waiting for another process's write lock is SQLite's busy handler (``busy_timeout``); when SQLite
        still answers SQLITE_BUSY, BEGIN and COMMIT are retried here. The body itself is never re-run.
        """
        if self.readonly:
            raise StoreError(f"results store {self.path} is open read-only (the file or its folder cannot be "
                             f"written); pass a writable --store")
        with self._connect() as db:
            _retry_busy(db, "BEGIN IMMEDIATE")
            try:
                yield db
                _retry_busy(db, "COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------------------------- runs
    def create_run(self, config: dict[str, Any], planned_cells: int, environment: dict[str, Any],
                   meter: dict[str, Any]) -> str:
        """Insert a run row; returns its id."""
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._tx() as db:
            db.execute("INSERT INTO runs (run_id, created_at, status, planned_cells, config_json, environment_json,"
                       " meter_json, pid) VALUES (?,?,?,?,?,?,?,?)",
                       (run_id, now_iso(), "running", planned_cells, json.dumps(config), json.dumps(environment),
                        json.dumps(meter), os.getpid()))
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set status / finished_at / meter_json / environment_json."""
        allowed = {"status", "finished_at", "meter_json", "environment_json", "planned_cells"}
        cols = {k: (json.dumps(v) if k.endswith("_json") else v) for k, v in fields.items() if k in allowed}
        if not cols:
            return
        with self._tx() as db:
            db.execute(f"UPDATE runs SET {', '.join(f'{k}=?' for k in cols)} WHERE run_id=?",  # noqa: S608
                       (*cols.values(), run_id))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run row, decoded; raises FrugalError when absent."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                ids = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5")]
                raise FrugalError(f"no run {run_id!r} in {self.path}. Latest: {', '.join(ids) or 'none'}")
            out = dict(row)
        for k in ("config_json", "environment_json", "meter_json"):
            out[k[:-5]] = json.loads(out.pop(k) or "{}")
        out["status"] = self._live_status(out)
        return out

    def _live_status(self, run: dict[str, Any]) -> str:
        """A 'running' run whose process is gone was interrupted."""
        if run["status"] == "running" and run.get("pid") and run["pid"] != os.getpid():
            try:
                os.kill(run["pid"], 0)
            except ProcessLookupError:
                return "interrupted"
            except PermissionError:
                pass
        return run["status"]

    def list_runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first, with cell counts."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT r.run_id, r.created_at, r.finished_at, r.status, r.planned_cells, r.pid, r.config_json,"
                " COUNT(c.id) AS done, SUM(c.status='failed') AS failed, SUM(c.reused_from IS NOT NULL) AS reused"
                " FROM runs r LEFT JOIN cells c ON c.run_id=r.run_id GROUP BY r.run_id"
                " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["config"] = json.loads(d.pop("config_json"))
            d["status"] = self._live_status(d)
            out.append(d)
        return out

    def delete_run(self, run_id: str) -> None:
        """Delete a run and its own cells; items still used by reusing cells elsewhere are kept."""
        self.get_run(run_id)
        with self._tx() as db:
            own = [r[0] for r in db.execute("SELECT id FROM cells WHERE run_id=?", (run_id,))]
            for cid in own:
                heir = db.execute("SELECT id FROM cells WHERE reused_from=? ORDER BY id LIMIT 1", (cid,)).fetchone()
                if heir:  # hand the items over to the first cell that reused this one
                    db.execute("UPDATE items SET cell_id=? WHERE cell_id=?", (heir[0], cid))
                    db.execute("UPDATE cells SET reused_from=NULL WHERE id=?", (heir[0],))
                    db.execute("UPDATE cells SET reused_from=? WHERE reused_from=?", (heir[0], cid))
            db.execute("DELETE FROM cells WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))

    # ---------------------------------------------------------------------------------- cells
    def find_reusable(self, cell_key: str) -> tuple[int, CellResult] | None:
        """The newest ok cell with this key (its own row, not a copy)."""
        with self._connect() as db:
            row = db.execute("SELECT id, reused_from, result_json FROM cells WHERE cell_key=? AND status='ok'"
                             " ORDER BY id DESC LIMIT 1", (cell_key,)).fetchone()
        if row is None:
            return None
        return (row["reused_from"] or row["id"]), CellResult.from_dict(json.loads(row["result_json"]))

    def find_extendable(self, setup_key: str, item_ids: Iterable[str], limit: int = 20
                        ) -> Iterator[tuple[CellResult, list[ItemRecord]]]:
        """Newest first: ok cells with this setup key (and windows) whose items all lie within ``item_ids``.

        The caller checks the stored items' contents (``items_digest``) before extending one.
        """
        wanted = set(item_ids)
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, reused_from, result_json FROM cells WHERE status='ok' AND reused_from IS NULL AND "
                "json_extract(result_json, '$.setup_key')=? ORDER BY id DESC LIMIT ?", (setup_key, limit)).fetchall()
        for row in rows:
            cell = CellResult.from_dict(json.loads(row["result_json"]))
            if not cell.energy_windows or cell.n_items >= len(wanted):
                continue
            recs = self._items_of(row["id"])
            if recs and {r.item_id for r in recs} <= wanted:
                yield cell, recs

    def add_cell(self, run_id: str, cell: CellResult, items: Sequence[ItemRecord] = (),
                 reused_from: int | None = None) -> int:
        """Insert a finished cell and its items in one transaction; returns the cell id."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO cells (run_id, cell_key, suite, task, model, variant, status, reused_from, result_json,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, suite, task, model, variant)"
                " DO UPDATE SET status=excluded.status, result_json=excluded.result_json,"
                " reused_from=excluded.reused_from, cell_key=excluded.cell_key RETURNING id",
                (run_id, cell.cell_key, cell.suite, cell.task, cell.model, cell.variant, cell.status, reused_from,
                 json.dumps(cell.to_dict()), now_iso()))
            cid = cur.fetchone()[0]
            db.execute("DELETE FROM items WHERE cell_id=?", (cid,))
            db.executemany(
                "INSERT INTO items (cell_id, idx, item_id, gold, pred, pred_norm, scores_json, target, output, correct)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(cid, i, it.item_id, it.gold, it.pred, it.pred_norm, json.dumps(list(it.scores)), it.target,
                  it.output, None if it.is_correct is None else int(it.is_correct)) for i, it in enumerate(items)])
        return cid

    def cells(self, run_id: str) -> list[CellResult]:
        """Cells of a run, in insertion order, with ``reused`` set for copies."""
        with self._connect() as db:
            rows = db.execute("SELECT result_json, reused_from FROM cells WHERE run_id=? ORDER BY id",
                              (run_id,)).fetchall()
        return [replace(CellResult.from_dict(json.loads(r["result_json"])), reused=r["reused_from"] is not None)
                for r in rows]

    def update_cells(self, run_id: str, suite: str, model: str, variant: str, task: str | None = None,
                     **fields: Any) -> None:
        """Set result fields of a (model, variant)'s cells of one suite (or one task) in this run."""
        with self._tx() as db:
            rows = db.execute("SELECT id, result_json FROM cells WHERE run_id=? AND suite=? AND model=? AND "
                              "variant=? AND (? IS NULL OR task=?)", (run_id, suite, model, variant, task, task)
                              ).fetchall()
            for row in rows:
                doc = {**json.loads(row["result_json"]), **fields}
                db.execute("UPDATE cells SET result_json=? WHERE id=?", (json.dumps(doc), row["id"]))

    def items(self, run_id: str, suite: str, task: str, model: str, variant: str) -> list[ItemRecord]:
        """Per-item predictions of one cell (following reuse to the original)."""
        with self._connect() as db:
            row = db.execute("SELECT id, reused_from FROM cells WHERE run_id=? AND suite=? AND task=? AND model=?"
                             " AND variant=?", (run_id, suite, task, model, variant)).fetchone()
            if row is None:
                return []
        return self._items_of(row["reused_from"] or row["id"])

    def run_items(self, run_id: str) -> dict[tuple[str, str, str, str], list[ItemRecord]]:
        """Per-item predictions of every ok cell of a run (following reuse), by (suite, task, model, variant)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT c.suite, c.task, c.model, c.variant, i.* FROM cells c JOIN items i ON "
                "i.cell_id=COALESCE(c.reused_from, c.id) WHERE c.run_id=? AND c.status='ok' ORDER BY c.id, i.idx",
                (run_id,)).fetchall()
        out: dict[tuple[str, str, str, str], list[ItemRecord]] = {}
        try:
            for r in rows:
                out.setdefault((r["suite"], r["task"], r["model"], r["variant"]), []).append(_record(r))
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # a damaged items table
            raise StoreError(f"results store {self.path}: its items table is damaged ({exc}): move the file aside "
                             "(results in it are lost) or pass another --store") from None
        return out

    def _items_of(self, cell_id: int) -> list[ItemRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM items WHERE cell_id=? ORDER BY idx", (cell_id,)).fetchall()
        return [_record(r) for r in rows]

    def integrity_check(self) -> list[str]:
        """Problems found (empty list when sound): SQLite's own check plus our invariants."""
        with self._connect() as db:
            problems = [r[0] for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [f"dangling reuse in cell {r[0]}" for r in db.execute(
                "SELECT c.id FROM cells c LEFT JOIN cells o ON o.id=c.reused_from "
                "WHERE c.reused_from IS NOT NULL AND o.id IS NULL")]
            problems += [f"ok cell {r[0]} without items" for r in db.execute(
                "SELECT c.id FROM cells c WHERE c.status='ok' AND c.reused_from IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM items i WHERE i.cell_id=c.id)")]
        return problems
