"""Processes that share a store without Redis take turns at its one writer lock.

`TurnWriter` is what one crawl process writes through. If the store is free it holds it and
upserts directly; if another process holds it, every offer goes to the durable local spool
(`spool.OfferSpool`) and the writer tries for the store again every `retry_s`. Whoever holds the
store drains the spool every `drain_s`, when it gets the store, and before it lets go, so two
scrapyd jobs of different shops on one store both end with all their offers indexed. At close a
process still spooling waits up to `close_wait_s` for the store to drain its own offers; if the
holder keeps it longer, they stay spooled (logged, counted) until the holder's next drain or the
next writer's start. Never imports Scrapy.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumpair.index import (
    InvalidOfferError,
    ProductStore,
    SpaceSpec,
    StoreLockedError,
    StoreOptions,
    UpsertResult,
)
from cumpair.indexer.sightings import offer_with_sighting
from cumpair.indexer.spool import OfferSpool, default_spool_path
from cumpair.ingest.batches import store_batch
from cumpair.ingest.stages import regroup_store
from cumpair.search.products import ProductGroups, regroup_needed, stored_grouping_inputs

logger = logging.getLogger(__name__)

#: Regroup-then-drain rounds at close; what other processes spool after them they index
#: themselves, taking the store once this process let go.
CLOSE_ROUNDS = 3


@dataclass(frozen=True)
class TurnOptions:
    """How processes take turns (the crawl's INDEX_SPOOL_* settings).

    `spool` is the spool file (default ``<store>/spool/offers.sqlite``); a spooling process
    tries for the store every `retry_s`; the holder looks for spooled offers every `drain_s`
    and takes `drain_batch` at a time; a spooling process's close waits up to `close_wait_s`
    for the store.
    """

    spool: Path | None = None
    retry_s: float = 5.0
    drain_s: float = 5.0
    drain_batch: int = 64
    close_wait_s: float = 300.0

    def __post_init__(self) -> None:
        if min(self.retry_s, self.drain_s, self.close_wait_s) < 0 or self.drain_batch < 1:
            raise ValueError("spool intervals must not be negative, drain_batch at least 1")


class TurnWriter:
    """One process's writes into the store at `path`, taking turns with other processes.

    `source` names this process in the spool (e.g. ``scrapy:<pid>``). Thread-safe: the crawl's
    index threads call `write` at once. `counts` says what happened (``spooled``, ``drained``,
    ``left`` in the spool at close, ``turns`` the store was taken, ``waits`` it was found held,
    ``refused`` spooled offers the store refused as invalid, ``unreadable`` spool rows).
    """

    def __init__(
        self,
        path: str | Path,
        spaces: Mapping[str, SpaceSpec],
        store_options: StoreOptions | None = None,
        options: TurnOptions | None = None,
        *,
        source: str,
    ) -> None:
        self.path = Path(path)
        self.spaces = dict(spaces)
        self.store_options = store_options or StoreOptions()
        self.options = options = options or TurnOptions()
        self.source = source
        self.store: ProductStore | None = None
        self.groups: ProductGroups | None = None
        self.touched: set[int] = set()  # offers upserted while holding: what the regroup covers
        self.counts: Counter[str] = Counter()
        self._spool_path = options.spool or default_spool_path(self.path)
        self._spool: OfferSpool | None = None
        self._turn_lock = threading.Lock()  # taking the store
        self._state_lock = threading.Lock()  # counts, touched, the spool's connection
        self._drain_lock = threading.Lock()
        self._next_try = 0.0
        self._next_drain = 0.0
        self._take(timeout_s=0.0)

    @property
    def holding(self) -> bool:
        """Whether this process holds the store now."""
        return self.store is not None

    def write(
        self, item: Mapping[str, Any], references: Sequence[str], vectors: Mapping[str, Any]
    ) -> tuple[UpsertResult, Any] | None:
        """Upsert and group one offer (`item` with its photo `references` and vectors by
        space): the upsert's result and the offer's product membership; or spool it while
        another process holds the store (None). Durable either way when it returns; an offer
        the store refuses raises its `InvalidOfferError`."""
        outcome = self.write_many([(item, references, vectors)])[0]
        if isinstance(outcome, InvalidOfferError):
            raise outcome
        return outcome

    def write_many(
        self, entries: Sequence[tuple[Mapping[str, Any], Sequence[str], Mapping[str, Any]]]
    ) -> list[tuple[UpsertResult, Any] | InvalidOfferError | None]:
        """`write` for a batch of (item, photo references, vectors by space), upserted together
        (`store_batch`: one durable transaction a part, results as one at a time): each one's
        (upsert result, membership), its `InvalidOfferError` when the store refuses it (the
        others are stored), or None when it was spooled. Durable when it returns."""
        if self.store is None and time.monotonic() >= self._next_try:
            self._take(timeout_s=0.0)
        store, groups = self.store, self.groups
        if store is None or groups is None:
            spool = self._open_spool()
            for item, references, vectors in entries:
                spool.put(item, references, vectors, self.source)
            self._count("spooled", len(entries))
            return [None] * len(entries)
        keys = [(item["shop"], item["url"]) for item, _, _ in entries]
        before = stored_grouping_inputs(store, keys)
        out: list[tuple[UpsertResult, Any] | InvalidOfferError | None] = list(
            store_batch(store, groups, entries)
        )
        results = [o[0] for o in out if o is not None and not isinstance(o, InvalidOfferError)]
        after = store.get_offers(r.offer_id for r in results)
        for key, outcome in zip(keys, out, strict=True):
            if outcome is None or isinstance(outcome, InvalidOfferError):
                continue
            result = outcome[0]
            # An unchanged page keeps its product: only what changed is regrouped at close.
            if regroup_needed(result, before.get(key), after[result.offer_id]):
                self._note_touched(result.offer_id)
        store.maybe_flush()
        if time.monotonic() >= self._next_drain:
            self.drain()
        return out

    def drain(self) -> int:
        """Upsert what other processes spooled (this one must hold the store); each spooled
        offer is forgotten only once its upsert returned. Returns how many were taken; a
        thread finding another one draining returns 0 at once."""
        store, groups = self.store, self.groups
        if store is None or groups is None or not self._drain_lock.acquire(blocking=False):
            return 0
        try:
            self._next_drain = time.monotonic() + self.options.drain_s
            if not self._spool_path.exists():
                return 0
            counts = drain_spool(self._open_spool(), store, groups, self._note_touched,
                                 self.options.drain_batch)  # fmt: skip
        finally:
            self._drain_lock.release()
        for name, n in counts.items():
            self._count(name, n)
        return counts["drained"]

    def close(self) -> None:
        """Let go of the store: drain the spool, flush, regroup what this process touched,
        drain again what came meanwhile, close. A process still spooling waits up to
        `close_wait_s` for the store to do the same; failing that its offers stay spooled."""
        try:
            if self.store is None:
                self._take(timeout_s=self.options.close_wait_s)
            if self.store is None:
                self._leave_spooled()
                return
            self.drain()
            for _ in range(CLOSE_ROUNDS):  # offers spooled during a regroup are drained after it
                with self._state_lock:
                    touched, self.touched = self.touched, set()
                if not touched:
                    break
                self.store.flush()
                products, offers = regroup_store(self.store, self.groups, touched)
                logger.info("Regrouped %d offers into %d products", offers, products)
                self.drain()
        finally:
            self._release()

    def _take(self, timeout_s: float) -> None:
        """Try for the store (for `timeout_s`); on success drain the spool at once."""
        with self._turn_lock:
            if self.store is not None:
                return
            options = dataclasses.replace(self.store_options, lock_timeout_s=timeout_s)
            started = time.monotonic()
            try:
                store = ProductStore.open(self.path, self.spaces, options)
            except StoreLockedError as exc:
                self._next_try = time.monotonic() + self.options.retry_s
                if not self.counts["waits"]:
                    logger.warning("%s; offers go to the spool %s until it is free", exc,
                                   self._spool_path)  # fmt: skip
                self._count("waits")
                return
            if timeout_s:
                self._count("waited_s", round(time.monotonic() - started))
            self.groups = ProductGroups.open(self.path)
            self.store = store
            self._count("turns")
        self._next_drain = 0.0
        self.drain()

    def _leave_spooled(self) -> None:
        left = self._open_spool().count() if self._spool_path.exists() else 0
        self.counts["left"] = left
        if left:
            logger.warning(
                "The store %s stayed held by another process for %.0f s: %d offers wait in the "
                "spool %s for its holder (or the next crawl of this store) to index them",
                self.path, self.options.close_wait_s, left, self._spool_path,
            )  # fmt: skip

    def _release(self) -> None:
        try:
            if self.groups is not None:
                self.groups.close()
            if self.store is not None:
                self.store.close()
        finally:
            self.store = self.groups = None
            if self._spool is not None:
                self._spool.close()
                self._spool = None

    def _open_spool(self) -> OfferSpool:
        with self._state_lock:
            if self._spool is None:
                self._spool = OfferSpool(self._spool_path)
            return self._spool

    def _note_touched(self, offer_id: int) -> None:
        with self._state_lock:
            self.touched.add(offer_id)

    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            self.counts[name] += n


class BatchedWrites:
    """`TurnWriter.write_many` fed one offer at a time by many threads (the crawl's index
    workers): offers are gathered into a batch, written once `batch_size` are waiting, once
    the first has waited `max_wait_s`, or at `close`, on one writer thread. `submit` returns a
    future that resolves when the offer's batch is durable (or spooled), with (its `write`
    outcome, its share of the batch's CPU seconds), or raises its `InvalidOfferError` (the rest
    of its batch is stored) or what failed the whole batch. `on_start` runs first on the writer
    thread: per-thread settings such as FAISS's OpenMP thread count (an OpenMP ICV, which
    ``omp_set_num_threads`` sets for the calling thread only). Never imports Scrapy."""

    def __init__(
        self,
        writer: TurnWriter,
        batch_size: int = 32,
        max_wait_s: float = 0.1,
        *,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        if batch_size < 1 or max_wait_s < 0:
            raise ValueError("batch_size must be at least 1, max_wait_s not negative")
        self.writer = writer
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.batches = 0
        self._waiting: list[tuple[tuple[Any, Any, Any], Future, float]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._on_start = on_start
        self._thread = threading.Thread(target=self._run, name="cumpair-index-writes", daemon=True)
        self._thread.start()

    def submit(
        self, item: Mapping[str, Any], references: Sequence[str], vectors: Mapping[str, Any]
    ) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("BatchedWrites is closed")
            self._waiting.append(((item, references, vectors), future, time.monotonic()))
            self._cond.notify()
        return future

    def close(self) -> None:
        """Write what is waiting, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        failed: Exception | None = None
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception as exc:  # every offer hears of it, none waits for a dead thread
                logger.exception("index writer thread: on_start failed")
                failed = exc
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:
                    return  # closed and nothing left
                while len(self._waiting) < self.batch_size and not self._closed:
                    left = self._waiting[0][2] + self.max_wait_s - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._waiting[: self.batch_size]
                del self._waiting[: self.batch_size]
            if failed is not None:
                for _, future, _ in batch:
                    future.set_exception(failed)
                continue
            self._write(batch)

    def _write(self, batch: list[tuple[tuple[Any, Any, Any], Future, float]]) -> None:
        cpu = time.thread_time()
        try:
            outcomes = self.writer.write_many([entry for entry, _, _ in batch])
        except Exception as exc:  # the store failed the batch: every offer of it hears so
            for _, future, _ in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        share = (time.thread_time() - cpu) / len(batch)
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InvalidOfferError):
                future.set_exception(outcome)
            else:
                future.set_result((outcome, share))


def drain_spool(
    spool: OfferSpool,
    store: ProductStore,
    groups: ProductGroups,
    stored: Callable[[int], None],
    batch: int = 64,
) -> Counter[str]:
    """Upsert and group every offer in `spool` into `store` (the caller holds it), oldest
    first, each forgotten only once its upsert returned; `stored` gets each offer id (what a
    regroup must cover). Rows are forgotten a batch at a time, so a drain killed (or failed)
    after a batch's upsert leaves rows that are stored: the next drain finds their sighting in
    the store (`offer_with_sighting`) and forgets them without a second price point. Counts
    ``drained``, ``repeated`` (such rows), ``refused`` (offers the store refuses as invalid,
    let go as their own process would have) and ``unreadable`` (rows kept for a person)."""
    counts: Counter[str] = Counter()
    after = 0
    while rows := spool.take(batch, after):
        after = rows[-1].id
        ready = []
        for offer in rows:
            if offer.item is None:
                logger.error("spool %s: row %d skipped: %s", spool.path, offer.id, offer.error)
                counts["unreadable"] += 1
                continue
            if (offer_id := offer_with_sighting(store, offer.item)) is not None:
                stored(offer_id)  # the killed drain may not have regrouped it
                counts["repeated"] += 1
                spool.done([offer.id])
                continue
            ready.append(offer)
        # One durable transaction for the rows taken; each forgotten only once it returned.
        entries = [(offer.item, offer.references, offer.vectors) for offer in ready]
        for offer, outcome in zip(ready, store_batch(store, groups, entries), strict=True):
            if isinstance(outcome, InvalidOfferError):
                _refused(spool, offer, outcome, counts)
                continue
            stored(outcome[0].offer_id)
            counts["drained"] += 1
        spool.done([offer.id for offer in ready])
        store.maybe_flush()
    if counts["drained"]:
        logger.info("Indexed %d offers other crawl processes had spooled in %s",
                    counts["drained"], spool.path)  # fmt: skip
    return counts


def _refused(spool: OfferSpool, offer: Any, exc: InvalidOfferError, counts: Counter[str]) -> None:
    """A spooled offer the store refuses is let go, as its own process would have."""
    logger.error("spool %s: %s refused by the store: %s", spool.path, offer.item.get("url"), exc)
    counts["refused"] += 1
    spool.done([offer.id])


__all__ = ["BatchedWrites", "TurnOptions", "TurnWriter", "drain_spool"]
