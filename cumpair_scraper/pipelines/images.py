"""Product image downloads into the crawl's data directory (Scrapy's ImagesPipeline).

The only change to Scrapy's pipeline is where files go: unless IMAGES_STORE is set, images land
in `<INDEX_DATA_DIR>/images`, beside the index that refers to them. Later pipelines find the
files with `images_store_path()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from scrapy.crawler import Crawler
from scrapy.pipelines.images import ImagesPipeline
from scrapy.settings import BaseSettings


def images_store_path(settings: BaseSettings) -> Path:
    """The directory image results' `path` entries are relative to."""
    return Path(settings.get("IMAGES_STORE") or Path(settings["INDEX_DATA_DIR"]) / "images")


class ProductImagesPipeline(ImagesPipeline):
    """ImagesPipeline storing under INDEX_DATA_DIR by default."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        return cls(str(images_store_path(crawler.settings)), crawler=crawler)
