"""Embed crawled products in batches on a background thread, with bounded memory.

The crawl's pipeline calls `BatchEmbedder.submit` from a worker thread for each product; model
threads take full batches (or partial ones after `max_wait` seconds), decode and resize their
photos, and run the model. `submit` blocks while `max_pending` inputs wait, so memory stays flat
however long the crawl. A broken image only loses its own vector: it is reported in
`ItemVectors.image_errors`, never raised.

The layout is made for encoders loaded single-threaded (as the crawl and `cumpair reindex` load
them): one model thread per core, each preparing a batch and then running it, batches side by
side. On a small machine that beats one batch split over every core (bench/bench_embed.py: two
single-threaded calls at once run ~5% faster than one two-threaded call), and preparing on the
model's own thread beats preparing in the submitters' threads by another 2-4%: those only add
threads that take turns on the same cores. With encoders that use every core (one model
thread), preparation and the model alternate.

With a `VisionCache`, an input whose bytes (an image file's, a text's UTF-8) were embedded
before by the same encoder (name and version) is answered from the cache in `submit` and
never queued; `stats()` counts `cache_hits` and `cache_misses`, and `images`/`texts` count
only the inputs a model really ran on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field

import numpy as np

from cumpair.embed.base import EmbedError, ImageInput, calls_filling_cores, default_threads
from cumpair.embed.registry import EncoderSet
from cumpair.vision.cache import VisionCache, content_digest
from cumpair.vision.images import ImageError, encoded_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemVectors:
    """The vectors of one submitted product.

    `image_vectors[k]` belongs to the submitted image at `image_positions[k]`; images that could
    not be embedded are absent and explained in `image_errors` (position -> reason). The main
    image vector is the first image that embedded (shops list their main photo first); the
    others are kept so that a photo of any of them finds the product.
    """

    image_vectors: np.ndarray
    image_positions: tuple[int, ...]
    image_errors: dict[int, str]
    text_vector: np.ndarray | None

    @property
    def main_image_vector(self) -> np.ndarray | None:
        return self.image_vectors[0] if len(self.image_positions) else None


class BatchEmbedderClosed(EmbedError):
    """`submit` after `close`."""


@dataclass
class _Item:
    future: Future
    key: str | None
    n_images: int
    remaining: int
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    text_vector: np.ndarray | None = None
    failed: bool = False


@dataclass
class _Job:
    item: _Item
    position: int  # image position, or -1 for the text
    payload: object  # the image as submitted, its prepared pixels once taken; or the text
    queued_at: float
    digest: str | None = None  # the content's cache key, when a cache is used

    @property
    def cache_kind(self) -> str:
        """The cache entry kind of this job's vector."""
        return "text-vector" if self.position < 0 else "image-vector"


