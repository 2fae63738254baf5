"""Product image downloads into the crawl's data directory (Scrapy's ImagesPipeline).

Three changes to Scrapy's pipeline: unless IMAGES_STORE is set, images land in
`<INDEX_DATA_DIR>/images`, beside the index that refers to them (later pipelines read them
back through `cumpair.stored_images`, from the same `image_store_uri()`); image requests carry
their own size limits (IMAGES_DOWNLOAD_MAXSIZE / IMAGES_DOWNLOAD_WARNSIZE, as Scrapy's
`download_maxsize` / `download_warnsize` meta) instead of the page limits; and a stored image is
used without a request while its response is fresh by its own Cache-Control max-age or Expires
(IMAGES_HTTP_FRESHNESS, RFC 9111 as a private cache: `file_status_count/fresh`), as an image
CDN's versioned URLs are meant to be; past that, or without freshness (no-cache), a stored image
older than IMAGES_EXPIRES days is asked for conditionally (If-None-Match / If-Modified-Since
with the validators its last download returned, IMAGES_REVALIDATE): a 304 keeps the stored
file, restarts its expiry clock, takes the freshness the 304 states and gives the item the same
path and checksum (`file_status_count/revalidated`) so the vision cache answers for it. Younger
files are used without any request (Scrapy's own expiry, `file_status_count/uptodate`);
IMAGES_EXPIRES_HOURS, when set, gives that expiry in hours instead of Scrapy's whole days, for
recrawls within a day.
`stage/download_s` sums the images' download latency, `stage/images_cpu_s` the reactor thread's
CPU seconds storing them (decoding, converting, writing; local stores only: a remote store's
upload lets other reactor work run meanwhile).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Self

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.pipelines.files import FileInfo, FSFilesStore
from scrapy.pipelines.images import ImagesPipeline
from scrapy.pipelines.media import MediaPipeline
from scrapy.utils.defer import ensure_awaitable

from cumpair.stored_images import image_store_uri
from cumpair_scraper.pipelines.image_validators import (
    FILE_NAME,
    ImageValidators,
    Validators,
    fresh_until,
)


class ProductImagesPipeline(ImagesPipeline):
    """ImagesPipeline storing under INDEX_DATA_DIR by default, with image size limits,
    conditional re-downloads and an expiry in hours."""

    def __init__(self, store_uri: str, *, crawler: Crawler) -> None:
        super().__init__(store_uri, crawler=crawler)
        self.download_maxsize = crawler.settings.getint("IMAGES_DOWNLOAD_MAXSIZE")
        self.download_warnsize = crawler.settings.getint("IMAGES_DOWNLOAD_WARNSIZE")
        hours = crawler.settings.get("IMAGES_EXPIRES_HOURS")
        if hours is not None:
            hours = float(hours)
            if hours < 0:
                raise ValueError(f"IMAGES_EXPIRES_HOURS must not be negative, got {hours:g}")
            self.expires = hours / 24  # Scrapy compares a stored file's age in days with it
        self.validators: ImageValidators | None = None
        self._local = isinstance(self.store, FSFilesStore)
        self.http_freshness = crawler.settings.getbool("IMAGES_HTTP_FRESHNESS", True)
        self.revalidate = crawler.settings.getbool("IMAGES_REVALIDATE", True)
        if (self.revalidate or self.http_freshness) and self._local:
            self.validators = ImageValidators(Path(self.store.basedir) / FILE_NAME)
            crawler.signals.connect(self._close_validators, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        # A URI string, not a Path: a Path would turn s3://bucket/prefix into s3:/bucket/prefix.
        return cls(image_store_uri(crawler.settings), crawler=crawler)

    def get_media_requests(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[Request]:
        requests = super().get_media_requests(item, info)
        for request in requests:
            request.meta.setdefault("download_maxsize", self.download_maxsize)
            request.meta.setdefault("download_warnsize", self.download_warnsize)
            saved = self._stored_validators(request, info)
            if saved is not None and self.revalidate:
                for name, value in saved.headers().items():
                    request.headers.setdefault(name, value)
        return requests

    async def media_to_download(
        self, request: Request, info: MediaPipeline.SpiderInfo, *, item: Any = None
    ) -> FileInfo | None:
        """The stored file, without a request, while its response is fresh; else Scrapy's
        expiry decides (a request, conditional when validators are stored)."""
        if self.http_freshness:
            saved = self._stored_validators(request, info)
            if saved is not None and saved.fresh(time.time()):
                path = self.file_path(request, info=info, item=item)
                return self._stored_result(request, path, info, "fresh")
        return await ensure_awaitable(super().media_to_download(request, info, item=item))

    async def media_downloaded(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, *,
        item: Any = None,
    ) -> FileInfo:  # fmt: skip
        latency = response.meta.get("download_latency")
        if latency is not None:
            self.crawler.stats.inc_value("stage/download_s", latency)
        cpu = time.thread_time()
        try:
            return await self._store_downloaded(response, request, info, item)
        finally:
            if self._local:
                self.crawler.stats.inc_value("stage/images_cpu_s", time.thread_time() - cpu)

    async def _store_downloaded(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, item: Any
    ) -> FileInfo:
        saved = self._stored_validators(request, info)
        if response.status == 304 and saved is not None:
            result = self._revalidated(request, info, item)
            # The 304's own headers update the stored response's (RFC 9111 4.3.4).
            self.validators.put(result["path"], Validators(  # type: ignore[union-attr]
                _header(response, b"ETag") or saved.etag,
                _header(response, b"Last-Modified") or saved.last_modified,
                self._fresh_until(response),
            ))  # fmt: skip
            return result
        result = await super().media_downloaded(response, request, info, item=item)
        if self.validators is not None:
            self.validators.put(result["path"], Validators(
                _header(response, b"ETag") if self.revalidate else None,
                _header(response, b"Last-Modified") if self.revalidate else None,
                self._fresh_until(response),
            ))  # fmt: skip
        return result

    def _fresh_until(self, response: Response) -> float | None:
        # Kept whether or not IMAGES_HTTP_FRESHNESS uses it: a crawl run without it must not
        # cost the next one, with it, a request for every photo.
        return fresh_until(lambda name: _field(response, name.encode()), time.time(),
                           response.meta.get("download_latency") or 0.0)  # fmt: skip

    def _stored_validators(
        self, request: Request, info: MediaPipeline.SpiderInfo
    ) -> Validators | None:
        """The validators of the file stored for `request`, when both exist."""
        if self.validators is None:
            return None
        path = self.file_path(request, info=info)
        if not self._stored_file(path).is_file():
            return None  # nothing to keep on a 304: ask for the bytes
        return self.validators.get(path)

    def _stored_file(self, path: str) -> Path:
        return Path(self.store.basedir, *path.split("/"))  # type: ignore[attr-defined]

    def _revalidated(self, request: Request, info: MediaPipeline.SpiderInfo, item: Any) -> FileInfo:
        """304: the stored file is still the image; its expiry clock starts again."""
        path = self.file_path(request, info=info, item=item)
        os.utime(self._stored_file(path))
        return self._stored_result(request, path, info, "revalidated")

    def _stored_result(
        self, request: Request, path: str, info: MediaPipeline.SpiderInfo, counted: str
    ) -> FileInfo:
        """The file stored at `path` as `request`'s result, as Scrapy reports an up-to-date
        one, counted as ``file_status_count/<counted>``."""
        stat = self.store.stat_file(path, info)
        self.inc_stats(counted)
        return {"url": request.url, "path": path, "checksum": stat.get("checksum"),
                "status": "uptodate"}  # fmt: skip

    def _close_validators(self) -> None:
        if self.validators is not None:
            self.validators.close()


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def _field(response: Response, name: bytes) -> str | None:
    """A field's value over all its lines, as one list (RFC 9110 5.3): a Cache-Control sent on
    two lines is both (`_header` is only the last line's)."""
    values = [value.decode("latin-1") for value in response.headers.getlist(name) if value]
    return ", ".join(values) if values else None
