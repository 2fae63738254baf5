"""The upgrade path: a Flat space past ``upgrade_threshold`` becomes IVF-PQ (re-trained as it
grows, rebuilt by `optimize` when its code layout is not the configured one), built aside on a
worker thread from one consistent snapshot of rows, then swapped in.

A build reads the vector log, never a copy of it: it trains on a random sample of rows, adds
the rest chunk by chunk, and re-ranks while tuning straight from the (memory-mapped) log,
letting go of the mapped pages after each read, so its memory is the new index, the sample
and one chunk. Damaged rows are left out and noted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from cumpair.index import ivf, metadata, vectorlog
from cumpair.index.records import utcnow
from cumpair.index.store.base import DB_NAME, StoreBase, _Space, log
from cumpair.index.store.rowmap import RowMap

_CHUNK = 16384  # rows read from the log per add (8 MiB at 128-d, 32 MiB at 512-d)

# (space, phase, rows done, rows in all) after each chunk of a build: phase "add" while the new
# index takes the rows, "tune" while its recall is measured against exact search over them.
UpgradeProgress = Callable[[str, str, int, int], None]
_SAMPLE_SEED = 1234


class Upgrade(StoreBase):
    """The upgrade path (a part of `ProductStore`)."""

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

    def _upgrade(self, space: _Space, on_progress: UpgradeProgress | None = None) -> None:
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
        if not len(ids):
            return
        planned = ivf.choose_ivfpq(len(ids), space.spec.dim, self.options)
        pick = np.random.default_rng(_SAMPLE_SEED).choice(
            len(ids), min(len(ids), ivf.training_size(planned) + ivf.TUNING_QUERIES), replace=False
        )
        pick.sort()
        sample, ok = _read_by_span(source, rows[pick], ids[pick])
        self._note_damage(space.name, ids[pick][~ok])
        if not ok.any():
            return

        passes = 0

        def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            nonlocal passes
            phase, passes = ("add" if passes == 0 else "tune"), passes + 1
            return self._log_chunks(space, source, ids, rows, phase, on_progress)

        if not ok.all():
            sample, pick = sample[ok], pick[ok]
        row_map = RowMap.build(source.path.name, source, base_seq, ids, rows)

        def lookup(wanted: np.ndarray) -> vectorlog.LogRead:  # tuning's re-rank source
            out = vectorlog.LogRead(
                np.zeros((len(wanted), source.dim), np.float32), np.zeros(len(wanted), bool)
            )
            for at, first, last in _spans(row_map.rows_of(wanted)):
                out.vectors[at], out.ok[at] = row_map.gather(wanted[at])
                if first >= 0:
                    source.release(first, last + 1)
            return out

        index, params = ivf.build_and_tune(
            sample, ids[pick], len(ids), chunks, lookup, self.options
        )
        del sample
        with self._write_lock:
            seq = metadata.state(self._conn, "seq")
            shadow = _Space(space.name, space.spec, index, params, base_seq)
            self._replay(shadow, seq)
            with space.lock.write():
                space.index, space.params = shadow.index, shadow.params
                space.applied_seq = seq
                space.dirty = True
            space.rows.current = row_map  # searches bring it forward from base_seq
            with self._transaction():
                event = {"space": space.name, **params.to_dict()}
                metadata.record_event(self._conn, utcnow().isoformat(), "upgrade", event)
        log.info("product store %s: %r is now %s", self.path, space.name, params.factory)
        self.flush()

    def _log_chunks(
        self,
        space: _Space,
        source: vectorlog.VectorLog,
        ids: np.ndarray,
        rows: np.ndarray,
        phase: str,
        on_progress: UpgradeProgress | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of the log rows `rows`, `_CHUNK` at a time; damaged rows left out and
        noted; `on_progress` hears `phase` after each chunk."""
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            vectors, good = _read_by_span(source, rows[start : start + _CHUNK], part)
            if good.all():
                yield part, vectors
            else:
                self._note_damage(space.name, part[~good])
                yield part[good], vectors[good]
            if on_progress is not None:
                on_progress(space.name, phase, min(start + _CHUNK, len(ids)), len(ids))

    def _retune_near(self, space: _Space, on_progress: UpgradeProgress | None = None) -> None:
        """Add the near-neighbour tuning to a built IVF-PQ index that lacks it (or has it for
        another cosine) without re-training or rebuilding it (`ivf.retune_near`): a random
        `TUNING_QUERIES` stored vectors, their exact neighbours from one pass over the log, and
        searches of the index as it is. One pass over the vectors where a rebuild trains, adds
        every vector and tunes again (hours at 10^6). Upserts wait meanwhile."""
        with self._write_lock:
            conn = metadata.connect(self.path / DB_NAME, readonly=True)
            try:
                (ids, rows), source = self._pinned(
                    conn,
                    space.name,
                    space.spec.dim,
                    lambda: metadata.live_vector_rows(conn, space.name),
                )
            finally:
                conn.close()
            if not len(ids):
                return
            count = min(len(ids), ivf.TUNING_QUERIES)
            pick = np.sort(np.random.default_rng(_SAMPLE_SEED).choice(len(ids), count, False))
            queries, ok = _read_by_span(source, rows[pick], ids[pick])
            self._note_damage(space.name, ids[pick][~ok])
            if not ok.any():
                return

            def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                return self._log_chunks(space, source, ids, rows, "tune", on_progress)

            with space.lock.read():
                index, params = space.index, space.params
                tuned = ivf.retune_near(
                    index, params, queries[ok], ids[pick][ok], chunks,
                    partial(self._vectors, space), self.options,
                )  # fmt: skip
            with space.lock.write():
                space.params = tuned
                space.dirty = True
            with self._transaction():
                event = {"space": space.name, **tuned.to_dict()}
                metadata.record_event(self._conn, utcnow().isoformat(), "retune", event)
        log.info(
            "product store %s: %r re-tuned for near neighbours: %d lists",
            self.path, space.name, tuned.near_nprobe,
        )  # fmt: skip

    def wait_for_upgrades(self, timeout: float | None = None) -> None:
        """Block until background upgrades finish (tests, `optimize`, shutdown)."""
        for space in self._spaces.values():
            thread = space.upgrade_thread
            if thread is not None:
                thread.join(timeout)

    def optimize(self, on_progress: UpgradeProgress | None = None) -> dict[str, str]:
        """Upgrade/re-train every space that has outgrown its index (or whose IVF-PQ codes are
        not the configured layout) now, re-tune one that lacks only the near-neighbour tuning
        (`_retune_near`: the index kept), then flush; `on_progress` hears each build's rows."""
        self._require_writer()
        self.wait_for_upgrades()
        done = {}
        for space in self._spaces.values():
            space.upgrade_error = None
            params, count = space.params, space.index.ntotal
            if ivf.needs_ivfpq(params, count, self.options) or ivf.outdated_codes(
                params, self.options
            ):
                self._upgrade(space, on_progress)
            elif ivf.near_untuned(params, self.options):
                self._retune_near(space, on_progress)
            done[space.name] = space.params.factory
        self.flush()
        return done


def _spans(rows: np.ndarray) -> Iterator[tuple[np.ndarray, int, int]]:
    """Positions of `rows` by the `_CHUNK`-row span of the log they fall in, with the first
    and last row of each (rows < 0, which read nothing, come first with -1, -1)."""
    order = np.argsort(rows, kind="stable")
    spans = np.where(rows[order] < 0, -1, rows[order] // _CHUNK)
    for at in np.split(order, np.flatnonzero(np.diff(spans)) + 1):
        if len(at):
            yield at, int(rows[at[0]]), int(rows[at[-1]])


def _read_by_span(
    source: vectorlog.VectorLog, rows: np.ndarray, ids: np.ndarray
) -> vectorlog.LogRead:
    """`source.read` one span of the log at a time, letting go of each span's mapped pages
    after it: reading rows scattered over the log keeps one span resident, not the file."""
    out = vectorlog.LogRead(
        np.empty((len(rows), source.dim), np.float32), np.empty(len(rows), bool)
    )
    for at, first, last in _spans(rows):
        out.vectors[at], out.ok[at] = source.read(rows[at], ids[at])
        source.release(first, last + 1)
    return out
