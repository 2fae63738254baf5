"""Search and reads: k-NN over a space (filtered, re-ranked, best vector per offer), offers,
price histories, offer and vector scans, all through per-thread read-only connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Iterator
from functools import partial

import faiss
import numpy as np

from cumpair.index import ivf, metadata
from cumpair.index.records import (
    ORDINAL_BITS,
    Hit,
    OfferRecord,
    PricePoint,
    SearchEffort,
    SearchFilters,
    SpaceSpec,
    StoreError,
    UnknownSpaceError,
    vector_id,
)
from cumpair.index.store.base import StoreBase, _Space
from cumpair.index.store.rowmap import RowMap
from cumpair.index.vectorlog import LogRead

_ORDINAL_MASK = (1 << ORDINAL_BITS) - 1
_EXACT_FILTERED = 20_000  # filtered IVF-PQ searches with fewer allowed vectors go exact
_VECTORISED = 256  # hit lists of more (query, rank) cells than this are sorted out by NumPy
_hit = partial(tuple.__new__, Hit)  # Hit((offer, score, ordinal)) without its Python __new__


class Searching(StoreBase):
    """Search and reads (a part of `ProductStore`)."""

    def search(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
        effort: SearchEffort | None = None,
    ) -> list[list[Hit]]:
        """Best `k` offers per query row (``(nq, d)`` or ``(d,)``), best score per offer first.

        `effort` caps the IVF lists probed below the tuned nprobe, or asks for the lists tuned
        for near neighbours (a flat index ignores it). Health reports the latencies of searches
        made with and without one apart.
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
        return self._search_space(state, matrix, k, filters, effort)

    async def asearch(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
        effort: SearchEffort | None = None,
    ) -> list[list[Hit]]:
        """`search` for asyncio code: runs in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.search, space, queries, k, filters, effort)

    def _search_space(
        self,
        space: _Space,
        matrix: np.ndarray,
        k: int,
        filters: SearchFilters | None,
        effort: SearchEffort | None = None,
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
            read = self._vectors(space, allowed, checked=True)
            scores, ids = _exact_search(matrix, allowed[read.ok], read.vectors[read.ok], fetch)
            results = _hit_lists(scores, ids, k)
            _latencies(space, effort).append(time.perf_counter() - started)
            return results
        with space.lock.read():
            index, params = space.index, space.params
            fetch = max(1, min(fetch, index.ntotal))
            refine = params.kind == "ivfpq" and params.k_factor > 0
            # the depth was tuned for recall@recall_k: a smaller k still gets that many candidates
            wanted = max(fetch, params.recall_k) * params.k_factor if refine else fetch
            nprobe = None  # as tuned
            if effort is not None and params.kind == "ivfpq":
                nprobe = params.probes_for(effort.near, effort.lists)
            scores, ids = ivf.search(index, params, matrix, wanted, allowed, nprobe=nprobe)
        if refine:  # exact re-ranking reads the vector log; done outside the lock
            scores, ids = ivf.rerank(
                matrix, ids, partial(self._vectors, space), fetch, partial(self._check, space)
            )
        results = _hit_lists(scores, ids, k)
        _latencies(space, effort).append(time.perf_counter() - started)
        return results

    def _vectors(self, space: _Space, ids: np.ndarray, checked: bool = False) -> LogRead:
        """Vectors of `ids` from the log rows the row map names (CRCs checked when `checked`;
        re-ranking `_check`s its picks instead). Ids the map lacks (written after it) are
        looked up again in a fresher one; rows that fail even so are noted as damage."""
        row_map = self._row_map(space)
        read = (row_map.read if checked else row_map.gather)(ids)
        missing = (ids >= 0) & ~read.ok
        if missing.any():
            row_map = self._row_map(space, newer_than=row_map.seq)
            again = (row_map.read if checked else row_map.gather)(ids[missing])
            read.vectors[missing], read.ok[missing] = again
            failed = ids[missing][~again.ok]
            self._note_damage(space.name, failed[row_map.rows_of(failed) >= 0])
        return read

    def _check(self, space: _Space, ids: np.ndarray) -> np.ndarray:
        """Which of the re-ranked picks `ids` pass their CRCs (failures are noted as damage)."""
        ok, damaged = self._row_map(space).check(ids)
        self._note_damage(space.name, ids[damaged])
        return ok

    def _row_map(self, space: _Space, newer_than: int = -1) -> RowMap:
        """The space's row map: at least as new as its index and newer than `newer_than`
        (when the database is), of the space's current log file."""
        slot = space.rows

        def fresh(row_map: RowMap | None) -> bool:
            return (
                row_map is not None
                and row_map.seq >= space.applied_seq
                and row_map.seq > newer_than
                and row_map.file not in self._retired
            )

        if fresh(current := slot.current):
            return current
        with slot.lock:
            if not fresh(current := slot.current):
                slot.current = current = self._next_row_map(space, current)
            return current

    def _next_row_map(self, space: _Space, current: RowMap | None) -> RowMap:
        """`current` brought forward to the database's newest rows (rebuilt whole when the
        log file changed or tombstones it needs were purged)."""
        conn = self._read_conn()

        def query() -> tuple[int, str, tuple | None, tuple | None]:
            """(seq, file, what changed since `current`, every live row): one of the two."""
            seq, (file, _) = metadata.state(conn, "seq"), metadata.vector_log(conn, space.name)
            if current is None or current.file != file:
                return seq, file, None, metadata.live_vector_rows(conn, space.name)
            if current.seq == seq:
                return seq, file, (), None
            if current.seq < metadata.state(conn, "purged_seq"):
                return seq, file, None, metadata.live_vector_rows(conn, space.name)
            return seq, file, metadata.changes_since(conn, space.name, current.seq), None

        (seq, file, changes, everything), log = self._pinned(
            conn, space.name, space.spec.dim, query
        )
        if everything is not None:
            return RowMap.build(file, log, seq, *everything)
        return current.advanced(seq, *changes) if changes else current

    def iter_vectors(
        self, space: str, batch: int = 65536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every live vector of a recorded space, in id order: (vector ids, matrix) batches.

        Vectors whose log rows are damaged are left out (and reported in `health`).
        """
        conn = self._read_conn()
        (ids, rows), vectors_log = self._pinned(
            conn, space, _recorded_dim(conn, space), lambda: metadata.live_vector_rows(conn, space)
        )
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            vectors, ok = vectors_log.read(rows[start : start + batch], part)
            self._note_damage(space, part[~ok])
            yield part[ok], vectors[ok]

    def offer_vectors(
        self, space: str, offer_ids: Iterable[int], ordinal: int = 0
    ) -> dict[int, np.ndarray]:
        """The `ordinal`-th vector of each offer that has one in `space` (0: its main photo, or
        its text), as stored; damaged rows are left out (and reported in `health`)."""
        conn = self._read_conn()
        dim = _recorded_dim(conn, space)
        wanted = list(dict.fromkeys(int(i) for i in offer_ids))
        found, vectors_log = self._pinned(
            conn, space, dim, lambda: metadata.offer_vector_rows(conn, space, wanted)
        )
        offers = [o for o in wanted if ordinal in found.get(o, {})]
        ids = np.array([vector_id(o, ordinal) for o in offers], dtype=np.int64)
        rows = np.array([found[o][ordinal] for o in offers], dtype=np.int64)
        vectors, ok = vectors_log.read(rows, ids)
        self._note_damage(space, ids[~ok])
        return {o: vectors[n] for n, o in enumerate(offers) if ok[n]}

    def spaces(self) -> dict[str, SpaceSpec]:
        """Every vector space the store records (name -> spec), also those not opened now."""
        return metadata.space_specs(self._read_conn())

    def get_offers(self, ids: Iterable[int]) -> dict[int, OfferRecord]:
        """Offer records by id (ids that do not exist are absent from the result)."""
        return metadata.get_offers(self._read_conn(), ids)

    def iter_offers(self, batch: int = 1000) -> Iterator[list[OfferRecord]]:
        """Every offer in id order, `batch` records at a time (each page one read; offers
        written meanwhile appear when their id is past the page read last)."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch!r}")
        conn, after = self._read_conn(), 0
        while ids := metadata.offer_ids_after(conn, after, batch):
            records = metadata.get_offers(conn, ids)
            yield [records[i] for i in ids if i in records]
            after = ids[-1]

    def offers_with_url(self, url: str) -> list[int]:
        """Ids of the offers at `url` (any shop)."""
        return metadata.offers_with_url(self._read_conn(), url)

    def price_history(self, offer_id: int) -> list[PricePoint]:
        """Every recorded (price, currency, availability, seen_at) of an offer, oldest first."""
        return metadata.price_history(self._read_conn(), offer_id)

    def count(self, space: str) -> int:
        """Vectors currently searchable in `space`."""
        return int(self._space(space).index.ntotal)


