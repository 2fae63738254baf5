"""Search and reads: k-NN over a space (filtered, re-ranked, best vector per offer), offers,
price histories, offer and vector scans, all through per-thread read-only connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Iterator

import faiss
import numpy as np

from cumpair.index import ivf, metadata
from cumpair.index.records import (
    ORDINAL_BITS,
    Hit,
    OfferRecord,
    PricePoint,
    SearchFilters,
    SpaceSpec,
    StoreError,
    UnknownSpaceError,
    vector_id,
)
from cumpair.index.store.base import StoreBase, _Space

_EXACT_FILTERED = 20_000  # filtered IVF-PQ searches with fewer allowed vectors go exact


class Searching(StoreBase):
    """Search and reads (a part of `ProductStore`)."""

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
            # the depth was tuned for recall@recall_k: a smaller k still gets that many candidates
            wanted = max(fetch, params.recall_k) * params.k_factor if refine else fetch
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


def _recorded_dim(conn: sqlite3.Connection, space: str) -> int:
    """The dimension of a space the database records (`UnknownSpaceError` for any other)."""
    specs = metadata.space_specs(conn)
    if space not in specs:
        raise UnknownSpaceError(f"unknown vector space {space!r}; have {sorted(specs)}")
    return specs[space].dim
