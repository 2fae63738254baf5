"""Redis mode's last pipeline: hand each item, with its downloaded photos, to the indexer.

Crawl processes never open the store in this mode: the item goes onto the Redis stream that
`cumpair indexer` reads (`cumpair.indexer.stream.ItemStream`), which runs specs, embedding and
the upsert. The item's request is acknowledged in the frontier only after this pipeline
returns, so an item is either on the stream or its page will be crawled again (each entry names
its frontier's crawl run, which lets the indexer skip that second copy); while Redis does not
answer the item waits here (retried with a growing pause), it is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self

import redis
from itemadapter import ItemAdapter
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from cumpair.indexer.stream import ItemStream
from cumpair_scraper.frontier import run_key

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
        self.queue_key = settings["SCHEDULER_QUEUE_KEY"]
        self.stats = crawler.stats
        self.run: str | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def spider_opened(self, spider: Spider) -> None:
        """The crawl run id, which the scheduler (opened before) made or found."""
        run = self.stream.client.get(run_key(self.queue_key % {"spider": spider.name}))
        self.run = run.decode() if run else None

    async def process_item(self, item: Any) -> Any:
        fields = ItemAdapter(item).asdict()
        pause = 0.5
        while True:
            try:
                await asyncio.to_thread(self.stream.add, fields, self.run)
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
