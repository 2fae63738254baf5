"""Redis mode's last pipeline: hand each item, with its downloaded photos, to the indexer.

Crawl processes never open the store in this mode: the item goes onto the Redis stream that
`cumpair indexer` reads (`cumpair.indexer.stream.ItemStream`), which runs specs, embedding and
the upsert. The item's request is acknowledged in the frontier only after this pipeline
returns, so an item is either on the stream or its page will be crawled again; while Redis does
not answer the item waits here (retried with a growing pause), it is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self

import redis
from itemadapter import ItemAdapter
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from cumpair.indexer.stream import ItemStream

logger = logging.getLogger(__name__)

#: Longest pause between two attempts while Redis does not answer.
MAX_PAUSE_S = 10.0


class HandoffPipeline:
    """Puts each item on the stream CRAWL_REDIS_ITEMS_KEY at CRAWL_REDIS_URL."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.get("CRAWL_REDIS_URL"):
            raise NotConfigured("CRAWL_REDIS_URL is not set")
        self.stream = ItemStream.from_url(
            settings["CRAWL_REDIS_URL"], settings["CRAWL_REDIS_ITEMS_KEY"]
        )
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        fields = ItemAdapter(item).asdict()
        pause = 0.5
        while True:
            try:
                await asyncio.to_thread(self.stream.add, fields)
                break
            except redis.RedisError as exc:
                self.stats.inc_value("handoff/redis_errors")
                logger.warning("handoff: %s not on the stream yet (%s), again in %.1f s",
                               fields.get("url"), exc, pause)  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(MAX_PAUSE_S, pause * 2)
        self.stats.inc_value("handoff/items")
        return item


__all__ = ["HandoffPipeline"]
