"""Product image downloads into the crawl's data directory (Scrapy's ImagesPipeline).

Two changes to Scrapy's pipeline: unless IMAGES_STORE is set, images land in
`<INDEX_DATA_DIR>/images`, beside the index that refers to them (later pipelines find the files
with `images_store_path()`); and image requests carry their own size limits
(IMAGES_DOWNLOAD_MAXSIZE / IMAGES_DOWNLOAD_WARNSIZE, as Scrapy's `download_maxsize` /
`download_warnsize` meta) instead of the page limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.pipelines.images import ImagesPipeline
from scrapy.pipelines.media import MediaPipeline
from scrapy.settings import BaseSettings


def images_store_path(settings: BaseSettings) -> Path:
    """The directory image results' `path` entries are relative to."""
    return Path(settings.get("IMAGES_STORE") or Path(settings["INDEX_DATA_DIR"]) / "images")


class ProductImagesPipeline(ImagesPipeline):
    """ImagesPipeline storing under INDEX_DATA_DIR by default, with image size limits."""

    def __init__(self, store_uri: str, *, crawler: Crawler) -> None:
        super().__init__(store_uri, crawler=crawler)
        self.download_maxsize = crawler.settings.getint("IMAGES_DOWNLOAD_MAXSIZE")
        self.download_warnsize = crawler.settings.getint("IMAGES_DOWNLOAD_WARNSIZE")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        return cls(str(images_store_path(crawler.settings)), crawler=crawler)

    def get_media_requests(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[Request]:
        requests = super().get_media_requests(item, info)
        for request in requests:
            request.meta.setdefault("download_maxsize", self.download_maxsize)
            request.meta.setdefault("download_warnsize", self.download_warnsize)
        return requests
