"""ProductStore: offers and their vectors, durable on disk, searchable while a crawl writes.

Durability model (what a ``kill -9`` leaves): every `upsert`/`remove` commits its offer rows and
vector rows to SQLite (WAL) before it returns, stamped with a sequence number; the raw vectors go
to an append-only log file per space (vectorlog.py) written before that commit. FAISS files are
snapshots taken by `flush` (temp file, fsync, rename, then a SQLite row makes it current). Opening
loads the newest verifiable snapshot and replays the rows newer than it, so a reopened store holds
*everything whose upsert returned* — not only the last flush. Corrupt or truncated snapshots fall
back to older ones (``backups_keep``) or to a rebuild from SQLite, recorded in `health`.

Damage model: every vector log row carries its id and a CRC32, checked on every read; a row that
fails (flipped bytes, a torn write, a log cut short) is never indexed, re-ranked on or scanned,
is reported in `health` and by `check`, and costs only its own vector. Opening never deletes what
the database does not account for: such bytes and files go to ``lost+found/`` (lostfound.py),
and a directory whose ``meta.sqlite`` is gone is refused (`MissingDatabaseError`; `recover`).
Disk errors (a full disk) raise `StoreIOError`.

Usage (the Scrapy pipeline calls `upsert` per item, `maybe_flush` on its own pace, `close` when the
spider closes)::

    image, text = encoders.image_info, encoders.text_info   # from cumpair.embed.load_encoders
    spaces = {"image": SpaceSpec(image.dim, image.name, image.version),
              "text": SpaceSpec(text.dim, text.name, text.version)}
    with ProductStore.open("index_data", spaces, StoreOptions()) as store:
        result = store.upsert(offer, {"image": image_vectors, "text": text_vector})
        hits = store.search("image", query_vectors, k=10)   # list per query of Hit(offer_id, ...)
        offers = store.get_offers(h.offer_id for h in hits[0])

Concurrency: one writer process per directory (file lock); inside it any number of threads or
asyncio tasks (`asearch`) may search while one thread writes. A Flat space turns into IVF-PQ past
``upgrade_threshold`` on a worker thread that builds aside and swaps the finished index in.
Read-only stores (``readonly=True``, other processes) replay new rows every ``reader_refresh_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np

from cumpair.index import ivf, lostfound, metadata, snapshots, vectorlog
from cumpair.index.ivf import IndexParams
from cumpair.index.locks import RWLock, WriterLock
from cumpair.index.records import (
    MAX_VECTORS_PER_OFFER,
    ORDINAL_BITS,
    EncoderMismatchError,
    Hit,
    InvalidOfferError,
    InvalidVectorError,
    MissingDatabaseError,
    OfferRecord,
    PricePoint,
    ReadOnlyStoreError,
    SearchFilters,
    SpaceSpec,
    StoreError,
    StoreIOError,
    StoreOptions,
    UnknownSpaceError,
    UpsertResult,
    condition_name,
    utcnow,
    vector_id,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DB_NAME = "meta.sqlite"
_PIN_ATTEMPTS = 8
_SQLITE_DISK_ERRORS = {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_IOERR: errno.EIO}
_DUPLICATE_CANDIDATES = 8
_EXACT_FILTERED = 20_000  # filtered IVF-PQ searches with fewer allowed vectors go exact


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
    latencies: deque = field(default_factory=lambda: deque(maxlen=4096))
    upgrade_thread: threading.Thread | None = None
    upgrade_error: str | None = None


@dataclass
class _Ops:
    """Index changes of one transaction: ids to remove first, then vectors to add."""

    drop: set[int] = field(default_factory=set)
    add: dict[int, np.ndarray] = field(default_factory=dict)


# An upsert after validation: the offer's column values, ISO sighting time, vectors per space.
_Prepared = tuple[metadata.OfferRow, str, dict[str, np.ndarray]]


class ProductStore:
    """FAISS + SQLite store of offers; see the module docstring for the contract."""

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

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = "index_data",
        spaces: Mapping[str, SpaceSpec] | None = None,
        options: StoreOptions | None = None,
        *,
        readonly: bool = False,
    ) -> ProductStore:
        """Open (or create) the store at `path`.

        `spaces` declares the vector spaces and their encoders; a space already on disk with
        another encoder, version or dimension raises `EncoderMismatchError`. ``None`` opens the
        spaces recorded on disk (what the CLI does). A writer takes the directory's file lock
        (`StoreLockedError` after ``lock_timeout_s``); ``readonly=True`` takes no lock.
        """
        store = cls(Path(path), options or StoreOptions(), readonly)
        try:
            store._open(dict(spaces) if spaces is not None else None)
        except BaseException:
            store._release()
            raise
        return store

    def _open(self, wanted: dict[str, SpaceSpec] | None) -> None:
        db_path = self.path / DB_NAME
        if self.readonly:
            if not db_path.exists():
                _refuse_without_database(self.path)
                raise StoreError(f"no product store at {self.path} ({DB_NAME} missing)")
            self._conn = metadata.connect(db_path, readonly=True)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                raise StoreError(f"{db_path} has not been initialised by a writer yet")
            if version < metadata.SCHEMA_VERSION:  # readers cannot migrate
                raise StoreError(
                    f"{db_path} has schema {version}, this code reads {metadata.SCHEMA_VERSION}:"
                    " open it once as a writer to migrate it (a crawl, `cumpair index save`,"
                    " or `cumpair reindex`)"
                )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._writer_lock = WriterLock(self.path)
            self._writer_lock.acquire(self.options.lock_timeout_s)
            if not db_path.exists():
                _refuse_without_database(self.path)
            self._conn = metadata.connect(
                db_path, readonly=False, synchronous=self.options.synchronous
            )
            metadata.migrate(self._conn, self.path)
        recorded = metadata.space_specs(self._conn)
        specs = recorded if wanted is None else wanted
        for name, spec in specs.items():
            if not isinstance(spec, SpaceSpec):
                raise TypeError(f"space {name!r}: expected SpaceSpec, got {type(spec).__name__}")
            old = recorded.get(name)
            if old is not None and old != spec:
                raise EncoderMismatchError(
                    f"space {name!r} in {self.path} holds {old.encoder} {old.version!r} "
                    f"dim={old.dim} normalize={old.normalize}; opened with {spec.encoder} "
                    f"{spec.version!r} dim={spec.dim} normalize={spec.normalize}. Re-embed into "
                    "a new store (cumpair reindex) instead of mixing vector spaces."
                )
            if old is None:
                if self.readonly:
                    raise UnknownSpaceError(f"space {name!r} does not exist in {self.path}")
                with self._transaction():
                    metadata.add_space(self._conn, name, spec, utcnow().isoformat())
        if not self.readonly:  # a current log that went missing comes back empty: its rows fail
            for space, file, _ in metadata.vector_logs(self._conn):
                self._vector_log(file, specs.get(space, recorded.get(space)).dim, create=True)
        for name in specs:
            self._spaces[name] = self._load_space(name, specs[name])
        if not self.readonly:
            self._sweep_orphans()
        self._last_refresh = time.monotonic()

    def _load_space(self, name: str, spec: SpaceSpec) -> _Space:
        """Newest good snapshot + replay of newer rows; fall back and record it when corrupt."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            purged = metadata.state(conn, "purged_seq")
            seq = metadata.state(conn, "seq")
            space = None
            failures = []
            for snap in metadata.snapshots(conn, name):
                if snap.seq < purged:
                    failures.append(f"{snap.file}: older than the last compaction")
                    continue
                try:
                    index = snapshots.load(self.path, snap.file, snap.sha256, snap.size)
                except snapshots.SnapshotCorruptError as exc:
                    failures.append(str(exc))
                    continue
                if index.d != spec.dim:
                    failures.append(f"{snap.file}: dimension {index.d} != {spec.dim}")
                    continue
                params = IndexParams.from_dict(snap.params)
                space = _Space(name, spec, index, params, snap.seq, snap, dirty=False)
                break
            if space is None:
                space = _Space(name, spec, ivf.new_flat(spec.dim), IndexParams(), 0)
            self._replay(space, seq)
            space.multi_vector = self._has_multi_vector(name)
        finally:
            conn.execute("COMMIT")
        if failures:
            used = space.snapshot.file if space.snapshot else "a rebuild from SQLite"
            event = {"space": name, "failed": failures, "used": used}
            log.warning("product store %s: recovered space %r: %s", self.path, name, event)
            self._recoveries.append({"at": utcnow().isoformat(), **event})
            if not self.readonly:
                with self._transaction():
                    metadata.record_event(conn, utcnow().isoformat(), "recovery", event)
                space.dirty = True
        return space

    def _replay(self, space: _Space, seq: int) -> None:
        """Bring `space` up to `seq` from the rows committed after it; damaged rows stay out."""
        drop, add_ids, rows = metadata.changes_since(self._conn, space.name, space.applied_seq)
        vectors, ok = self._current_log(self._conn, space.name, space.spec.dim).read(rows, add_ids)
        self._note_damage(space.name, add_ids[~ok])
        if len(drop):
            space.index.remove_ids(faiss.IDSelectorBatch(drop))
        if ok.any():
            space.index.add_with_ids(vectors[ok], add_ids[ok])
        if len(drop) or len(add_ids):
            space.dirty = True
        space.applied_seq = seq

    def _has_multi_vector(self, name: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM vectors WHERE space = ? AND ordinal > 0 LIMIT 1", (name,)
        ).fetchone()
        return row is not None

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

    def _sweep_orphans(self) -> None:
        """Tidy what the database accounts for; keep aside what it does not.

        Deleted: temp files, snapshots of generations the database has moved past (pruned
        backups) and logs of epochs before the current one (replaced by a compaction). Kept
        under ``lost+found/`` (recorded as an event and in `health`): log bytes past the
        committed rows, snapshots newer than the database's generation and logs of later
        epochs. Those are what a killed flush or append leaves, but also the only trace of
        commits the database lost, so they are never destroyed on open.
        """
        with self._write_lock:  # an append in flight owns the bytes past the committed rows
            specs = metadata.space_specs(self._conn)  # every space, also those not opened now
            live = {s.file for name in specs for s in metadata.snapshots(self._conn, name)}
            generation = metadata.state(self._conn, "generation")
            logs = metadata.vector_logs(self._conn)
            kept = []
            for space, file, rows in logs:
                vectors_log = self._vector_log(file, specs[space].dim, create=True)
                if vectors_log.size() > vectors_log.offset(rows):
                    tail = vectors_log.tail(rows)
                    aside = lostfound.keep_bytes(self.path, f"{file}.after-row-{rows}", tail)
                    vectors_log.truncate(rows)
                    reason = f"{len(tail)} bytes past the {rows} committed rows"
                    kept.append({"file": file, "kept": aside.name, "reason": reason})
            current = {file: space for space, file, _ in logs}
            epochs = {space: vectorlog.log_epoch(file) for space, file, _ in logs}
            for entry in sorted(self.path.iterdir()):
                name = entry.name
                if name.startswith(".") and name.endswith(".tmp"):
                    entry.unlink(missing_ok=True)
                    continue
                if vectorlog.is_log_name(name) and name not in current:
                    newer = vectorlog.log_epoch(name) > epochs.get(vectorlog.log_space(name), 0)
                    reason = "log of an epoch the database does not know"
                elif entry.suffix == ".faiss" and name not in live:
                    newer = (snapshots.generation_of(name) or generation + 1) > generation
                    reason = "snapshot of a generation the database does not know"
                else:
                    continue
                if newer:
                    moved = lostfound.move(entry, self.path)
                    kept.append({"file": name, "kept": moved.name, "reason": reason})
                else:
                    entry.unlink(missing_ok=True)
            if kept:
                log.warning("product store %s: kept aside in lost+found/: %s", self.path, kept)
                with self._transaction():
                    metadata.record_event(
                        self._conn, utcnow().isoformat(), "kept_aside", {"files": kept}
                    )

    def close(self) -> None:
        """Finish a running upgrade, flush (writers), release connections and the file lock."""
        if self._closed:
            return
        try:
            if not self.readonly:
                for space in self._spaces.values():
                    thread = space.upgrade_thread
                    if thread is not None:
                        thread.join()
                self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        with self._logs_lock:
            for vectors_log in self._logs.values():
                vectors_log.close()
            self._logs.clear()
        if self._writer_lock is not None:
            self._writer_lock.release()

    def __enter__(self) -> ProductStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def upsert(
        self, offer: OfferRecord, vectors: Mapping[str, np.ndarray] | None = None
    ) -> UpsertResult:
        """Add or update one offer and its vectors (per space: ``(n, d)`` images or ``(d,)``).

        Duplicates update the existing offer instead of adding one, in this order:
        same shop+URL; same GTIN in the same shop (the URL is updated to the new one); a vector
        in ``duplicate_space`` whose cosine with the offer's first vector there is at least
        ``duplicate_threshold`` and that belongs to an offer of the *same shop* whose GTIN does
        not contradict this one and whose first vectors in the offer's other spaces (its text)
        are as close (the existing URL is kept). Every call appends a price-history
        row. Vectors given for a space replace the offer's vectors there (unchanged ones are not
        re-indexed); spaces left out keep theirs. Durable when it returns.
        """
        return self.upsert_many([(offer, vectors or {})])[0]

    def upsert_many(
        self, items: Iterable[tuple[OfferRecord, Mapping[str, np.ndarray]]]
    ) -> list[UpsertResult]:
        """`upsert` for a batch in one transaction, with batched SQL (bulk loads: use this).

        Results are those of upserting the items one by one, in order, except that
        near-duplicate detection only sees vectors indexed before the batch.
        """
        self._require_writer()
        items = list(items)
        offers = [self._check_offer(offer) for offer, _ in items]
        vectors = self._check_batch_vectors([v for _, v in items])
        prepared = [(o, row, v) for (o, row), v in zip(offers, vectors, strict=True)]
        if not prepared:
            return []
        with self._write_lock:
            ops: dict[str, _Ops] = {name: _Ops() for name in self._spaces}
            results: list[UpsertResult] = []
            with self._transaction():
                seq = metadata.state(self._conn, "seq") + 1
                while len(results) < len(prepared):
                    start = len(results)
                    chunk = prepared[start : _independent_end(prepared, start)]
                    results += self._upsert_chunk(chunk, seq, ops)
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        self._schedule_upgrades()
        return results

    def _upsert_chunk(
        self, chunk: list[_Prepared], seq: int, ops: dict[str, _Ops]
    ) -> list[UpsertResult]:
        """Upsert items with distinct URLs and GTINs; stops early before two hit one offer."""
        conn = self._conn
        by_url = metadata.offers_by_url(conn, [(o.shop, o.url) for o, _, _ in chunk])
        by_gtin = metadata.offers_by_gtin(conn, [(o.shop, o.gtin) for o, _, _ in chunk if o.gtin])
        found: list[tuple[int | None, str]] = []
        for offer, _, _ in chunk:
            offer_id, matched = by_url.get((offer.shop, offer.url)), "url"
            if offer_id is None and offer.gtin:
                offer_id, matched = by_gtin.get((offer.shop, offer.gtin)), "gtin"
            found.append((offer_id, matched))
        unmatched = [i for i, (offer_id, _) in enumerate(found) if offer_id is None]
        duplicates = self._find_duplicates([chunk[i] for i in unmatched])
        for i, offer_id in zip(unmatched, duplicates, strict=True):
            found[i] = (offer_id, "vector") if offer_id is not None else (None, "new")
        taken: set[int] = set()
        for end, (offer_id, _) in enumerate(found):
            if offer_id is not None and offer_id in taken:  # the rest waits for this to land
                chunk, found = chunk[:end], found[:end]
                break
            if offer_id is not None:
                taken.add(offer_id)
        prices = metadata.current_prices(conn, taken)
        next_id = metadata.next_offer_id(conn)
        inserts, updates, points, decided = [], [], [], []
        for (row, seen, _), (offer_id, matched) in zip(chunk, found, strict=True):
            price_changed = False
            if offer_id is None:
                offer_id, next_id = next_id, next_id + 1
                inserts.append((offer_id, row, seen))
            else:
                new = (row.price, row.currency)
                price_changed = _price_key(prices[offer_id]) != _price_key(new)
                updates.append((offer_id, row, seen, matched == "vector"))
            points.append((offer_id, row, seen))
            decided.append((offer_id, matched, price_changed))
        metadata.insert_offers(conn, inserts)
        metadata.update_offers(conn, updates)
        metadata.append_prices(conn, points)
        offer_ids = [offer_id for offer_id, _, _ in decided]
        counts = [[0, 0] for _ in chunk]  # vectors added, removed
        for name in self._spaces:
            self._write_vectors(name, chunk, offer_ids, taken, seq, ops[name], counts)
        return [
            UpsertResult(offer_id, matched, changed, added, removed)
            for (offer_id, matched, changed), (added, removed) in zip(decided, counts, strict=True)
        ]

    def _write_vectors(
        self,
        name: str,
        chunk: list[_Prepared],
        offer_ids: list[int],
        existed: set[int],
        seq: int,
        space_ops: _Ops,
        counts: list[list[int]],
    ) -> None:
        """Append the chunk's changed vectors of one space to its log, then their rows."""
        conn = self._conn
        given = [(i, vectors[name]) for i, (_, _, vectors) in enumerate(chunk) if name in vectors]
        if not given:
            return
        file, committed = metadata.vector_log(conn, name)
        vectors_log = self._vector_log(file, self._spaces[name].spec.dim)
        old_rows = metadata.offer_vector_rows(
            conn, name, [offer_ids[i] for i, _ in given if offer_ids[i] in existed]
        )
        wanted = sorted(
            (row, vector_id(offer_id, ordinal))
            for offer_id, rows in old_rows.items()
            for ordinal, row in rows.items()
        )
        old_read = vectors_log.read(
            np.array([r for r, _ in wanted], dtype=np.int64),
            np.array([v for _, v in wanted], dtype=np.int64),
        )
        old_values = {  # a damaged old row never equals the new vector, so it gets rewritten
            row: vector for (row, _), vector, ok in zip(wanted, *old_read, strict=True) if ok
        }
        fresh: list[np.ndarray] = []
        rows: list[tuple[str, int, int, int, int, int]] = []
        revived: list[int] = []
        for i, matrix in given:
            offer_id = offer_ids[i]
            have = old_rows.get(offer_id, {})
            added = removed = 0
            for ordinal, vector in enumerate(matrix):
                old = have.get(ordinal)
                if old in old_values and np.array_equal(old_values[old], vector):
                    continue
                vid = vector_id(offer_id, ordinal)
                rows.append((name, vid, offer_id, ordinal, seq, committed + len(fresh)))
                fresh.append(vector)
                if offer_id in existed:
                    revived.append(vid)
                if old is not None:
                    space_ops.drop.add(vid)
                space_ops.add[vid] = vector
                added += 1
            for ordinal in have:
                if ordinal >= len(matrix):
                    vid = vector_id(offer_id, ordinal)
                    metadata.drop_vector(conn, name, vid, seq)
                    space_ops.drop.add(vid)
                    space_ops.add.pop(vid, None)
                    removed += 1
            counts[i][0] += added
            counts[i][1] += removed
        if fresh:
            vectors_log.write(committed, np.array([r[1] for r in rows]), np.stack(fresh))
            if self.options.synchronous == "FULL":
                vectors_log.sync()
            metadata.put_vectors(conn, rows)
            metadata.clear_tombstones(conn, name, revived)
            metadata.set_vector_log(conn, name, file, committed + len(fresh))

    def _find_duplicates(self, items: list[_Prepared]) -> list[int | None]:
        """Per item, an existing same-shop offer its vectors nearly repeat (see `upsert`)."""
        threshold = self.options.duplicate_threshold
        name = self.options.duplicate_space
        out: list[int | None] = [None] * len(items)
        space = self._spaces.get(name)
        if threshold is None or space is None or space.index.ntotal == 0:
            return out
        asking = [i for i, (_, _, vectors) in enumerate(items) if len(vectors.get(name, ()))]
        if not asking:
            return out
        queries = np.stack([items[i][2][name][0] for i in asking])
        hits = self._search_space(space, queries, _DUPLICATE_CANDIDATES, None)
        close = {i: [h.offer_id for h in found if h.score >= threshold] for i, found in
                 zip(asking, hits, strict=True)}  # fmt: skip
        candidates = metadata.get_offers(self._conn, {c for ids in close.values() for c in ids})
        for i, ids in close.items():
            offer, _, vectors = items[i]
            for offer_id in ids:
                other = candidates.get(offer_id)
                if other is None or other.shop != offer.shop:
                    continue
                if offer.gtin and other.gtin and offer.gtin != other.gtin:
                    continue
                if not self._agrees_elsewhere(offer_id, vectors, name, threshold):
                    continue
                out[i] = offer_id
                break
        return out

    def _agrees_elsewhere(
        self, offer_id: int, vectors: dict[str, np.ndarray], duplicate_space: str, threshold: float
    ) -> bool:
        """True unless another space the new offer has vectors in tells the two apart.

        Photos alone are not enough: two products of one shop shot on the same backdrop can
        be near-identical to an image encoder (measured up to 0.9990 cosine on the demo shops),
        while their text vectors differ. Each other space's first vectors must agree too.
        """
        for name, matrix in vectors.items():
            if name == duplicate_space or not len(matrix):
                continue
            row = metadata.offer_vector_rows(self._conn, name, [offer_id]).get(offer_id, {}).get(0)
            if row is None:
                continue
            source = self._current_log(self._conn, name, self._spaces[name].spec.dim)
            found = source.read(np.array([row]), np.array([vector_id(offer_id, 0)]))
            if not found.ok[0]:  # a damaged row cannot vouch for the offer
                return False
            other = found.vectors[0]
            ours = np.asarray(matrix[0], dtype=np.float32)
            cosine = float(ours @ other) / max(
                float(np.linalg.norm(ours) * np.linalg.norm(other)), 1e-12
            )
            if cosine < threshold:
                return False
        return True

    def remove(self, offer_id: int) -> bool:
        """Delete an offer, its price history and its vectors; False when it did not exist."""
        self._require_writer()
        with self._write_lock:
            ops: dict[str, _Ops] = {name: _Ops() for name in self._spaces}
            with self._transaction():
                if not metadata.get_offers(self._conn, [offer_id]):
                    return False
                seq = metadata.state(self._conn, "seq") + 1
                rows = self._conn.execute(
                    "SELECT space, vector_id FROM vectors WHERE offer_id = ?", (offer_id,)
                ).fetchall()
                for name, vid in rows:
                    metadata.drop_vector(self._conn, name, vid, seq)
                    if name in ops:
                        ops[name].drop.add(vid)
                self._conn.execute("DELETE FROM offers WHERE id = ?", (offer_id,))
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        return True

    def _apply(self, ops: dict[str, _Ops], seq: int) -> None:
        """Mirror a committed transaction into the in-memory indexes (brief exclusive lock)."""
        for name, space_ops in ops.items():
            space = self._spaces[name]
            if space_ops.drop or space_ops.add:
                ids = np.fromiter(space_ops.add, dtype=np.int64, count=len(space_ops.add))
                with space.lock.write():
                    if space_ops.drop:
                        drop = np.fromiter(space_ops.drop, dtype=np.int64)
                        space.index.remove_ids(faiss.IDSelectorBatch(drop))
                    if len(ids):
                        space.index.add_with_ids(np.stack(list(space_ops.add.values())), ids)
                    space.dirty = True
                if len(ids) and np.any(ids & (MAX_VECTORS_PER_OFFER - 1)):
                    space.multi_vector = True
                if self._damage.get(name):  # rewritten or removed: no longer damaged
                    with self._damage_lock:
                        self._damage[name] -= space_ops.drop | set(space_ops.add)
            space.applied_seq = seq

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

    # ------------------------------------------------------------------ validation
    def _require_writer(self) -> None:
        if self._closed:
            raise StoreError("the product store is closed")
        if self.readonly:
            raise ReadOnlyStoreError(f"{self.path} was opened read-only")

    def _check_offer(self, offer: OfferRecord) -> tuple[metadata.OfferRow, str]:
        """The offer's column values (exact price, upper-case currency) and UTC sighting time."""
        if not isinstance(offer, OfferRecord):
            raise InvalidOfferError(f"expected OfferRecord, got {type(offer).__name__}")
        for name in ("shop", "url"):
            value = getattr(offer, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidOfferError(f"offer.{name} must be a non-empty string, got {value!r}")
        price = offer.price
        if price is not None:
            if isinstance(price, float):
                raise InvalidOfferError("offer.price must be a Decimal (floats are inexact)")
            try:
                price = Decimal(str(price)) if not isinstance(price, Decimal) else price
            except InvalidOperation:
                raise InvalidOfferError(f"offer.price {offer.price!r} is not a number") from None
            if not price.is_finite() or price < 0:
                raise InvalidOfferError(f"offer.price must be finite and >= 0, got {price}")
        currency = offer.currency
        if currency is not None and not (
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha()
        ):
            raise InvalidOfferError(f"offer.currency must be an ISO 4217 code, got {currency!r}")
        seen = offer.seen_at or utcnow()
        if not isinstance(seen, datetime):
            raise InvalidOfferError(f"offer.seen_at must be a datetime, got {seen!r}")
        seen = seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen.astimezone(UTC)
        try:
            condition = condition_name(offer.condition)
        except ValueError as exc:
            raise InvalidOfferError(f"offer.condition: {exc}") from None
        _check_objects(offer.shipping, "shipping")
        _check_objects(offer.spec_conflicts, "spec_conflicts", required="field")
        try:
            row = metadata.offer_row(
                offer, price, None if currency is None else currency.upper(), condition
            )
        except (TypeError, ValueError) as exc:
            raise InvalidOfferError(f"offer fields cannot be stored: {exc}") from exc
        return row, seen.isoformat()

    def _check_batch_vectors(
        self, batch: list[Mapping[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray]]:
        """`_as_matrix` for every item's vectors, with the NumPy work done once per space."""
        checked: list[dict[str, np.ndarray]] = []
        per_space: dict[str, list[tuple[int, np.ndarray]]] = {}
        for n, vectors in enumerate(batch):
            if not isinstance(vectors, Mapping):
                raise InvalidVectorError("vectors must map a space name to an array")
            shaped = {}
            for name, value in vectors.items():
                matrix = self._shaped(self._space(name), value, what=f"vectors[{name!r}]")
                if len(matrix) > MAX_VECTORS_PER_OFFER:
                    raise InvalidVectorError(
                        f"vectors[{name!r}]: {len(matrix)} vectors, at most {MAX_VECTORS_PER_OFFER}"
                    )
                shaped[name] = matrix
                per_space.setdefault(name, []).append((n, matrix))
            checked.append(shaped)
        for name, parts in per_space.items():
            space = self._spaces[name]
            stacked = np.concatenate([matrix for _, matrix in parts])  # a copy we own
            try:
                self._finite_unit(space, stacked, "")
            except InvalidVectorError:  # find the culprit for the message
                for _, matrix in parts:
                    self._finite_unit(space, matrix.copy(), f"vectors[{name!r}]")
                raise
            start = 0
            for n, matrix in parts:
                checked[n][name] = stacked[start : start + len(matrix)]
                start += len(matrix)
        return checked

    def _as_matrix(self, space: _Space, value: Any, what: str) -> np.ndarray:
        matrix = np.array(self._shaped(space, value, what), copy=True)
        return self._finite_unit(space, matrix, what)

    def _shaped(self, space: _Space, value: Any, what: str) -> np.ndarray:
        """`value` as float32 ``(n, dim)`` (no copy when it already is one)."""
        try:
            matrix = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"{what}: not a numeric array ({exc})") from None
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        dim = space.spec.dim
        if matrix.ndim != 2 or (matrix.size and matrix.shape[1] != dim):
            raise InvalidVectorError(f"{what}: shape {np.shape(value)}, expected (n, {dim})")
        return matrix.reshape(-1, dim)

    def _finite_unit(self, space: _Space, matrix: np.ndarray, what: str) -> np.ndarray:
        """Refuse NaN/infinity; scale rows to unit length in place for normalised spaces."""
        if not np.isfinite(matrix).all():
            raise InvalidVectorError(f"{what}: contains NaN or infinity")
        if space.spec.normalize and len(matrix):
            norms = np.linalg.norm(matrix, axis=1)
            if (norms == 0).any():
                raise InvalidVectorError(f"{what}: zero vector cannot be normalised")
            matrix /= norms[:, None]
        return np.ascontiguousarray(matrix)

    def _space(self, name: str) -> _Space:
        try:
            return self._spaces[name]
        except KeyError:
            raise UnknownSpaceError(
                f"unknown vector space {name!r}; store has {sorted(self._spaces)}"
            ) from None

    # ------------------------------------------------------------------ reading
    def search(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
    ) -> list[list[Hit]]:
        """Best `k` offers per query row (``(nq, d)`` or ``(d,)``), best score per offer first.

        Thread-safe; never blocks on flushes or upgrades (only on the brief index swaps/adds).
        """
        if self._closed:
            raise StoreError("the product store is closed")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if self.readonly and time.monotonic() - self._last_refresh >= self.options.reader_refresh_s:
            self.refresh()
        state = self._space(space)
        matrix = self._as_matrix(state, queries, what="queries")
        return self._search_space(state, matrix, k, filters)

    async def asearch(
        self, space: str, queries: np.ndarray, k: int = 10, filters: SearchFilters | None = None
    ) -> list[list[Hit]]:
        """`search` for asyncio code: runs in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.search, space, queries, k, filters)

    def _search_space(
        self, space: _Space, matrix: np.ndarray, k: int, filters: SearchFilters | None
    ) -> list[list[Hit]]:
        started = time.perf_counter()
        allowed = None
        if filters is not None:
            allowed = metadata.filtered_vector_ids(self._read_conn(), space.name, filters)
            if not len(allowed):
                return [[] for _ in range(len(matrix))]
        fetch = k * self.options.multi_vector_oversample if space.multi_vector else k
        if allowed is not None and space.params.kind == "ivfpq" and len(allowed) <= _EXACT_FILTERED:
            # A selective filter leaves too few candidates in the probed lists: search the
            # allowed vectors exactly instead (they are few, and their raw vectors are on disk).
            scores, ids = _exact_search(
                matrix, allowed, self._lookup(space), min(fetch, len(allowed))
            )
            results = [_best_per_offer(s, i, k) for s, i in zip(scores, ids, strict=True)]
            space.latencies.append(time.perf_counter() - started)
            return results
        with space.lock.read():
            index, params = space.index, space.params
            fetch = max(1, min(fetch, index.ntotal))
            refine = params.kind == "ivfpq" and params.k_factor > 0
            wanted = fetch * params.k_factor if refine else fetch
            scores, ids = ivf.search(index, params, matrix, wanted, allowed)
        if refine:  # exact re-ranking reads SQLite; done outside the lock
            scores, ids = ivf.rerank(matrix, ids, self._lookup(space), fetch)
        results = [_best_per_offer(s, i, k) for s, i in zip(scores, ids, strict=True)]
        space.latencies.append(time.perf_counter() - started)
        return results

    def _lookup(self, space: _Space) -> ivf.VectorLookup:
        conn = self._read_conn()

        def lookup(ids: np.ndarray) -> np.ndarray:
            def rows() -> dict[int, int]:
                return metadata.vector_rows(conn, space.name, ids)

            found, vectors_log = self._pinned(conn, space.name, space.spec.dim, rows)
            vids = ids.tolist()
            known = [n for n, vid in enumerate(vids) if vid in found]
            out = np.zeros((len(ids), space.spec.dim), dtype=np.float32)
            rows = np.array([found[vids[n]] for n in known], dtype=np.int64)
            read = vectors_log.read(rows, ids[known])
            self._note_damage(space.name, ids[known][~read.ok])
            out[known] = read.vectors  # unknown and damaged rows score 0
            return out

        return lookup

    def _read_conn(self) -> sqlite3.Connection:
        """A read-only SQLite connection per thread (WAL readers never block the writer)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = metadata.connect(self.path / DB_NAME, readonly=True)
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn

    def iter_vectors(
        self, space: str, batch: int = 65536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every live vector of a recorded space, in id order: (vector ids, matrix) batches.

        Vectors whose log rows are damaged are left out (and reported in `health`).
        """
        conn = self._read_conn()
        specs = metadata.space_specs(conn)
        if space not in specs:
            raise UnknownSpaceError(f"unknown vector space {space!r}; have {sorted(specs)}")
        (ids, rows), vectors_log = self._pinned(
            conn, space, specs[space].dim, lambda: metadata.live_vector_rows(conn, space)
        )
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            vectors, ok = vectors_log.read(rows[start : start + batch], part)
            self._note_damage(space, part[~ok])
            yield part[ok], vectors[ok]

    def get_offers(self, ids: Iterable[int]) -> dict[int, OfferRecord]:
        """Offer records by id (ids that do not exist are absent from the result)."""
        return metadata.get_offers(self._read_conn(), ids)

    def price_history(self, offer_id: int) -> list[PricePoint]:
        """Every recorded (price, currency, availability, seen_at) of an offer, oldest first."""
        return metadata.price_history(self._read_conn(), offer_id)

    def count(self, space: str) -> int:
        """Vectors currently searchable in `space`."""
        return int(self._space(space).index.ntotal)

    def refresh(self) -> None:
        """Read-only stores: pick up rows another process committed, and newer index types."""
        with self._write_lock:
            self._last_refresh = time.monotonic()
            conn = self._conn
            conn.execute("BEGIN")
            try:
                seq = metadata.state(conn, "seq")
                purged = metadata.state(conn, "purged_seq")
                newest = {n: metadata.snapshots(conn, n)[:1] for n in self._spaces}
                current = {file for _, file, _ in metadata.vector_logs(conn)}
            finally:
                conn.execute("COMMIT")
            with self._logs_lock:  # logs the writer compacted away close with their last reader
                for file in set(self._logs) - current:
                    self._retired.add(file)
                    del self._logs[file]
            for name, space in list(self._spaces.items()):
                snap = newest[name][0] if newest[name] else None
                rebuilt = snap is not None and (
                    space.snapshot is None
                    or (snap.index_type, snap.params.get("factory"))
                    != (
                        space.snapshot.index_type,
                        space.snapshot.params.get("factory"),
                    )
                )
                if rebuilt or space.applied_seq < purged:
                    fresh = self._load_space(name, space.spec)
                    fresh.latencies = space.latencies
                    with space.lock.write():
                        self._spaces[name] = fresh
                elif seq > space.applied_seq:
                    conn.execute("BEGIN")
                    try:
                        with space.lock.write():
                            self._replay(space, metadata.state(conn, "seq"))
                    finally:
                        conn.execute("COMMIT")

    # ------------------------------------------------------------------ persistence
    def maybe_flush(self) -> bool:
        """Flush if ``flush_interval_s`` passed since the last flush (cheap to call per item)."""
        if time.monotonic() - self._last_flush < self.options.flush_interval_s:
            return False
        self.flush()
        return True

    def flush(self) -> int:
        """Write a snapshot of every changed space; returns how many files were written.

        The index is copied in memory under a shared lock; the file write and fsync run with no
        lock held, and the snapshot becomes current only when its SQLite row commits.
        """
        self._require_writer()
        with self._flush_lock:
            started = time.perf_counter()
            pending = []
            with self._write_lock:
                seq = metadata.state(self._conn, "seq")
                generation = metadata.state(self._conn, "generation") + 1
                for space in self._spaces.values():
                    if not space.dirty and space.snapshot is not None:
                        continue
                    with space.lock.read():
                        data = snapshots.serialize(space.index)
                        params = space.params
                    space.dirty = False
                    pending.append((space, data, params))
            if not pending:
                self._mark_flushed(started)
                return 0
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            rows = []
            try:
                for space, data, params in pending:
                    name = snapshots.snapshot_name(space.name, generation, stamp)
                    written = snapshots.write_atomic(self.path, name, data)
                    rows.append(
                        metadata.SnapshotRow(
                            space.name,
                            generation,
                            written.name,
                            seq,
                            written.sha256,
                            written.size,
                            params.kind,
                            params.to_dict(),
                            utcnow().isoformat(),
                        )
                    )
                with self._write_lock, self._transaction():
                    for row in rows:
                        metadata.add_snapshot(self._conn, row)
                    metadata.set_state(self._conn, "generation", generation)
            except BaseException:
                for space, _, _ in pending:
                    space.dirty = True
                for row in rows:  # written but never committed: nothing refers to them
                    (self.path / row.file).unlink(missing_ok=True)
                raise
            for row, (space, _, _) in zip(rows, pending, strict=True):
                space.snapshot = row
            self._prune_backups()
            self._mark_flushed(started)
            return len(rows)

    def _mark_flushed(self, started: float) -> None:
        self._last_flush = time.monotonic()
        self._last_flush_at = utcnow().isoformat()
        self._last_flush_s = round(time.perf_counter() - started, 4)

    def _prune_backups(self) -> None:
        """Keep the current snapshot plus ``backups_keep`` older ones per space."""
        doomed = []
        with self._write_lock, self._transaction():
            for name in self._spaces:
                for old in metadata.snapshots(self._conn, name)[1 + self.options.backups_keep :]:
                    metadata.delete_snapshot(self._conn, name, old.generation)
                    doomed.append(old.file)
        for file in doomed:  # rows first: a kill here leaves orphans, swept on the next open
            with contextlib.suppress(OSError):
                (self.path / file).unlink()

    def compact(self) -> dict[str, int]:
        """Flush, drop tombstones of removed ids, rewrite vector logs without replaced or
        removed rows, and give SQLite's free pages back to the disk."""
        self._require_writer()
        before = _dir_size(self.path)
        self.flush()
        with self._write_lock:
            rows_dropped = sum(self._compact_log(name) for name in self._spaces)
            with self._transaction():
                seq = metadata.state(self._conn, "seq")
                purged = self._conn.execute("DELETE FROM tombstones WHERE seq <= ?", (seq,))
                metadata.set_state(self._conn, "purged_seq", seq)
            dropped = purged.rowcount
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._sweep_orphans()
        after = _dir_size(self.path)
        return {
            "tombstones_dropped": dropped,
            "log_rows_dropped": rows_dropped,
            "bytes_before": before,
            "bytes_after": after,
        }

    def _compact_log(self, name: str) -> int:
        """Copy a space's live rows to the next log file and switch to it; rows dropped.

        The new file is complete and fsynced before the commit that points rows at it, so a
        kill leaves either the old file current or the new one (the loser is swept on open).
        Searches may still be reading the old file: its handle is only dropped from the cache
        and closes when they are done. A damaged row refuses the compaction (copying it would
        lose or launder the damage): remove or re-crawl its offer first.
        """
        conn = self._conn
        dim = self._spaces[name].spec.dim
        file, committed = metadata.vector_log(conn, name)
        ids, rows = metadata.live_vector_rows(conn, name)
        if len(ids) == committed:
            return 0
        order = np.argsort(rows, kind="stable")  # sequential reads of the old file
        ids, rows = ids[order], rows[order]
        new_file = vectorlog.log_name(name, vectorlog.log_epoch(file) + 1)
        old = self._vector_log(file, dim)
        new = vectorlog.VectorLog(self.path / new_file, dim, writable=True, create=True)
        new.truncate(0)
        for start in range(0, len(rows), 65536):
            part = ids[start : start + 65536]
            vectors, ok = old.read(rows[start : start + 65536], part)
            if not ok.all():
                self._note_damage(name, part[~ok])
                new.close()
                (self.path / new_file).unlink(missing_ok=True)
                raise StoreError(
                    f"space {name!r}: {int((~ok).sum())} damaged vector rows in {old.path}"
                    f" (offers {sorted({int(v) >> ORDINAL_BITS for v in part[~ok]})[:10]});"
                    " not compacting: remove or re-crawl those offers, `cumpair index check`"
                    " lists them"
                )
            new.write(start, part, vectors)
        new.sync()
        with self._logs_lock:
            self._logs[new_file] = new
        with self._transaction():
            conn.executemany(
                "UPDATE vectors SET row = ? WHERE space = ? AND vector_id = ?",
                [(n, name, vid) for n, vid in enumerate(ids.tolist())],
            )
            metadata.set_vector_log(conn, name, new_file, len(ids))
        with self._logs_lock:  # readers holding it keep it open (see `_vector_log`)
            self._retired.add(file)
            self._logs.pop(file, None)
        return committed - len(ids)

    # ------------------------------------------------------------------ scaling
    def _schedule_upgrades(self) -> None:
        for space in self._spaces.values():
            if space.upgrade_thread is not None or space.upgrade_error is not None:
                continue
            if not ivf.needs_ivfpq(space.params, space.index.ntotal, self.options):
                continue
            if self.options.background_upgrade:
                thread = threading.Thread(
                    target=self._upgrade_logged, args=(space,), name=f"upgrade-{space.name}"
                )
                space.upgrade_thread = thread
                thread.start()
            else:
                self._upgrade(space)

    def _upgrade_logged(self, space: _Space) -> None:
        try:
            self._upgrade(space)
        except Exception as exc:  # a failed build must not kill the crawl: report it in health
            log.exception("product store %s: upgrade of %r failed", self.path, space.name)
            space.upgrade_error = f"{type(exc).__name__}: {exc}"
        finally:
            space.upgrade_thread = None

    def _upgrade(self, space: _Space) -> None:
        """Build IVF-PQ aside from the rows at one sequence number, replay newer rows, swap."""
        conn = metadata.connect(self.path / DB_NAME, readonly=True)
        try:
            (base_seq, (ids, rows)), source = self._pinned(
                conn,
                space.name,
                space.spec.dim,
                lambda: (metadata.state(conn, "seq"), metadata.live_vector_rows(conn, space.name)),
            )
        finally:
            conn.close()
        vectors, ok = source.read(rows, ids)
        self._note_damage(space.name, ids[~ok])
        if not ok.any():
            return
        index, params = ivf.build_and_tune(vectors[ok], ids[ok], self.options)
        del vectors
        with self._write_lock:
            seq = metadata.state(self._conn, "seq")
            shadow = _Space(space.name, space.spec, index, params, base_seq)
            self._replay(shadow, seq)
            with space.lock.write():
                space.index, space.params = shadow.index, shadow.params
                space.applied_seq = seq
                space.dirty = True
            with self._transaction():
                event = {"space": space.name, **params.to_dict()}
                metadata.record_event(self._conn, utcnow().isoformat(), "upgrade", event)
        log.info("product store %s: %r is now %s", self.path, space.name, params.factory)
        self.flush()

    def wait_for_upgrades(self, timeout: float | None = None) -> None:
        """Block until background upgrades finish (tests, `optimize`, shutdown)."""
        for space in self._spaces.values():
            thread = space.upgrade_thread
            if thread is not None:
                thread.join(timeout)

    def optimize(self) -> dict[str, str]:
        """Upgrade/re-train every space that has outgrown its index now, then flush."""
        self._require_writer()
        self.wait_for_upgrades()
        done = {}
        for space in self._spaces.values():
            space.upgrade_error = None
            if ivf.needs_ivfpq(space.params, space.index.ntotal, self.options):
                self._upgrade(space)
            done[space.name] = space.params.factory
        self.flush()
        return done

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """Counts, index parameters, flush and recovery state, damage, files, memory, latencies.

        ``damage`` says whether anything is known to be wrong: vector rows that failed their
        checks in this process (on replay, search or `check`), committed log rows missing from
        the file, files kept in ``lost+found/``, and the last `check`'s verdict.
        """
        conn = self._read_conn()
        seq = metadata.state(conn, "seq")
        spaces = {}
        with self._damage_lock:
            damaged = {name: sorted(vids) for name, vids in self._damage.items() if vids}
        missing_rows = {}
        for name, space in self._spaces.items():
            file, committed = metadata.vector_log(conn, name)
            with contextlib.suppress(OSError, StoreError):  # swept by a compaction meanwhile
                on_disk = self._vector_log(file, space.spec.dim).rows_on_disk()
                if on_disk < committed:
                    missing_rows[name] = committed - on_disk
        for name, space in self._spaces.items():
            snaps = metadata.snapshots(conn, name)
            base = space.snapshot.seq if space.snapshot else 0
            pending = conn.execute(
                "SELECT (SELECT COUNT(*) FROM vectors WHERE space = ? AND seq > ?)"
                " + (SELECT COUNT(*) FROM tombstones WHERE space = ? AND seq > ?)",
                (name, base, name, base),
            ).fetchone()[0]
            spaces[name] = {
                "dim": space.spec.dim,
                "encoder": space.spec.encoder,
                "encoder_version": space.spec.version,
                "vectors": int(space.index.ntotal),
                "index_type": space.params.kind,
                "index": space.params.to_dict(),
                "index_bytes_per_vector": _bytes_per_vector(space),
                "measured_recall": space.params.recall,
                "pending_unflushed": int(pending),
                "snapshot": snaps[0].file if snaps else None,
                "backups": [s.file for s in snaps[1:]],
                "upgrading": space.upgrade_thread is not None,
                "upgrade_error": space.upgrade_error,
                "damaged_vectors": len(damaged.get(name, ())),
                "search_latency_ms": _percentiles(space.latencies),
            }
        files = {p.name: p.stat().st_size for p in sorted(self.path.iterdir()) if p.is_file()}
        recovery = (
            self._recoveries[-1] if self._recoveries else metadata.last_event(conn, "recovery")
        )
        last_check = metadata.last_event(conn, "check")
        kept = lostfound.listing(self.path)
        damage = {
            "found": bool(damaged or missing_rows or kept)
            or (last_check is not None and not last_check["ok"]),
            "damaged_vector_ids": {name: vids[:100] for name, vids in damaged.items()},
            "log_rows_missing": missing_rows,
            "lost_and_found": kept,
            "last_kept_aside": metadata.last_event(conn, "kept_aside"),
            "last_check": last_check,
        }
        return {
            "path": str(self.path),
            "readonly": self.readonly,
            "schema_version": metadata.SCHEMA_VERSION,
            "generation": metadata.state(conn, "generation"),
            "seq": seq,
            "offers": conn.execute("SELECT COUNT(*) FROM offers").fetchone()[0],
            "price_points": conn.execute("SELECT COUNT(*) FROM price_history").fetchone()[0],
            "last_flush_at": self._last_flush_at,
            "last_flush_s": self._last_flush_s,
            "flush_interval_s": self.options.flush_interval_s,
            "spaces": spaces,
            "files": files,
            "disk_bytes": sum(files.values()),
            "memory_rss_bytes": _rss_bytes(),
            "last_recovery": recovery,
            "last_upgrade": metadata.last_event(conn, "upgrade"),
            "damage": damage,
        }

    def check(self) -> dict[str, Any]:
        """Verify every live vector row (present, checksum, id) and every snapshot file.

        Reads everything once; safe on a read-only store during a crawl. ``ok`` is False when
        anything failed or ``lost+found/`` holds files. A writer records the verdict as an event
        that `health` reports.
        """
        conn = self._read_conn()
        spaces = {}
        for name, space in self._spaces.items():
            (ids, rows), vectors_log = self._pinned(
                conn, name, space.spec.dim, lambda n=name: metadata.live_vector_rows(conn, n)
            )
            bad: list[int] = []
            for start in range(0, len(ids), 65536):
                part = ids[start : start + 65536]
                _, ok = vectors_log.read(rows[start : start + 65536], part)
                bad += part[~ok].tolist()
            self._note_damage(name, np.array(bad, dtype=np.int64))
            snaps = {}
            for snap in metadata.snapshots(conn, name):
                try:
                    snapshots.verify(self.path, snap.file, snap.sha256, snap.size)
                    snaps[snap.file] = "ok"
                except snapshots.SnapshotCorruptError as exc:
                    snaps[snap.file] = str(exc)
            spaces[name] = {
                "log": vectors_log.path.name,
                "vectors": len(ids),
                "damaged": len(bad),
                "damaged_vector_ids": bad[:100],
                "damaged_offers": sorted({v >> ORDINAL_BITS for v in bad})[:100],
                "snapshots": snaps,
            }
        kept = lostfound.listing(self.path)
        ok = not kept and all(
            not s["damaged"] and all(v == "ok" for v in s["snapshots"].values())
            for s in spaces.values()
        )
        result = {"ok": ok, "spaces": spaces, "lost_and_found": kept}
        if not self.readonly:
            with self._write_lock, self._transaction():
                summary = {"ok": ok, **{n: s["damaged"] for n, s in spaces.items()}}
                metadata.record_event(self._conn, utcnow().isoformat(), "check", summary)
        return result


def _data_files(path: Path) -> list[str]:
    """Files of a store directory that hold store data (vector logs, snapshots, SQLite's WAL)."""
    if not path.is_dir():
        return []
    return sorted(
        p.name
        for p in path.iterdir()
        if p.is_file()
        and (
            vectorlog.is_log_name(p.name)
            or p.suffix == ".faiss"
            or p.name.startswith(f"{DB_NAME}-")
        )
    )


def _refuse_without_database(path: Path) -> None:
    """Raise `MissingDatabaseError` when data files lie in `path` but its database is gone."""
    found = _data_files(path)
    if found:
        raise MissingDatabaseError(
            f"{path / DB_NAME} is missing, but {path} holds store data files: {', '.join(found)}."
            " Opening would start an empty database that knows none of them, so it is refused."
            f" Restore {DB_NAME} from a backup, or run `cumpair index recover --path {path}` to"
            f" move them under {lostfound.FOLDER}/ with an inventory and start afresh."
        )


def recover(path: str | os.PathLike[str], lock_timeout_s: float = 10.0) -> dict[str, Any]:
    """`cumpair index recover`: keep every data file of a store whose database is gone.

    Offer records (shop, URL, price history) exist only in the database, so nothing can rebuild
    them; the files are moved, untouched, to ``lost+found/recovered-<time>/`` beside an
    ``inventory.json`` of what they hold (per log: space, dimension, rows, rows whose checksum
    holds, distinct offer ids; per snapshot: space, generation, bytes). The directory is then
    ready for a fresh store, which a re-crawl refills; restoring the database from a backup
    and moving the files back restores the old one.
    """
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"no store directory at {path}")
    lock = WriterLock(path)
    lock.acquire(lock_timeout_s)
    try:
        if (path / DB_NAME).exists():
            raise StoreError(
                f"{path / DB_NAME} exists: nothing to recover (`cumpair index check` verifies it)"
            )
        found = _data_files(path)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = path / lostfound.FOLDER / f"recovered-{stamp}"
        inventory: dict[str, Any] = {"from": str(path), "kept_in": None, "files": {}}
        if not found:
            return inventory
        folder.mkdir(parents=True)
        inventory["kept_in"] = str(folder)
        for name in found:
            inventory["files"][name] = _inventory_entry(path / name)
            os.replace(path / name, folder / name)
        (folder / "inventory.json").write_text(json.dumps(inventory, indent=2))
        snapshots.fsync_dir(path)
        return inventory
    finally:
        lock.release()


def _inventory_entry(file: Path) -> dict[str, Any]:
    """What one data file holds, as far as it can be read without the database."""
    entry: dict[str, Any] = {"bytes": file.stat().st_size}
    if vectorlog.is_log_name(file.name):
        entry["space"] = vectorlog.log_space(file.name)
        try:
            vectors_log = vectorlog.VectorLog.existing(file)
        except StoreError as exc:  # a schema-2 log, or a damaged header
            entry["error"] = str(exc)
            return entry
        try:
            total = vectors_log.rows_on_disk()
            offers: set[int] = set()
            intact = 0
            for start in range(0, total, 65536):
                ids, ok = vectors_log.read_ids(start, min(total, start + 65536))
                intact += int(ok.sum())
                offers.update((ids[ok] >> ORDINAL_BITS).tolist())
        finally:
            vectors_log.close()
        entry.update(dim=vectors_log.dim, rows=total, rows_intact=intact, offers=len(offers))
    elif file.suffix == ".faiss":
        generation = snapshots.generation_of(file.name)
        entry.update(space=file.name.rsplit(".", 3)[0], generation=generation)
    return entry


def _check_objects(values: Any, name: str, required: str | None = None) -> None:
    """Refuse an offer list field that is not a list of JSON objects (each naming `required`)."""
    if not isinstance(values, list | tuple):
        raise InvalidOfferError(f"offer.{name} must be a list of objects, got {values!r}")
    for value in values:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidOfferError(f"offer.{name}: {value!r} is not an object with text keys")
        if required is not None and not isinstance(value.get(required), str):
            raise InvalidOfferError(f"offer.{name}: {value!r} has no {required!r}")


def _independent_end(items: list[_Prepared], start: int) -> int:
    """End of the run from `start` in which no two items share a shop+URL or shop+GTIN."""
    seen: set[tuple[str, str, str]] = set()
    for end in range(start, len(items)):
        offer = items[end][0]
        keys = {("url", offer.shop, offer.url)}
        if offer.gtin:
            keys.add(("gtin", offer.shop, offer.gtin))
        if seen & keys:
            return end
        seen |= keys
    return len(items)


def _price_key(value: tuple[str | None, str | None]) -> tuple[Decimal | None, str | None]:
    price, currency = value
    return (None if price is None else Decimal(price), currency)


def _best_per_offer(scores: np.ndarray, ids: np.ndarray, k: int) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[int] = set()
    mask = (1 << ORDINAL_BITS) - 1
    for score, vid in zip(scores.tolist(), ids.tolist(), strict=True):
        if vid < 0:
            continue
        offer_id = vid >> ORDINAL_BITS
        if offer_id in seen:
            continue
        seen.add(offer_id)
        hits.append(Hit(offer_id, float(score), vid & mask))
        if len(hits) == k:
            break
    return hits


def _exact_search(
    queries: np.ndarray, allowed: np.ndarray, lookup: ivf.VectorLookup, k: int
) -> tuple[np.ndarray, np.ndarray]:
    vectors = lookup(allowed)
    scores, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, np.where(rows >= 0, allowed[np.maximum(rows, 0)], -1)


def _percentiles(samples: deque) -> dict[str, float | int]:
    if not samples:
        return {"count": 0}
    values = np.array(samples) * 1000
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"count": len(values), "p50": round(p50, 3), "p95": round(p95, 3), "p99": round(p99, 3)}


def _bytes_per_vector(space: _Space) -> float | None:
    n = space.index.ntotal
    if not n:
        return None
    if space.params.kind == "flat":
        return float(space.spec.dim * 4 + 8)
    invlists = faiss.extract_index_ivf(space.index).invlists
    return float(invlists.code_size + 8)  # PQ code + 64-bit id in its inverted list


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
