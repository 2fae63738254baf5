"""Opening and replay: load each space's newest good snapshot, replay newer rows, tidy the
directory (what it cannot account for goes to lost+found/), refresh readers, close.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import faiss

from cumpair.index import ivf, lostfound, metadata, snapshots, title_terms, vectorlog
from cumpair.index.ivf import IndexParams
from cumpair.index.locks import WriterLock
from cumpair.index.records import (
    EncoderMismatchError,
    MissingDatabaseError,
    SpaceSpec,
    StoreOptions,
    UnknownSpaceError,
    utcnow,
)
from cumpair.index.store.base import DB_NAME, StoreBase, _Space, log
from cumpair.index.store.rows import connect_reader


class Opening(StoreBase):
    """Opening and replay (a part of `ProductStore`)."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = "index_data",
        spaces: Mapping[str, SpaceSpec] | None = None,
        options: StoreOptions | None = None,
        *,
        readonly: bool = False,
    ) -> Self:
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
            self._conn = connect_reader(self.path)
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
            if filled := title_terms.backfill(self._conn):  # a migrated store's titles
                log.info("title-term index: %d offers' titles indexed", filled)
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
                # any change of params means a new index file to load (a replay keeps them):
                # optimize's re-tune keeps the factory and the codes but records new params
                rebuilt = snap is not None and (
                    space.snapshot is None
                    or (snap.index_type, snap.params)
                    != (space.snapshot.index_type, space.snapshot.params)
                )
                if rebuilt or space.applied_seq < purged:
                    fresh = self._load_space(name, space.spec)
                    fresh.latencies = space.latencies
                    fresh.effort_latencies = space.effort_latencies
                    with space.lock.write():
                        self._spaces[name] = fresh
                elif seq > space.applied_seq:
                    conn.execute("BEGIN")
                    try:
                        with space.lock.write():
                            self._replay(space, metadata.state(conn, "seq"))
                    finally:
                        conn.execute("COMMIT")

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
