"""Health and checks: counts, index parameters, flush/recovery state, damage, latencies, and a
full verification of every vector row and snapshot.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import Any

import numpy as np

from cumpair.index import ivf, lostfound, metadata, snapshots
from cumpair.index.records import ORDINAL_BITS, StoreError, utcnow
from cumpair.index.store.base import StoreBase, _Space


class Health(StoreBase):
    """Health and checks (a part of `ProductStore`)."""

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
                "row_map_bytes": 0 if space.rows.current is None else space.rows.current.nbytes,
                "measured_recall": space.params.recall,
                "pending_unflushed": int(pending),
                "snapshot": snaps[0].file if snaps else None,
                "backups": [s.file for s in snaps[1:]],
                "upgrading": space.upgrade_thread is not None,
                "upgrade_error": space.upgrade_error,
                "damaged_vectors": len(damaged.get(name, ())),
                "search_latency_ms": _percentiles(space.latencies),
                # searches that asked for less (`SearchEffort`: grouping's), kept apart
                "effort_search_latency_ms": _percentiles(space.effort_latencies),
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
    return ivf.resident_bytes_per_vector(space.index)  # code + id + share of the centroids


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
