"""Flush and compaction: FAISS snapshots (atomic, pruned to ``backups_keep``) and vector logs
rewritten without replaced or removed rows.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cumpair.index import metadata, snapshots, vectorlog
from cumpair.index.records import ORDINAL_BITS, StoreError, utcnow
from cumpair.index.store.base import StoreBase


class Persistence(StoreBase):
    """Flush and compaction (a part of `ProductStore`)."""

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


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
