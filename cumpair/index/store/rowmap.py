"""Where each live vector of a space lies in its vector log, in memory, for re-ranking.

Re-ranking an IVF-PQ search reads hundreds of candidate rows per query. Asking SQLite for each
candidate's row cost more than the search itself (10^5 x 512: 161 q/s against raw FAISS's 950
on the same codes), so searches ask a `RowMap` instead. It holds one row number per offer id
for the offer's first vector (offer ids are dense: 4 bytes an offer while the log has under
2^31 rows) and a sorted side table for further vectors of an offer.

A map is a snapshot of one log file at one sequence number and is never changed once built:
`RowMapSlot` swaps in the next one, brought forward from the rows committed since, or rebuilt
whole when a compaction switched files or purged the tombstones it would need. It never opens
the database itself; the store hands it the rows.

Bringing a map forward costs what changed, not the map's size, when the changes only add
offers past its end (a crawl's new offers): the next map writes them into spare room after the
arrays the older maps see, which never change. Dropping or moving vectors the map holds copies
it (10^6 offers: ~1.3 ms a search after each write before, when every change copied).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from cumpair.index.records import MAX_VECTORS_PER_OFFER, ORDINAL_BITS
from cumpair.index.vectorlog import LogRead, VectorLog

_ORDINAL_MASK = MAX_VECTORS_PER_OFFER - 1
_INT32_ROWS = 2**31 - 1
_GROWTH = 8  # spare room a copy leaves: 1/_GROWTH of its length (amortised copies, 12% RAM)
_MIN_ROOM = 1024  # entries


class _Spare:
    """An array's buffer with room past its end, shared by the maps made from one another.

    The map whose arrays end where the filled part does may fill the room after them; every
    older map sees a shorter prefix, which no one writes again.
    """

    def __init__(self, buffer: np.ndarray, used: int) -> None:
        self.buffer, self.used = buffer, used
        self.lock = threading.Lock()


def _extended(
    view: np.ndarray, spare: _Spare | None, size: int, at: np.ndarray, values: np.ndarray,
    dtype: np.dtype, fill: int,
) -> tuple[np.ndarray, _Spare]:  # fmt: skip
    """`view` grown to `size` with `values` at positions `at` (all at or past its end), in
    `spare`'s room when it has that room after `view`, else in a new buffer with room to spare
    (none for a map built whole: it may never grow)."""
    if spare is not None and spare.buffer.dtype == dtype and size <= len(spare.buffer):
        with spare.lock:
            if spare.used == len(view) and view.base is spare.buffer:
                spare.buffer[at] = values
                spare.used = size
                return spare.buffer[:size], spare
    room = max(size // _GROWTH, _MIN_ROOM) if len(view) else 0
    buffer = np.full(size + room, fill, dtype)
    buffer[: len(view)] = view
    buffer[at] = values
    return buffer[:size], _Spare(buffer, size)


@dataclass(frozen=True)
class RowMap:
    """Log rows of a space's live vectors at sequence number `seq` of log `file` (read-only)."""

    file: str
    log: VectorLog
    seq: int
    first: np.ndarray  # row of vector (offer id, 0) at index offer id; -1: none
    more_ids: np.ndarray  # ids of vectors with ordinal > 0, ascending
    more_rows: np.ndarray
    # room past the ends of `first`, `more_ids` and `more_rows` that the next map may fill
    spare: tuple[_Spare | None, _Spare | None, _Spare | None] = field(
        default=(None, None, None), repr=False, compare=False
    )

    @classmethod
    def build(
        cls, file: str, log: VectorLog, seq: int, ids: np.ndarray, rows: np.ndarray
    ) -> RowMap:
        """The map of every live vector (`ids`, `rows`: what SQLite records at `seq`)."""
        empty = np.empty(0, dtype=np.int64)
        return cls(file, log, seq, np.full(0, -1, np.int32), empty, empty).advanced(
            seq, empty, ids, rows
        )

    def advanced(self, seq: int, drop: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> RowMap:
        """A new map: `drop` ids gone, then `ids` at `rows` (what changed up to `seq`)."""
        drop, ids, rows = (np.asarray(a, dtype=np.int64) for a in (drop, ids, rows))
        if not len(drop) and not len(ids):  # the sequence moved on in other spaces only
            return replace(self, seq=seq)
        first_drop = drop[(drop & _ORDINAL_MASK) == 0] >> ORDINAL_BITS
        first_add = (ids & _ORDINAL_MASK) == 0
        offers, first_rows = ids[first_add] >> ORDINAL_BITS, rows[first_add]
        first, first_spare = self._first_advanced(first_drop, offers, first_rows)
        more_ids, more_rows, more_spares = self._more_advanced(
            drop[(drop & _ORDINAL_MASK) != 0], ids[~first_add], rows[~first_add]
        )
        spare = (first_spare, *more_spares)
        return RowMap(self.file, self.log, seq, first, more_ids, more_rows, spare)

    def _first_advanced(
        self, drop: np.ndarray, offers: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, _Spare | None]:
        """`first` without the offers `drop`, then with `offers` at `rows`."""
        held, spare = len(self.first), self.spare[0]
        if not len(drop) and not len(offers):
            return self.first, spare
        size = max(held, int(offers.max()) + 1 if len(offers) else 0)
        wide = len(rows) and int(rows.max()) > _INT32_ROWS
        dtype = np.dtype(np.int64 if wide or self.first.dtype == np.int64 else np.int32)
        if not (drop < held).any() and not (offers < held).any():  # new offers only
            if not len(offers):  # offers added and removed since: none the map holds
                return self.first, spare
            return _extended(self.first, spare, size, offers, rows, dtype, -1)
        first = np.full(size, -1, dtype)
        first[:held] = self.first
        first[drop[drop < size]] = -1
        first[offers] = rows
        return first, None

    def _more_advanced(
        self, drop: np.ndarray, ids: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, tuple[_Spare | None, _Spare | None]]:
        """The side table without the vectors `drop` (ordinal > 0), then with `ids` at `rows`."""
        held, spares = len(self.more_ids), self.spare[1:]
        if not len(drop) and not len(ids):
            return self.more_ids, self.more_rows, spares
        last = int(self.more_ids[-1]) if held else -1
        # `changes_since` drops every id it adds: only a drop of an id held needs the copy
        if not (drop <= last).any() and not (ids <= last).any():
            if not len(ids):  # vectors added and removed since: none the table holds
                return self.more_ids, self.more_rows, spares
            order = np.argsort(ids, kind="stable")  # after every id held: appended, in order
            size, at = held + len(ids), np.arange(held, held + len(ids))
            more_ids, ids_spare = _extended(
                self.more_ids, spares[0], size, at, ids[order], np.dtype(np.int64), -1
            )
            more_rows, rows_spare = _extended(
                self.more_rows, spares[1], size, at, rows[order], np.dtype(np.int64), -1
            )
            return more_ids, more_rows, (ids_spare, rows_spare)
        kept = ~np.isin(self.more_ids, drop) if len(drop) else slice(None)
        more_ids = np.concatenate([self.more_ids[kept], ids])
        more_rows = np.concatenate([self.more_rows[kept], rows])
        order = np.argsort(more_ids, kind="stable")
        return more_ids[order], more_rows[order], (None, None)

    @property
    def nbytes(self) -> int:
        """Memory the map holds (with the spare room of its buffers)."""
        arrays = (self.first, self.more_ids, self.more_rows)
        return sum(
            (spare.buffer if spare is not None else array).nbytes
            for array, spare in zip(arrays, self.spare, strict=True)
        )

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The log row of each vector id (-1: not a live vector of this map)."""
        ids = np.asarray(ids, dtype=np.int64)
        offers, ordinals = ids >> ORDINAL_BITS, ids & _ORDINAL_MASK
        if not ordinals.any():  # first vectors only (-1 has ordinal bits): a re-rank's usual
            inside = offers.view(np.uint64) < len(self.first)  # a negative offer is huge here
            if inside.all():
                return self.first[offers].astype(np.int64)
        out = np.full(len(ids), -1, dtype=np.int64)
        first = (ids >= 0) & (ordinals == 0) & (offers < len(self.first))
        out[first] = self.first[offers[first]]
        more = (ids >= 0) & (ordinals > 0)
        if more.any() and len(self.more_ids):
            at = np.minimum(np.searchsorted(self.more_ids, ids[more]), len(self.more_ids) - 1)
            out[more] = np.where(self.more_ids[at] == ids[more], self.more_rows[at], -1)
        return out

    def gather(self, ids: np.ndarray) -> LogRead:
        """Values of the vectors `ids` unchecked (zeros, not ok: unknown id or another id in
        the row); `read` the rows kept, which checks their CRCs."""
        return self._fetch(ids, self.log.gather)

    def check(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which vectors' rows pass their checks, which failed although the map knows them:
        damage) without copying values out."""
        rows = self.rows_of(ids)
        known = rows >= 0
        ok = np.zeros(len(ids), dtype=bool)
        ok[known] = self.log.check(rows[known], ids[known])
        return ok, known & ~ok

    def read(self, ids: np.ndarray) -> LogRead:
        """Values of the vectors `ids`, every row checked (a damaged one is zeros, not ok)."""
        return self._fetch(ids, self.log.read)

    def _fetch(
        self, ids: np.ndarray, fetch: Callable[[np.ndarray, np.ndarray], LogRead]
    ) -> LogRead:
        """`fetch` (the log's `gather` or `read`) of the rows of `ids` the map knows; an unknown
        id is zeros, not ok."""
        rows = self.rows_of(ids)
        known = rows >= 0
        if known.all():
            return fetch(rows, ids)
        vectors = np.zeros((len(ids), self.log.dim), dtype=np.float32)
        ok = np.zeros(len(ids), dtype=bool)
        vectors[known], ok[known] = fetch(rows[known], ids[known])
        return LogRead(vectors, ok)


class RowMapSlot:
    """A space's current `RowMap` and the lock that lets one thread at a time replace it."""

    def __init__(self) -> None:
        self.current: RowMap | None = None
        self.lock = threading.Lock()
