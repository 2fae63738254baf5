"""Fill `specs` and `spec_conflicts` of each item from its page text and downloaded images.

Runs after the images pipeline and reads its photos back through `cumpair.stored_images` (the
store IMAGES_STORE names, files by default). OCR and colour analysis are CPU-bound, so they run in a
bounded thread pool off the reactor thread; a broken image, a missing file or a slow read is
logged and counted (`specs/image_errors`) and the item goes on without that image. Images
read before (the same bytes, the same OCR chain) come from the vision cache
(`pipelines/vision_cache.py`): `specs/ocr_runs` counts the images OCR really ran on,
`specs/ocr_cached` those answered by the cache, `specs/ocr_gated` those the text gate
(SPECS_TEXT_GATE: RapidOCR's detector finds no text line, as on most product photos) spared,
`stage/ocr_s` the seconds spent reading and `stage/ocr_cpu_s` the CPU seconds of the threads
that read (Tesseract, the text gate and colours run there; RapidOCR's fallback runs part of its
model on ONNX Runtime's own threads, which that leaves out), which bench/bench_crawl.py sets
beside the stage measured alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Self

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from twisted.internet import defer

from cumpair.ingest.stages import page_specs_of
from cumpair.stored_images import image_store_from_settings
from cumpair.vision.brands import shipped_brands
from cumpair.vision.cache import VisionCacheError
from cumpair.vision.image_specs import ImageSpecs, read_image_specs
from cumpair.vision.images import ImageError
from cumpair.vision.merge import merge_specs
from cumpair.vision.ocr import OcrUnavailableError
from cumpair.vision.ocr_types import OcrOptions
from cumpair.vision.specs import Specs, name_brand
from cumpair.vision.text_gate import GateOptions
from cumpair_scraper.pipelines.vision_cache import vision_cache_from_settings

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SPECS_ENABLED": True,
    "SPECS_OCR_ENGINES": ["tesseract", "rapidocr"],
    "SPECS_OCR_MAX_VARIANTS": 2,
    "SPECS_MIN_CONFIDENCE": 0.80,
    "SPECS_MAX_WORKERS": 2,
    "SPECS_MAX_IMAGES_PER_ITEM": 2,
    "SPECS_DOMINANT_COLORS": 3,
    "SPECS_IMAGE_TIMEOUT": 60.0,
    "SPECS_TEXT_GATE": True,
    "SPECS_TEXT_GATE_MIN_ASPECT": 2.0,
    "SPECS_TEXT_GATE_MAX_HEIGHT": 0.25,
}


class SpecsPipeline:
    """Extract specs from title/description and images; page facts win over image facts."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("SPECS_ENABLED", DEFAULTS["SPECS_ENABLED"]):
            raise NotConfigured("SPECS_ENABLED is off")
        self.crawler = crawler
        self.stats = crawler.stats
        self.images = image_store_from_settings(settings)
        self.options = OcrOptions(
            engines=tuple(settings.getlist("SPECS_OCR_ENGINES", DEFAULTS["SPECS_OCR_ENGINES"])),
            min_confidence=settings.getfloat(
                "SPECS_MIN_CONFIDENCE", DEFAULTS["SPECS_MIN_CONFIDENCE"]
            ),
            max_variants=settings.getint(
                "SPECS_OCR_MAX_VARIANTS", DEFAULTS["SPECS_OCR_MAX_VARIANTS"]
            ),
        )
        self.max_images = settings.getint(
            "SPECS_MAX_IMAGES_PER_ITEM", DEFAULTS["SPECS_MAX_IMAGES_PER_ITEM"]
        )
        self.colors = settings.getint("SPECS_DOMINANT_COLORS", DEFAULTS["SPECS_DOMINANT_COLORS"])
        self.timeout = settings.getfloat("SPECS_IMAGE_TIMEOUT", DEFAULTS["SPECS_IMAGE_TIMEOUT"])
        self.text_gate = (
            GateOptions(
                min_aspect=settings.getfloat(
                    "SPECS_TEXT_GATE_MIN_ASPECT", DEFAULTS["SPECS_TEXT_GATE_MIN_ASPECT"]
                ),
                max_height=settings.getfloat(
                    "SPECS_TEXT_GATE_MAX_HEIGHT", DEFAULTS["SPECS_TEXT_GATE_MAX_HEIGHT"]
                ),
            )
            if settings.getbool("SPECS_TEXT_GATE", DEFAULTS["SPECS_TEXT_GATE"])
            else None
        )
        workers = settings.getint("SPECS_MAX_WORKERS", DEFAULTS["SPECS_MAX_WORKERS"])
        if workers < 1:
            raise ValueError("SPECS_MAX_WORKERS must be at least 1")
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cumpair-specs")
        self.cache = vision_cache_from_settings(settings)
        self.brands = shipped_brands()  # grows with the brands this crawl's items state
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def spider_opened(self) -> None:
        logger.info("specs: OCR engines %s, %d worker(s)", ", ".join(self.options.engine_order),
                    self.workers)  # fmt: skip

    def spider_closed(self) -> None:
        # Reads still running finish on their own (each is bounded by SPECS_IMAGE_TIMEOUT);
        # waiting here would block the reactor thread.
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.cache is not None:
            self.cache.close()

    async def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        page = page_specs_of(adapter)
        # Brands seen in items' structured data name later items that print theirs only in
        # the title.
        if isinstance(adapter.get("brand"), str):
            self.brands.add(adapter["brand"])
        text = "\n".join(str(adapter.get(k) or "") for k in ("title", "description"))
        name_brand(page, text, self.brands)
        images: list[tuple[str | None, Specs]] = []
        for index, result in enumerate((adapter.get("images") or [])[: self.max_images]):
            specs = await self._read(result, colors=self.colors if index == 0 else 0)
            if specs is not None:
                images.append((result.get("url"), specs))
        merged, conflicts = merge_specs(page, images)
        adapter["specs"] = merged
        adapter["spec_conflicts"] = [c.to_dict() for c in conflicts]
        self.stats.inc_value("specs/items")
        if conflicts:
            self.stats.inc_value("specs/conflicts", len(conflicts))
        return item

    async def _read(self, result: dict[str, Any], colors: int) -> Specs | None:
        """Read one downloaded image in the pool; None (logged, counted) when it fails."""
        if not result.get("path"):
            return self._image_failed(result, "no downloaded file")
        work = partial(self._timed_read, str(result["path"]), colors)
        try:
            outcome, seconds, cpu = await self._in_pool(work)
        except (TimeoutError, defer.TimeoutError):  # before OSError: TimeoutError is one
            return self._image_failed(result, f"no answer within {self.timeout:g} s")
        except (ImageError, OSError, OcrUnavailableError, VisionCacheError) as exc:
            return self._image_failed(result, f"{type(exc).__name__}: {exc}")
        self.stats.inc_value("specs/images_read")
        self.stats.inc_value("stage/ocr_s", seconds)
        self.stats.inc_value("stage/ocr_cpu_s", cpu)
        if outcome.ocr_cached:
            self.stats.inc_value("specs/ocr_cached")
        elif outcome.gated:
            self.stats.inc_value("specs/ocr_gated")
        else:
            self.stats.inc_value("specs/ocr_runs")
            self.stats.inc_value(f"specs/ocr_engine/{outcome.ocr.engine}")
        return outcome.specs

    def _timed_read(self, path: str, colors: int) -> tuple[ImageSpecs, float, float]:
        """Pool thread: one stored image's specs, and the wall and this thread's CPU seconds
        reading it took (summed over the pool's threads in `stage/ocr_s`, `stage/ocr_cpu_s`)."""
        data = self.images.read(path)  # a StoredImageError is an OSError: the image is skipped
        started, cpu = time.perf_counter(), time.thread_time()
        outcome = read_image_specs(
            data, ocr_options=self.options, colors=colors, cache=self.cache,
            text_gate=self.text_gate,
        )  # fmt: skip
        return outcome, time.perf_counter() - started, time.thread_time() - cpu

    async def _in_pool(self, work: partial) -> Any:
        """Run `work` in the bounded pool and await it without blocking the reactor.

        On the asyncio reactor (the project's) this is a plain asyncio future; on another
        Twisted reactor the future is bridged to a Deferred, which Scrapy can await.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return await self._as_deferred(self.executor.submit(work))
        # Wait for a free worker first, so the timeout measures the work, not the queue.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            future: Future = self.executor.submit(work)
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)

    def _as_deferred(self, future: Future) -> defer.Deferred:
        from twisted.internet import reactor

        deferred: defer.Deferred = defer.Deferred(lambda _: future.cancel())

        def fire(done: Future) -> None:
            if deferred.called:
                return
            if done.cancelled():
                deferred.cancel()
            elif done.exception() is not None:
                deferred.errback(done.exception())
            else:
                deferred.callback(done.result())

        future.add_done_callback(lambda done: reactor.callFromThread(fire, done))
        deferred.addTimeout(self.timeout, reactor)
        return deferred

    def _image_failed(self, result: dict[str, Any], reason: str) -> None:
        logger.warning("specs: skipped image %s (%s)", result.get("url"), reason)
        self.stats.inc_value("specs/image_errors")
        return None
