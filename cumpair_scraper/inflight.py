"""Bound the pages a crawl holds between the downloader and the end of the item pipelines.

Scrapy keeps each downloaded page (and the asyncio tasks working on its output) until every
item it gave has left the item pipelines, and stops fetching new pages only when those pages'
bodies pass SCRAPER_SLOT_MAX_ACTIVE_SIZE (5 MB). Small product pages (a few KB) let thousands
of them queue in front of the slow OCR and embedding stages: a 10^4-product crawl's resident
set grew with the queue. `PagesInFlightLimit`, a downloader middleware, makes a page request
wait while PAGES_IN_FLIGHT_MAX pages of its spider are in Scrapy's scraper; waiting requests
fill the downloader's CONCURRENT_REQUESTS, and a full downloader is where Scrapy stops taking
requests from its scheduler, so what is queued stays in the scheduler (a request each).
Requests the pipelines make themselves (photos, robots.txt: no spider callback) never wait,
so the pages in flight can always finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http.request import NO_CALLBACK

# How long a waiting request sleeps before it counts again when no item has left the pipelines
# meanwhile (an item's signal wakes it sooner; its page leaves the scraper just after).
_RECHECK_S = 0.5


class PagesInFlightLimit:
    """Page requests wait while PAGES_IN_FLIGHT_MAX pages are in the scraper (0: off).

    The count is Scrapy's own scraper slot (pages queued for or in their callback, and those
    whose items are still in the pipelines), one per crawler: a shop's limit is its own.
    At most CONCURRENT_REQUESTS more pages arrive (those already downloading). Stats:
    `inflight/requests_held` (requests that waited) and `inflight/held_s` (seconds waited).
    """

    def __init__(self, crawler: Crawler, limit: int) -> None:
        self.crawler = crawler
        self.limit = limit
        self._left: asyncio.Event | None = None  # made on first use, in the reactor's loop
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(self._item_left, signal=signal)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        limit = crawler.settings.getint("PAGES_IN_FLIGHT_MAX")
        if limit < 0:
            raise ValueError(f"PAGES_IN_FLIGHT_MAX must be 0 or more, not {limit}")
        if not limit:
            raise NotConfigured("PAGES_IN_FLIGHT_MAX is 0")
        return cls(crawler, limit)

    def in_flight(self) -> int:
        """Pages of this crawler now in its scraper."""
        engine = self.crawler.engine
        slot = engine.scraper.slot if engine is not None else None
        return len(slot.queue) + len(slot.active) if slot is not None else 0

    async def process_request(self, request: Request) -> None:
        if request.callback is NO_CALLBACK or self.in_flight() < self.limit:
            return
        loop = asyncio.get_running_loop()
        if self._left is None:
            self._left = asyncio.Event()
        started = loop.time()
        while self.in_flight() >= self.limit:
            self._left.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._left.wait(), _RECHECK_S)
        stats = self.crawler.stats
        stats.inc_value("inflight/requests_held")
        stats.inc_value("inflight/held_s", loop.time() - started)

    def _item_left(self) -> None:
        if self._left is not None:
            self._left.set()
