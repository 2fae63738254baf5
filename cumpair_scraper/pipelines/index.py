"""Embed each offer and put it in the product index, without stalling the crawl.

Items are embedded in batches by `cumpair.embed.BatchEmbedder` and written to the
`cumpair.index.ProductStore` under INDEX_DATA_DIR from a bounded thread pool, so the reactor
never runs model or disk work. One store writer is made per process and shared by every
spider in it (`scrapy crawlall` runs all shops in one process). The store admits one writer
process at a time: processes sharing it (two scrapyd jobs) take turns through
`cumpair.indexer.turns.TurnWriter`, the one waiting spooling its offers durably for the holder.
Photos are read back through the store the images pipeline wrote them to
(`cumpair.stored_images`: a path or an S3/GCS/FTP URI in IMAGES_STORE). A photo that cannot be
read or embedded loses its vector, never the item. Offers are upserted in batches (one durable
transaction each, `cumpair.indexer.turns.BatchedWrites`) on one writer thread; an item is passed
on only once its batch is durable. `stage/index_cpu_s` sums the writer thread's CPU seconds
upserting and grouping offers (SQLite and FAISS run on it), each item its share of its batch,
`stage/close_cpu_s` the last spider's closing the store (regroup and flush), `stage/embed_cpu_s`
the embedding threads' CPU seconds (decoding photos and model calls, `BatchEmbedder`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings

from cumpair.embed import BatchEmbedder, EncoderSet, load_encoders, product_text
from cumpair.embed.reindex import spaces_for
from cumpair.faiss_threads import SETTING as FAISS_THREADS_SETTING
from cumpair.faiss_threads import search_threads, set_faiss_threads
from cumpair.index import StoreOptions
from cumpair.indexer.turns import BatchedWrites, TurnOptions, TurnWriter
from cumpair.ingest.stages import space_vectors
from cumpair.stored_images import image_store_from_settings, read_photos
from cumpair_scraper.pipelines.vision_cache import vision_cache_from_settings

logger = logging.getLogger(__name__)


def encoders_from_settings(settings: BaseSettings) -> EncoderSet:
    """The encoders the settings ask for (loaded once per process by `load_encoders`)."""
    return load_encoders(
        settings.get("EMBED_ENCODERS"),
        clip_model=settings.get("EMBED_CLIP_MODEL"),
        clip_pretrained=settings.get("EMBED_CLIP_PRETRAINED"),
        backend=settings.get("EMBED_BACKEND"),
        threads=settings.getint("EMBED_THREADS") or None,
        model_dir=settings.get("EMBED_MODEL_DIR") or Path(settings["INDEX_DATA_DIR"]) / "models",
    )


# Store settings before they were named after StoreOptions' fields; a run still setting one
# is told the new name instead of having it ignored.
_RENAMED = {
    "INDEX_FLUSH_INTERVAL": "CUMPAIR_INDEX_FLUSH_INTERVAL_S",
    "INDEX_BACKUPS_KEEP": "CUMPAIR_INDEX_BACKUPS_KEEP",
    "INDEX_UPGRADE_THRESHOLD": "CUMPAIR_INDEX_UPGRADE_THRESHOLD",
    "INDEX_RECALL_TARGET": "CUMPAIR_INDEX_RECALL_TARGET",
    "INDEX_DUPLICATE_THRESHOLD": "CUMPAIR_INDEX_DUPLICATE_THRESHOLD",
}


def store_options_from_settings(settings: BaseSettings) -> StoreOptions:
    """Every `StoreOptions` field from its ``CUMPAIR_INDEX_<FIELD>`` setting (see settings.py)."""
    for old, new in _RENAMED.items():
        if settings.get(old) is not None:
            raise ValueError(f"setting {old} is now {new} (StoreOptions field names)")
    return StoreOptions.from_settings(settings)


def turn_options_from_settings(settings: BaseSettings) -> TurnOptions:
    """How crawl processes sharing the store take turns (INDEX_SPOOL_*, see settings.py)."""
    spool = settings.get("INDEX_SPOOL_PATH")
    return TurnOptions(
        spool=Path(spool) if spool else None,
        retry_s=settings.getfloat("INDEX_SPOOL_RETRY_S"),
        drain_s=settings.getfloat("INDEX_SPOOL_DRAIN_S"),
        close_wait_s=settings.getfloat("INDEX_SPOOL_CLOSE_WAIT_S"),
    )


@dataclass
class _Shared:
    """The process's writer of one store and its batching, shared by its spiders (`scrapy
    crawlall`)."""

    writer: TurnWriter
    writes: BatchedWrites
    users: int


_writers: dict[Path, _Shared] = {}
_writers_lock = threading.Lock()


def _acquire_writer(path: Path, encoders: EncoderSet, settings: BaseSettings) -> BatchedWrites:
    with _writers_lock:
        shared = _writers.get(path)
        if shared is None:
            writer = TurnWriter(
                path,
                spaces_for(encoders),
                store_options_from_settings(settings),
                turn_options_from_settings(settings),
                source=f"scrapy@{socket.gethostname()}:{os.getpid()}",
            )
            threads = search_threads(settings.get(FAISS_THREADS_SETTING), 1)
            writes = BatchedWrites(
                writer,
                batch_size=settings.getint("INDEX_WRITE_BATCH_SIZE"),
                max_wait_s=settings.getfloat("INDEX_WRITE_MAX_WAIT_S"),
                # FAISS's thread count holds for the thread that sets it: the writer's searches
                # (near-duplicates, grouping) would otherwise run, and spin, on a full team.
                on_start=lambda: set_faiss_threads(threads),
            )
            shared = _writers[path] = _Shared(writer, writes, 0)
        shared.users += 1
        return shared.writes


def _release_writer(path: Path) -> TurnWriter | None:
    """The last spider out closes the writer: it drains what other processes spooled, regroups
    the products its offers touched (merging products that late offers joined), flushes and
    lets go of the store (`TurnWriter.close`). Returns the closed writer, None for the others."""
    with _writers_lock:
        shared = _writers[path]
        shared.users -= 1
        if shared.users:
            return None
        del _writers[path]
    try:
        shared.writes.close()  # what is still gathered is written first
    finally:
        shared.writer.close()
    return shared.writer


class IndexPipeline:
    """Last pipeline: vectors for the offer's images and text, then an upsert into the store.

    Settings: INDEX_ENABLED, INDEX_DATA_DIR, INDEX_WORKERS (threads doing embedding and
    writes), INDEX_SPOOL_* (taking turns at the store with other processes), IMAGES_STORE and
    Scrapy's AWS_*/GCS_PROJECT_ID/FTP_* (where the photos are read from, `ImageStoreOptions`),
    CUMPAIR_INDEX_* (the store's options), EMBED_ENCODERS (auto/offline/clip),
    EMBED_CLIP_MODEL, EMBED_CLIP_PRETRAINED, EMBED_BACKEND, EMBED_THREADS, EMBED_MODEL_DIR,
    EMBED_BATCH_SIZE, EMBED_MAX_WAIT, INDEX_WRITE_BATCH_SIZE and INDEX_WRITE_MAX_WAIT_S (offers
    upserted together, `BatchedWrites`), CUMPAIR_SEARCH_THREADS (FAISS's threads: one offer is
    searched at a time, so 1 unless set; `cumpair.faiss_threads`).
    """

    def __init__(self, crawler: Crawler):
        settings = crawler.settings
        if not settings.getbool("INDEX_ENABLED"):
            raise NotConfigured("INDEX_ENABLED is off")
        self.crawler = crawler
        self.stats = crawler.stats
        self._stats_lock = threading.Lock()
        self.path = Path(settings["INDEX_DATA_DIR"]).resolve()
        set_faiss_threads(search_threads(settings.get(FAISS_THREADS_SETTING), 1))
        self.images = image_store_from_settings(settings)
        self.executor = ThreadPoolExecutor(settings.getint("INDEX_WORKERS"), "cumpair-index")
        self.encoders = encoders_from_settings(settings)
        logger.info("Indexing into %s with %s", self.path, self.encoders.describe())
        self.embedder = BatchEmbedder(
            self.encoders,
            batch_size=settings.getint("EMBED_BATCH_SIZE"),
            max_wait=settings.getfloat("EMBED_MAX_WAIT"),
            cache=vision_cache_from_settings(settings),
        )
        self.writes = _acquire_writer(self.path, self.encoders, settings)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._index, item)
        return item

    def _index(self, item: Any) -> None:
        """Worker thread: embed (batched with other items) and upsert one offer."""
        adapter = ItemAdapter(item)
        paths = [image["path"] for image in adapter.get("images") or []]
        read, unread = read_photos(self.images, paths)
        for position, exc in unread.items():
            self._count("index/image_errors")
            logger.warning("%s: image %s not read: %s", adapter.get("url"), paths[position], exc)
        vectors = self.embedder.submit(
            [data for _, data in read], product_text(adapter), key=adapter.get("url")
        ).result()
        for position, reason in vectors.image_errors.items():
            self._count("index/image_errors")
            logger.warning("%s: image %s has no vector: %s", adapter.get("url"),
                           paths[read[position][0]], reason)  # fmt: skip
        references = [self.images.reference(path) for path in paths]
        # Upserted with the other offers waiting (BatchedWrites): the item is passed on only
        # once its batch is durable; an offer the store refuses raises here, alone.
        future = self.writes.submit(adapter.asdict(), references, space_vectors(vectors))
        written, cpu_s = future.result()
        self._count("stage/index_cpu_s", cpu_s)
        if written is None:  # another process holds the store: it or we index it later
            self._count("index/spooled")
            return
        result, membership = written
        self._count(f"index/upsert/{result.matched_by}")
        self._count(f"index/grouped_by/{membership.rule}")
        if result.price_changed:
            self._count("index/price_changed")

    def _count(self, key: str, value: float = 1) -> None:
        """Worker thread: add to a stat. Scrapy's stats collector is not thread-safe (its
        `inc_value` reads, then writes the key), and INDEX_WORKERS threads add to the same keys:
        unlocked, one could lose another's count."""
        with self._stats_lock:
            self.stats.inc_value(key, value)

    def spider_closed(self) -> None:
        """Embed what is still queued, release the store (the last spider flushes and regroups)."""
        try:
            self.embedder.close()
            self.executor.shutdown(wait=True)
            embed_stats = self.embedder.stats()
            for name, value in embed_stats.items():
                self.stats.set_value(f"index/embed/{name}", value)
            self.stats.set_value("stage/embed_s", embed_stats.get("model_s", 0.0))
            self.stats.set_value("stage/embed_cpu_s", embed_stats.get("model_cpu_s", 0.0))
        finally:
            cpu = time.thread_time()
            writer = _release_writer(self.path)
            if writer is not None:
                self.stats.set_value("stage/close_cpu_s", time.thread_time() - cpu)
                for name, value in writer.counts.items():
                    self.stats.set_value(f"index/spool/{name}", value)
