"""The store's shared state and its handles: SQLite connections, vector logs, damage, transactions.

`StoreBase` holds what every part of `ProductStore` works on; the other modules of this package
add one job each. Never opens or changes anything by itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np

from cumpair.index import metadata, vectorlog
from cumpair.index.ivf import IndexParams
from cumpair.index.locks import RWLock, WriterLock
from cumpair.index.metadata import DB_NAME
from cumpair.index.records import (
    ReadOnlyStoreError,
    SpaceSpec,
    StoreError,
    StoreIOError,
    StoreOptions,
    UnknownSpaceError,
)
from cumpair.index.store.rowmap import RowMapSlot

log = logging.getLogger("cumpair.index.store")
_T = TypeVar("_T")

_PIN_ATTEMPTS = 8
_SQLITE_DISK_ERRORS = {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_IOERR: errno.EIO}


@dataclass
class _Space:
    """In-memory state of one vector space (the index object is swapped, never half-built)."""

    name: str
    spec: SpaceSpec
    index: faiss.Index
    params: IndexParams
    applied_seq: int = 0  # the index reflects every committed op up to this sequence number
    snapshot: metadata.SnapshotRow | None = None
    dirty: bool = True  # changed since its snapshot
    multi_vector: bool = False  # some offer holds more than one vector here
    lock: RWLock = field(default_factory=RWLock)
    latencies: deque = field(default_factory=lambda: deque(maxlen=4096))  # searches as tuned
    effort_latencies: deque = field(default_factory=lambda: deque(maxlen=4096))  # with an effort
    upgrade_thread: threading.Thread | None = None
    upgrade_error: str | None = None
    rows: RowMapSlot = field(default_factory=RowMapSlot)  # where re-ranking reads each vector


@dataclass
class _Ops:
    """Index changes of one transaction: ids to remove first, then vectors to add.

    ``add`` maps a vector id to its row in the matrices `put` collected, so a batch's vectors
    stay in the arrays they came in (a later write of an id wins; popping it cancels the add).
    """

    drop: set[int] = field(default_factory=set)
    add: dict[int, int] = field(default_factory=dict)
    _parts: list[np.ndarray] = field(default_factory=list)
    _rows: int = 0

    def put(self, vids: list[int], matrix: np.ndarray) -> None:
        """Add `matrix`'s rows under `vids` (replacing an earlier add of the same id)."""
        self.add.update(zip(vids, range(self._rows, self._rows + len(vids)), strict=True))
        self._parts.append(matrix)
        self._rows += len(vids)

    def added(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) to add, in the order they were first put."""
        ids = np.fromiter(self.add, dtype=np.int64, count=len(self.add))
        rows = np.fromiter(self.add.values(), dtype=np.int64, count=len(self.add))
        if not len(ids):
            return ids, np.empty((0, 0), np.float32)
        stacked = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        if len(rows) == len(stacked) and (rows == np.arange(len(rows))).all():
            return ids, stacked  # every row put once and kept: no gather copy
        return ids, stacked[rows]


class StoreBase:
    """Fields and file handles shared by the parts of `ProductStore`."""

    def __init__(self, path: Path, options: StoreOptions, readonly: bool) -> None:
        # use ProductStore.open(); __init__ only sets fields
        self.path = path
        self.options = options
        self.readonly = readonly
        self._spaces: dict[str, _Space] = {}
        self._write_lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._writer_lock: WriterLock | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_flush: float = time.monotonic()
        self._last_flush_at: str | None = None
        self._last_flush_s: float | None = None
        self._last_refresh = time.monotonic()
        self._recoveries: list[dict[str, Any]] = []
        self._logs: dict[str, vectorlog.VectorLog] = {}
        self._logs_lock = threading.Lock()
        self._retired: set[str] = set()  # logs a compaction replaced: never cached again
        self._damage: dict[str, set[int]] = {}  # vector ids whose log rows failed their checks
        self._damage_lock = threading.Lock()
        self._closed = False

    def _current_log(self, conn: sqlite3.Connection, space: str, dim: int) -> vectorlog.VectorLog:
        """The log that `conn`'s view of the store names as `space`'s current one (read the
        rows that point into it in the same transaction: a compaction switches files)."""
        file, _ = metadata.vector_log(conn, space)
        return self._vector_log(file, dim)

    def _pinned(
        self, conn: sqlite3.Connection, space: str, dim: int, query: Callable[[], _T]
    ) -> tuple[_T, vectorlog.VectorLog]:
        """`query()` and the log its rows point into, read in one transaction of `conn`.

        The handle stays valid however long the caller reads (compaction never closes a handle
        under a reader). If a compaction swept the file between the transaction's snapshot and
        the open, the snapshot is stale: read again from a fresh one.
        """
        for _attempt in range(_PIN_ATTEMPTS):
            conn.execute("BEGIN")
            try:
                result = query()
                try:
                    return result, self._current_log(conn, space, dim)
                except FileNotFoundError:
                    continue
            finally:
                conn.execute("COMMIT")
        file, _ = metadata.vector_log(conn, space)
        raise StoreError(f"vector log {self.path / file} of space {space!r} is missing")

    def _vector_log(self, file: str, dim: int, *, create: bool = False) -> vectorlog.VectorLog:
        """The open handle of a log file (cached; a compaction switches spaces to new files).

        A reader whose snapshot predates a compaction may still ask for the replaced file: it
        gets a handle of its own, closed when it is done, so the cache never holds it again.
        """
        handle = self._logs.get(file)
        if handle is None:
            with self._logs_lock:
                handle = self._logs.get(file)
                if handle is None:
                    handle = vectorlog.VectorLog(
                        self.path / file, dim, writable=not self.readonly, create=create
                    )
                    if file not in self._retired:
                        self._logs[file] = handle
        return handle

    def _note_damage(self, space: str, vids: np.ndarray) -> None:
        """Remember vectors whose log rows failed their checks (health reports them)."""
        if not len(vids):
            return
        with self._damage_lock:
            known = self._damage.setdefault(space, set())
            new = set(vids.tolist()) - known
            known |= new
        if new:
            log.error(
                "product store %s: %d damaged vector rows in space %r (vector ids %s); they are"
                " left out of searches: `cumpair index check` lists them",
                self.path, len(new), space, sorted(new)[:10],
            )  # fmt: skip

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE .. COMMIT on the writer connection, rolled back on any error; a full
        or failing disk raises `StoreIOError` instead of SQLite's own error."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back a failed write itself
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
            if code not in _SQLITE_DISK_ERRORS:
                raise
            raise StoreIOError(_SQLITE_DISK_ERRORS[code], f"{self.path / DB_NAME}: {exc}") from exc

    def _require_writer(self) -> None:
        if self._closed:
            raise StoreError("the product store is closed")
        if self.readonly:
            raise ReadOnlyStoreError(f"{self.path} was opened read-only")

    def _space(self, name: str) -> _Space:
        try:
            return self._spaces[name]
        except KeyError:
            raise UnknownSpaceError(
                f"unknown vector space {name!r}; store has {sorted(self._spaces)}"
            ) from None

    def _read_conn(self) -> sqlite3.Connection:
        """A read-only SQLite connection per thread (WAL readers never block the writer)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = metadata.connect(self.path / DB_NAME, readonly=True)
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn
