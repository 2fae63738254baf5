"""The indexer's loop: take items off the stream, run the crawl's stages, acknowledge when stored.

Per batch: each item's photos read back from the crawl's IMAGES_STORE (`cumpair.stored_images`:
a path or an S3/GCS/FTP URI, on a thread pool), specs from its page text and photos
(`vision.VisionStage`: the crawl's specs stage, in worker processes when the cores allow), then
vectors for all of them together and their upserts in one durable transaction
(`batches.embed_and_store_many`, what `cumpair ingest` runs; results as one at a time). The
batch is durable when it returns (the store's contract), and only then are its entries
acknowledged (and its offer recorded for its
crawl run, so a page a killed crawler had to crawl again is not indexed twice): a kill at any
point leaves the entry pending, to be read again first on restart. A kill between a batch's
upsert and its acknowledgements redelivers indexed entries: the offer's price point
at exactly the item's crawl time (`sightings.offer_with_sighting`; the store records each
sighting at the item's ``crawled_at``) shows it was stored, and it is only acknowledged.
When the stream goes quiet, the products the new offers touched are regrouped and the store
flushed, as a crawl does when it ends, then the watches are checked (`cumpair.alerts`), now
that the new prices are stored. The offers waiting for a regroup are kept in Redis
(`ItemStream.awaiting_regroup`) until it is done, so a killed indexer's are regrouped by the
next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cumpair.alerts.run import after_update
from cumpair.embed import BatchEmbedder, EncoderSet
from cumpair.embed.reindex import spaces_for
from cumpair.index import ProductStore, StoreOptions
from cumpair.indexer.sightings import offer_with_sighting
from cumpair.indexer.spool import OfferSpool, default_spool_path
from cumpair.indexer.stream import Entry, ItemStream
from cumpair.indexer.turns import drain_spool
from cumpair.indexer.vision import Photos, VisionStage, default_vision_processes
from cumpair.ingest.batches import embed_and_store_many
from cumpair.ingest.stages import regroup_store
from cumpair.search.products import ProductGroups
from cumpair.stored_images import ImageStoreOptions, open_image_store, read_photos
from cumpair.vision.ocr_types import OcrOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexerOptions:
    """How the indexer works; the CLI builds one from its flags (`cli.options_from_args`).

    `images` is the crawl's IMAGES_STORE as this machine reaches it, a path or a URI (default
    ``<index>/images``), read with `image_store` (the crawl's AWS_*/GCS_PROJECT_ID/FTP_*
    settings); item photo paths are relative to it. `ocr` reads specs from up to
    `ocr_images` photos per offer (SPECS_MAX_IMAGES_PER_ITEM), `colors` dominant colours from the
    first, in `vision_processes` worker processes (0: on the `workers` threads that also read
    the photos; default from the cores, `vision.default_vision_processes`); `batch` entries
    are read and embedded together; `alerts` checks the watches after each regroup; `block_s`
    is the longest wait for new entries; the stream quiet for `regroup_idle_s` triggers the
    regroup and flush; `exit_when_idle_s` (None: run until stopped) ends a batch job. `spool`
    is the local spool of crawls without Redis sharing this store (default
    ``<index>/spool/offers.sqlite``, `cumpair.indexer.spool`): the indexer holds the store, so it
    indexes what they spooled, at start and whenever the stream is quiet.
    """

    images: str | None = None
    image_store: ImageStoreOptions = field(default_factory=ImageStoreOptions)
    ocr: bool = True
    ocr_options: OcrOptions = field(default_factory=lambda: OcrOptions(max_variants=2))
    ocr_images: int = 2
    colors: int = 3
    workers: int = 2
    vision_processes: int = field(default_factory=default_vision_processes)
    batch: int = 32
    alerts: bool = True
    block_s: float = 1.0
    regroup_idle_s: float = 2.0
    exit_when_idle_s: float | None = None
    spool: Path | None = None
    store: StoreOptions = field(default_factory=StoreOptions)

    def __post_init__(self) -> None:
        if min(self.workers, self.batch) < 1 or self.vision_processes < 0:
            raise ValueError("workers and batch must be at least 1, vision_processes >= 0")
        if self.block_s <= 0 or self.regroup_idle_s < 0:
            raise ValueError("block_s must be positive, regroup_idle_s not negative")


@dataclass
class IndexerReport:
    """What a run did (also logged as it goes)."""

    new: int = 0
    updated: int = 0
    rejected: Counter = field(default_factory=Counter)
    from_spool: int = 0  # offers crawls without Redis had spooled for the store's holder
    repeated: int = 0  # entries of an offer already indexed in their crawl run
    image_errors: int = 0
    regroups: int = 0
    alerts_queued: int = 0  # price-drop notices the checks after the regroups queued
    seconds: float = 0.0

    @property
    def stored(self) -> int:
        return self.new + self.updated

    def summary(self) -> str:
        rejected = ", ".join(f"{n} x {why}" for why, n in sorted(self.rejected.items()))
        return (
            f"indexed {self.stored} offers in {self.seconds:.1f} s ({self.new} new, "
            f"{self.updated} updated, {self.repeated} repeats skipped, "
            f"{self.from_spool} from the local spool); "
            f"rejected: {rejected or 'none'}; "
            f"photos without a vector: {self.image_errors}; regroups: {self.regroups}; "
            f"alerts queued: {self.alerts_queued}"
        )


class Indexer:
    """The one process that writes the store at `index_dir` from `stream`."""

    def __init__(
        self,
        index_dir: str | Path,
        stream: ItemStream,
        encoders: EncoderSet,
        options: IndexerOptions = IndexerOptions(),
    ) -> None:
        self.index_dir = Path(index_dir)
        self.stream = stream
        self.encoders = encoders
        self.options = options
        self.images = open_image_store(
            options.images or self.index_dir / "images", options.image_store
        )
        self.report = IndexerReport()

    def run(self, stop: threading.Event | None = None) -> IndexerReport:
        """Index until `stop` is set (or the stream stays empty `exit_when_idle_s`); raises
        `StoreError` when the store cannot be opened (another writer holds it)."""
        stop = stop or threading.Event()
        started = time.monotonic()
        options = self.options
        self.stream.ensure_group()
        touched = self.stream.awaiting_regroup()  # left by an indexer killed before its regroup
        if touched:
            logger.info("indexer: %d offers indexed before wait for their regroup", len(touched))
        store = ProductStore.open(self.index_dir, spaces_for(self.encoders), options.store)
        try:
            with (
                ProductGroups.open(self.index_dir) as groups,
                BatchEmbedder(self.encoders, batch_size=options.batch, max_wait=0.05) as embedder,
                ThreadPoolExecutor(options.workers, "cumpair-indexer") as pool,
                VisionStage(
                    processes=options.vision_processes,
                    threads=options.workers,
                    ocr=options.ocr,
                    ocr_images=options.ocr_images,
                    ocr_options=options.ocr_options,
                    colors=options.colors,
                ) as vision,
            ):
                touched |= self._drain_spool(store, groups)
                quiet_since = time.monotonic()
                while not stop.is_set():
                    entries = self.stream.read(options.batch, options.block_s)
                    if entries:
                        touched |= self._index_batch(store, groups, embedder, pool, vision, entries)
                        store.maybe_flush()
                        quiet_since = time.monotonic()
                        continue
                    idle = time.monotonic() - quiet_since
                    if idle >= options.regroup_idle_s:
                        touched |= self._drain_spool(store, groups)
                        if touched:
                            self._regroup(store, groups, touched)
                            touched = set()
                    if options.exit_when_idle_s is not None and idle >= options.exit_when_idle_s:
                        break
                if touched:
                    self._regroup(store, groups, touched)
        finally:
            store.close()
        self.report.seconds = time.monotonic() - started
        logger.info("indexer: %s", self.report.summary())
        return self.report

    def _index_batch(
        self,
        store: ProductStore,
        groups: ProductGroups,
        embedder: BatchEmbedder,
        pool: ThreadPoolExecutor,
        vision: VisionStage,
        entries: list[Entry],
    ) -> set[int]:
        """Specs, vectors and the batch's upsert; each entry acknowledged once the batch's
        upsert returned (an offer already indexed in its crawl run only acknowledged). The same
        offer twice in one crawl run within the batch (a page a killed crawler had in hand,
        crawled again) is indexed once: the later entries are acknowledged with the first.
        If the first is rejected as invalid, its later copies are not repeats of a stored
        sighting: they are indexed in a next round (each round takes one per offer, so the
        rounds end)."""
        good: list[Entry] = []
        again: list[Entry] = []
        firsts: set[tuple[str, str]] = set()
        for entry in entries:
            if entry.item is None:
                self._reject(entry, entry.error or "not an item")
            elif self.stream.already_indexed(entry) or (
                entry.redelivered
                and entry.item
                and offer_with_sighting(store, entry.item) is not None
            ):
                self.report.repeated += 1
                self.stream.ack([entry.id])
            elif entry.run is not None and (entry.run, entry.offer_key) in firsts:
                again.append(entry)
            else:
                good.append(entry)
                if entry.run is not None:
                    firsts.add((entry.run, entry.offer_key))
        prepared = list(pool.map(self._read_photos, [entry.item for entry in good]))
        outcomes = vision.specs([Photos(offer.item, offer.sources) for offer in prepared])
        for offer, specs in zip(prepared, outcomes, strict=True):
            offer.item["specs"], offer.item["spec_conflicts"] = specs.specs, specs.conflicts
            for error in specs.errors:
                logger.warning("indexer: %s: photo not read: %s", offer.item["url"], error)
        photos = {ref: data for offer in prepared for ref, data in offer.photos.items()}
        batch = [(offer.item, offer.references) for offer in prepared]
        touched: set[int] = set()
        rejected: list[Entry] = []
        stored = embed_and_store_many(store, groups, _StoredPhotos(embedder, photos), batch)
        for entry, offer, outcome in zip(good, prepared, stored, strict=True):
            self.report.image_errors += offer.unread + len(outcome.vectors.image_errors)
            if outcome.result is None:
                self._reject(entry, f"invalid offer: {outcome.error}")
                rejected.append(entry)
                continue
            self.stream.indexed(entry, outcome.result.offer_id)
            touched.add(outcome.result.offer_id)
            if outcome.result.created:
                self.report.new += 1
            else:
                self.report.updated += 1
        refused = {entry.id for entry in rejected}
        kept = {(entry.run, entry.offer_key) for entry in good if entry.id not in refused}
        repeats = [entry for entry in again if (entry.run, entry.offer_key) in kept]
        self.report.repeated += len(repeats)
        self.stream.ack([entry.id for entry in repeats])
        retry = [entry for entry in again if (entry.run, entry.offer_key) not in kept]
        if retry:
            touched |= self._index_batch(store, groups, embedder, pool, vision, retry)
        return touched

    def _read_photos(self, item: dict[str, Any]) -> _Prepared:
        """Pool thread: the item's photos read from the image store; one that cannot be read
        is left out of the specs and the vectors, and logged."""
        images = item.get("images") or []
        paths = [image["path"] for image in images]
        references = [self.images.reference(path) for path in paths]
        read, unread = read_photos(self.images, paths)
        for position, exc in unread.items():
            logger.warning("indexer: %s: photo %s not read: %s", item["url"], paths[position], exc)
        return _Prepared(
            item,
            references,
            sources=[(images[position].get("url"), data) for position, data in read],
            photos={references[position]: data for position, data in read},
            unread=len(unread),
        )

    def _drain_spool(self, store: ProductStore, groups: ProductGroups) -> set[int]:
        """Index what crawls without Redis spooled for this store's holder (`turns`); each
        offer waits for its regroup in Redis like the stream's."""
        path = self.options.spool or default_spool_path(self.index_dir)
        if not path.exists():
            return set()
        stored: set[int] = set()

        def note(offer_id: int) -> None:
            self.stream.await_regroup(offer_id)
            stored.add(offer_id)

        with OfferSpool(path) as spool:
            counts = drain_spool(spool, store, groups, note)
        self.report.from_spool += counts["drained"]
        return stored

    def _reject(self, entry: Entry, reason: str) -> None:
        logger.warning("indexer: entry %s kept aside in %s: %s", entry.id, self.stream.dead_key,
                       reason)  # fmt: skip
        self.report.rejected[reason.split(":", 1)[0]] += 1
        self.stream.reject(entry, reason)

    def _regroup(self, store: ProductStore, groups: ProductGroups, touched: set[int]) -> None:
        store.flush()
        products, offers = regroup_store(store, groups, touched)
        self.stream.regrouped(touched)
        self.report.regroups += 1
        logger.info("indexer: regrouped %d offers into %d products", offers, products)
        if self.options.alerts:  # the new prices are stored and grouped: watches see them now
            run = after_update(self.index_dir)
            if run is not None:
                self.report.alerts_queued += run.queued


@dataclass(frozen=True)
class _Prepared:
    """An item with its photos read: the references its record keeps for them, the readable
    ones as (source URL, bytes) for the specs and by reference for the embedder, and how many
    could not be read."""

    item: dict[str, Any]
    references: list[str]
    sources: list[tuple[str | None, bytes]]
    photos: dict[str, bytes]
    unread: int


class _StoredPhotos:
    """The embedder as `embed_and_store_many` sees it: that loop submits each offer's photo
    references (what its record keeps); the model gets the photos' bytes, read from the image
    store beforehand, and never a path it might not reach."""

    def __init__(self, embedder: BatchEmbedder, photos: dict[str, bytes]) -> None:
        self.embedder = embedder
        self.photos = photos

    def submit(self, references: list[str], text: str | None = None, *, key: str | None = None):
        images = [self.photos[ref] for ref in references if ref in self.photos]
        return self.embedder.submit(images, text, key=key)

    def flush(self, timeout: float | None = None) -> None:
        self.embedder.flush(timeout)


__all__ = ["Indexer", "IndexerOptions", "IndexerReport"]
