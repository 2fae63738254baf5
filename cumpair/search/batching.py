"""Concurrent k-NN searches joined into batched store searches (`cumpair serve` under load).

A lone search runs at once, exactly as without batching, so single-query latency is unchanged.
Searches that arrive while one of the same (space, k, filters, effort) is running wait for it, then
run together as one batched search (one FAISS call and one re-rank for them all), the way a
database commits a group of transactions: the more callers, the bigger the batches. Nothing
waits on a timer. A batch that fails (one caller's bad query) is retried one query at a time,
so each caller gets its own result or its own error.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cumpair.index.records import Hit, SearchEffort, SearchFilters

DEFAULT_MAX_BATCH = 64  # queries joined into one store search at most


@dataclass
class _Waiting:
    """A caller parked behind a running search: its queries, and the answer once there."""

    queries: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    batch: list[_Waiting] | None = None  # set when this caller is to run the next batch
    result: list[list[Hit]] | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """What batching did: store searches run, queries answered, queries that shared a batch."""

    searches: int = 0
    queries: int = 0
    batched_queries: int = 0


class BatchedSearches:
    """A store whose `search` joins concurrent callers; every other attribute is the store's.

    `max_batch` bounds the queries of one batched search (at least 1: 1 turns batching off).
    """

    def __init__(self, store: Any, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
        self.store = store
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._lock = threading.Lock()
        self._running: set[tuple] = set()  # keys with a search in flight
        self._waiting: dict[tuple, list[_Waiting]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def search(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
        effort: SearchEffort | None = None,
    ) -> list[list[Hit]]:
        """`ProductStore.search`, joined with the searches of other threads when they overlap
        (only with those of the same effort: a bounded search answers no full-effort caller)."""
        key = (space, k, filters, effort)
        matrix = np.asarray(queries)
        matrix = matrix[None] if matrix.ndim == 1 else matrix
        with self._lock:
            lead = key not in self._running or self.max_batch == 1
            if lead:
                self._running.add(key)
            else:
                waiting = _Waiting(matrix)
                self._waiting.setdefault(key, []).append(waiting)
        if lead:
            try:
                results = self.store.search(space, queries, k, filters, effort)
                self._count(len(matrix), 1)
                return results
            finally:
                self._hand_on(key)
        waiting.done.wait()
        if waiting.batch is not None:  # this caller runs the next batch, its own among them
            try:
                self._run(key, waiting.batch)
            finally:
                self._hand_on(key)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

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

    def _hand_on(self, key: tuple) -> None:
        """The search of `key` finished: wake the callers that waited, the first of them to
        run the batch of them all; or mark `key` idle."""
        with self._lock:
            waiting = self._waiting.pop(key, [])
            if not waiting:
                self._running.discard(key)
                return
            batch, rest = waiting[: self.max_batch], waiting[self.max_batch :]
            if rest:
                self._waiting[key] = rest
        batch[0].batch = batch
        batch[0].done.set()

    def _run(self, key: tuple, batch: list[_Waiting]) -> None:
        """One store search for the whole batch; each caller's rows of the answer are its own."""
        space, k, filters, effort = key
        try:
            try:
                matrix = np.concatenate([w.queries for w in batch])
                results = self.store.search(space, matrix, k, filters, effort)
            except Exception:  # one bad query must not fail the others: one at a time instead
                for w in batch:
                    try:
                        w.result = self.store.search(space, w.queries, k, filters, effort)
                    except Exception as exc:
                        w.error = exc
            else:
                start = 0
                for w in batch:
                    w.result, start = (
                        results[start : start + len(w.queries)],
                        start + len(w.queries),
                    )
            self._count(sum(len(w.queries) for w in batch), len(batch))
        finally:
            for w in batch[1:]:
                if w.result is None and w.error is None:
                    w.error = RuntimeError("the batched search was interrupted")
                w.done.set()

    def _count(self, queries: int, callers: int) -> None:
        with self._lock:
            self.stats.searches += 1
            self.stats.queries += queries
            if callers > 1:
                self.stats.batched_queries += queries