class BatchEmbedder:
    """Batches image and text embedding for the crawl; thread-safe; use as a context manager.

    `batch_size`: inputs per model call. `max_wait`: seconds a partial batch may wait for more
    inputs. `max_pending`: inputs waiting for the model before `submit` blocks (default 2
    batches); memory holds at most these plus the batches the models are running. `workers`:
    model threads (default: enough of the encoders' calls to fill the cores, see
    `default_workers`). `cache`: a `VisionCache` answering inputs embedded before; the
    embedder closes it in `close()`.
    """

    def __init__(
        self,
        encoders: EncoderSet,
        *,
        batch_size: int = 32,
        max_wait: float = 1.0,
        max_pending: int | None = None,
        workers: int | None = None,
        cache: VisionCache | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.encoders = encoders
        self.cache = cache
        image, text = encoders.image, encoders.text
        self._versions = {
            "image-vector": (f"{image.name}@{image.version}", image.dim),
            "text-vector": (f"{text.name}@{text.version}", text.dim),
        }
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_pending = max(max_pending or 2 * batch_size, batch_size)
        self._images: collections.deque[_Job] = collections.deque()
        self._texts: collections.deque[_Job] = collections.deque()
        self._outstanding: set[Future] = set()
        self._cond = threading.Condition()
        self._flushing = 0
        self._closed = False
        self._counts = collections.Counter()
        self._workers = [
            threading.Thread(target=self._run, name=f"cumpair-embed-{n}", daemon=True)
            for n in range(workers or default_workers(encoders))
        ]
        for worker in self._workers:
            worker.start()

    # -- caller side ---------------------------------------------------------------------

    def submit(
        self,
        images: Sequence[ImageInput] = (),
        text: str | None = None,
        *,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Future[ItemVectors]:
        """Queue one product's images and text; the future resolves to its `ItemVectors`.

        Blocks while the embedder is full (call it off the reactor thread); the images are
        decoded later, on a model thread. `key` (e.g. the product URL) only labels log
        messages. Raises `TimeoutError` if there is no room within `timeout` seconds.
        """
        if isinstance(images, str | bytes):
            raise TypeError("images must be a sequence of images, not a single one")
        text = text if text else None
        item = _Item(future=Future(), key=key, n_images=len(images), remaining=0)
        image_jobs = [
            job for pos, image in enumerate(images) if (job := self._job(item, pos, image))
        ]
        text_job = self._job(item, -1, text) if text is not None else None
        item.remaining = len(image_jobs) + (text_job is not None)
        if item.remaining == 0:
            item.future.set_result(_result(item, self.encoders.image.dim))
            return item.future
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._closed and self._pending() + item.remaining > self.max_pending:
                if self._pending() == 0:
                    break  # an item larger than max_pending goes through alone
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"embedder still full after {timeout} s")
                self._cond.wait(left)
            if self._closed:
                raise BatchEmbedderClosed("BatchEmbedder is closed")
            now = time.monotonic()
            for job in image_jobs:
                job.queued_at = now
            self._images.extend(image_jobs)
            if text_job is not None:
                text_job.queued_at = now
                self._texts.append(text_job)
            self._outstanding.add(item.future)
            self._cond.notify_all()
        return item.future

    def _job(self, item: _Item, position: int, payload: object) -> _Job | None:
        """The job for one input, or None when the cache answered it (recorded in `item`)."""
        job = _Job(item, position, payload, 0.0)
        if self.cache is None:
            return job
        kind = job.cache_kind
        try:
            data = payload if position < 0 else encoded_bytes(payload)  # type: ignore[arg-type]
        except (ImageError, OSError, TypeError):
            return job  # the model thread reports the error, as without a cache
        if data is None:  # decoded pixels: no bytes to key
            return job
        job.digest = content_digest(data)  # type: ignore[arg-type]
        if position >= 0:
            job.payload = data  # read once: the model thread decodes these bytes
        version, dim = self._versions[kind]
        vector = self.cache.get_vector(kind, job.digest, version, dim)
        with self._cond:
            self._counts["cache_misses" if vector is None else "cache_hits"] += 1
        if vector is None:
            return job
        if position < 0:
            item.text_vector = vector
        else:
            item.vectors[position] = vector
        return None

    def flush(self, timeout: float | None = None) -> None:
        """Embed everything submitted so far now, without waiting for full batches."""
        with self._cond:
            pending = set(self._outstanding)
            self._flushing += 1
            self._cond.notify_all()
        try:
            wait_futures(pending, timeout=timeout)
        finally:
            with self._cond:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the model threads, close the cache. Idempotent; later `submit` calls
        raise."""
        with self._cond:
            if self._closed:
                return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.cache is not None:
            self.cache.close()

    def stats(self) -> dict[str, float]:
        """Counters for crawl stats: images, image_errors, texts, batches, batch_errors,
        cache_hits, cache_misses, model_s (wall seconds of preparing and model calls, summed
        over the model threads) and model_cpu_s (those threads' CPU seconds meanwhile; a model
        running on threads of its own, EMBED_THREADS > 1, adds theirs beside it)."""
        with self._cond:
            return dict(self._counts)

    def __enter__(self) -> BatchEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- model thread ------------------------------------------------------------------

    def _pending(self) -> int:
        return len(self._images) + len(self._texts)

    def _due(self, queue: collections.deque[_Job], now: float) -> bool:
        if not queue:
            return False
        return (
            len(queue) >= self.batch_size
            or self._flushing > 0
            or self._closed
            or now - queue[0].queued_at >= self.max_wait
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    images_due = self._due(self._images, now)
                    texts_due = self._due(self._texts, now)
                    if images_due or texts_due:
                        break
                    if self._closed and not self._pending():
                        return
                    oldest = [q[0].queued_at for q in (self._images, self._texts) if q]
                    self._cond.wait(max(0.0, min(oldest) + self.max_wait - now) if oldest else None)
                image_jobs = _take(self._images, self.batch_size) if images_due else []
                text_jobs = _take(self._texts, self.batch_size) if texts_due else []
                # Room for blocked submitters now, not after the model call: the queue fills
                # again while this batch is prepared and run.
                self._cond.notify_all()
            started, cpu = time.perf_counter(), time.thread_time()
            if image_jobs:
                image_jobs = self._prepare(image_jobs)
            if image_jobs:
                self._embed(image_jobs, self._embed_images)
            if text_jobs:
                self._embed(text_jobs, self._embed_texts)
            with self._cond:
                self._counts["model_s"] += time.perf_counter() - started
                self._counts["model_cpu_s"] += time.thread_time() - cpu

    def _prepare(self, jobs: list[_Job]) -> list[_Job]:
        """Decode and preprocess each job's image in place; the images that fail are recorded
        as their item's errors and left out of the returned batch."""
        ready, failed = [], []
        for job in jobs:
            try:
                job.payload = self.encoders.image.prepare_image(job.payload)
            except (ValueError, OSError, TypeError) as exc:  # ImageError is a ValueError
                logger.warning(
                    "image %d of %s not embedded: %s", job.position, job.item.key or "item", exc
                )
                failed.append((job, None, f"{type(exc).__name__}: {exc}"))
            else:
                ready.append(job)
        if failed:
            self._settle(failed)
        return ready

    def _embed_images(self, jobs: list[_Job]) -> np.ndarray:
        return self.encoders.image.embed_prepared(np.stack([job.payload for job in jobs]))

    def _embed_texts(self, jobs: list[_Job]) -> np.ndarray:
        return self.encoders.text.encode_texts([job.payload for job in jobs])

    def _embed(self, jobs: list[_Job], run) -> None:
        try:
            vectors = run(jobs)
        except Exception as exc:  # a model failure fails this batch's items, not the crawl
            logger.exception("embedding a batch of %d inputs failed", len(jobs))
            with self._cond:
                self._counts["batch_errors"] += 1
                failed = {id(job.item): job.item for job in jobs if not job.item.failed}
                for item in failed.values():
                    item.failed = True
                    self._outstanding.discard(item.future)
            for item in failed.values():  # outside the lock: callbacks run here
                item.future.set_exception(exc)
            return
        with self._cond:
            self._counts["batches"] += 1
        self._settle([(job, vector, None) for job, vector in zip(jobs, vectors, strict=True)])

    def _settle(self, outcomes: list[tuple[_Job, np.ndarray | None, str | None]]) -> None:
        """Record each job's vector or error (caching the vector); resolve the items that have
        nothing left."""
        if self.cache is not None:
            for job, vector, _ in outcomes:
                if vector is not None and job.digest is not None:
                    kind = job.cache_kind
                    self.cache.put_vector(kind, job.digest, self._versions[kind][0], vector)
        finished: list[_Item] = []
        with self._cond:
            for job, vector, error in outcomes:
                item = job.item
                if error is not None:
                    item.errors[job.position] = error
                    self._counts["image_errors"] += 1
                elif job.position < 0:
                    item.text_vector = vector
                    self._counts["texts"] += 1
                else:
                    item.vectors[job.position] = vector
                    self._counts["images"] += 1
                item.remaining -= 1
                if item.remaining == 0 and not item.failed:
                    self._outstanding.discard(item.future)
                    finished.append(item)
        for item in finished:  # outside the lock: callbacks run here
            item.future.set_result(_result(item, self.encoders.image.dim))


def default_workers(encoders: EncoderSet) -> int:
    """Model threads that fill the cores with the image encoder's calls."""
    return calls_filling_cores(getattr(encoders.image, "threads", None) or default_threads())


def _take(queue: collections.deque[_Job], n: int) -> list[_Job]:
    return [queue.popleft() for _ in range(min(n, len(queue)))]


def _result(item: _Item, dim: int) -> ItemVectors:
    positions = tuple(sorted(item.vectors))
    rows = [item.vectors[p] for p in positions]
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return ItemVectors(
        image_vectors=vectors,
        image_positions=positions,
        image_errors=dict(item.errors),
        text_vector=item.text_vector,
    )
