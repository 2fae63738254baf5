"""Redis mode, a Scrapy add-on: `scrapy crawl <shop> -s CRAWL_REDIS_URL=redis://...` on any
number of machines makes them crawl together, feeding one indexer.

With CRAWL_REDIS_URL set, the add-on swaps in scrapy-redis's scheduler and dupefilter (through
`frontier.py`'s reliable queue: one shared frontier per shop, no request lost when a crawler
dies), adds the per-host pace shared through Redis (`middlewares/shared_throttle.py`), and
replaces the specs and index pipelines with the hand-off to `cumpair indexer`
(`pipelines/handoff.py`): crawlers never open the store. The crawl's price-alerts pass is turned
off too: at spider close the indexer may not have stored the new prices yet, so the indexer
checks the watches after each of its regroups instead. Unset (the default), nothing changes:
one process crawls and indexes, and JOBDIR resumes it.
"""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings

SHARED_THROTTLE = "cumpair_scraper.middlewares.shared_throttle.SharedThrottleMiddleware"
# Closest to the download handler: a request takes its turn last (after robots.txt and the
# size limits let it through), and 429/503 answers are seen before the retry middleware.
SHARED_THROTTLE_ORDER = 950
HANDOFF = "cumpair_scraper.pipelines.handoff.HandoffPipeline"
HANDOFF_ORDER = 400
PRICE_ALERTS = "cumpair_scraper.alerts.PriceAlerts"
#: The stages `cumpair indexer` runs instead of the crawl.
INDEXER_STAGES = (
    "cumpair_scraper.pipelines.specs.SpecsPipeline",
    "cumpair_scraper.pipelines.index.IndexPipeline",
)


class RedisMode:
    """Applies the Redis-mode settings when CRAWL_REDIS_URL is set (listed in ADDONS)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        url = crawler.settings.get("CRAWL_REDIS_URL")
        if not url:
            raise NotConfigured  # silent: the single-process crawl
        return cls(url)

    def update_settings(self, settings: BaseSettings) -> None:
        if settings.get("JOBDIR"):
            raise ValueError(
                "JOBDIR resumes a single-process crawl; with CRAWL_REDIS_URL the frontier "
                "already lives in Redis (unset one of them)"
            )
        prefix = settings["CRAWL_REDIS_PREFIX"]
        scrapy_redis = {
            "REDIS_URL": self.url,
            "SCHEDULER": "cumpair_scraper.frontier.ReliableScheduler",
            "SCHEDULER_QUEUE_CLASS": "cumpair_scraper.frontier.ReliablePriorityQueue",
            "SCHEDULER_QUEUE_KEY": f"{prefix}:%(spider)s:requests",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_DUPEFILTER_KEY": f"{prefix}:%(spider)s:dupefilter",
            # Kept between runs and crawlers: the frontier clears itself when the crawl is done.
            "SCHEDULER_PERSIST": True,
            # The host's turns in Redis pace every crawler; the shared throttle waits out this
            # process's slot at its longest jitter (nothing may wait after the turn), so a
            # jitter would only space requests at 1.5x AutoThrottle's delay instead of 1x.
            "DOWNLOAD_DELAY_JITTER": 0.0,
        }
        for name, value in scrapy_redis.items():
            settings.set(name, value, priority="addon")
        settings["DOWNLOADER_MIDDLEWARES"][SHARED_THROTTLE] = SHARED_THROTTLE_ORDER
        pipelines = settings["ITEM_PIPELINES"]
        for stage in INDEXER_STAGES:
            pipelines[stage] = None
        pipelines[HANDOFF] = HANDOFF_ORDER
        settings["EXTENSIONS"][PRICE_ALERTS] = None  # the indexer's pass, after prices are stored


__all__ = ["RedisMode"]