def _latencies(space: _Space, effort: SearchEffort | None):
    """Where a search's seconds go: full searches apart from those with an effort (grouping's)."""
    return space.latencies if effort is None else space.effort_latencies


def _hit_lists(scores: np.ndarray, ids: np.ndarray, k: int) -> list[list[Hit]]:
    """Best `k` offers per row of (scores, ids), each offer once, at its best vector's score.

    A few queries' hits are sorted out on Python lists, row by row: NumPy's cost a call is
    more than their whole work (a single query's hits: about 2x faster so)."""
    values = scores.tolist()
    if ids.size <= _VECTORISED:
        out = []
        for found, row in zip(values, ids.tolist(), strict=True):
            # a later vector of an offer, or a missing hit (-1 has every ordinal bit set)
            if any(v & _ORDINAL_MASK for v in row):
                out.append(_best_per_offer(found, row, k))
            else:  # only first vectors (ordinal 0): each id is another offer, best first
                pairs = zip(row[:k], found, strict=False)
                out.append([_hit((v >> ORDINAL_BITS, s, 0)) for v, s in pairs])
        return out
    if np.any(ids[ids >= 0] & _ORDINAL_MASK):
        return [_best_per_offer(s, i, k) for s, i in zip(values, ids.tolist(), strict=True)]
    offers = np.where(ids >= 0, ids >> ORDINAL_BITS, -1).tolist()
    return [
        [_hit((o, s, 0)) for o, s in zip(row, found, strict=True) if o >= 0][:k]
        for row, found in zip(offers, values, strict=True)
    ]


def _best_per_offer(scores: list[float], ids: list[int], k: int) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[int] = set()
    for score, vid in zip(scores, ids, strict=True):
        if vid < 0:
            continue
        offer_id = vid >> ORDINAL_BITS
        if offer_id in seen:
            continue
        seen.add(offer_id)
        hits.append(_hit((offer_id, score, vid & _ORDINAL_MASK)))
        if len(hits) == k:
            break
    return hits


def _exact_search(
    queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    if not len(ids):
        empty = np.full((len(queries), 1), -1, dtype=np.int64)
        return np.full(empty.shape, -np.inf, dtype=np.float32), empty
    scores, rows = faiss.knn(queries, vectors, min(k, len(ids)), metric=faiss.METRIC_INNER_PRODUCT)
    return scores, np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)


def _recorded_dim(conn: sqlite3.Connection, space: str) -> int:
    """The dimension of a space the database records (`UnknownSpaceError` for any other)."""
    specs = metadata.space_specs(conn)
    if space not in specs:
        raise UnknownSpaceError(f"unknown vector space {space!r}; have {sorted(specs)}")
    return specs[space].dim
