"""One request pace per host across every crawler of it: a slot and a back-off kept in Redis.

In Redis mode several processes on several machines crawl the same shops, and Scrapy's download
slots, AutoThrottle and the Retry-After back-off are each per process. This middleware asks Redis
for the host's turn before every request (pages, robots.txt, photos): a request goes only once
CRAWL_REDIS_HOST_INTERVAL after the previous turn given to that host *by any crawler*, and not
before a back-off deadline another crawler set (a turn that a new deadline overtakes is taken
again after it). Answers on RETRY_BACKOFF_HTTP_CODES set that deadline (the server's
Retry-After, else the retry middleware's doubling back-off), so one crawler's 429 holds all of
them; so does a challenge page's back-off (the `HOST_BACKED_OFF` signal of `challenge.py`).
Times come from the Redis server's clock, shared by all. A turn is taken only when the
request can go at once: no more requests per host hold a turn here than the download slot
runs side by side (CONCURRENT_REQUESTS_PER_DOMAIN), so none waits in the slot after its turn.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Self

import redis.asyncio as aioredis
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached

from cumpair_scraper.middlewares.challenge import HOST_BACKED_OFF
from cumpair_scraper.middlewares.retry_after import backoff_seconds

# KEYS: the host's hash; ARGV: interval, ttl. Reserves the host's next turn (after the last
# reserved one and after any hold) and returns the seconds until it.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local turn = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'next') or '0'),
                      tonumber(redis.call('HGET', KEYS[1], 'hold') or '0'))
redis.call('HSET', KEYS[1], 'next', tostring(turn + tonumber(ARGV[1])))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return tostring(turn - now)
"""

# KEYS: the host's hash. Seconds the host is still held ('0' when it is not).
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return tostring(math.max(0, tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') - now))
"""

# KEYS: the host's hash; ARGV: seconds to hold the host, ttl. Never shortens a longer hold.
_HOLD = """
local t = redis.call('TIME')
local hold = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
if hold > tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') then
  redis.call('HSET', KEYS[1], 'hold', tostring(hold))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: Seconds a host's keys outlive its last use.
KEY_TTL_S = 600
#: Request meta key: the request holds one of its host's local places.
_HOLDS_PLACE = "cumpair_shared_throttle_place"


class SharedThrottleMiddleware:
    """Per-host pace and back-off shared through Redis (only in Redis mode).

    Settings: CRAWL_REDIS_URL (off when empty), CRAWL_REDIS_PREFIX, CRAWL_REDIS_HOST_INTERVAL
    (seconds between two requests to one host from all crawlers together), and the retry
    middleware's RETRY_BACKOFF_HTTP_CODES, RETRY_BACKOFF_BASE and RETRY_AFTER_MAX.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        url = settings.get("CRAWL_REDIS_URL")
        if not url:
            raise NotConfigured
        self.interval = settings.getfloat("CRAWL_REDIS_HOST_INTERVAL")
        if self.interval < 0:
            raise ValueError("CRAWL_REDIS_HOST_INTERVAL must not be negative")
        self.prefix = f"{settings['CRAWL_REDIS_PREFIX']}:host:"
        self.backoff_codes = {int(c) for c in settings.getlist("RETRY_BACKOFF_HTTP_CODES")}
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.max_wait = settings.getfloat("RETRY_AFTER_MAX")
        self.stats = crawler.stats
        per_host = settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") or 1
        self._places: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_host)
        )
        self.client = aioredis.Redis.from_url(url)
        self._reserve = self.client.register_script(_RESERVE)
        self._held = self.client.register_script(_HELD)
        self._hold = self.client.register_script(_HOLD)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.host_backed_off, signal=HOST_BACKED_OFF)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def spider_closed(self) -> None:
        await self.client.aclose()

    async def process_request(self, request: Request) -> None:
        """Wait for a place and the host's turn; a hold another crawler set meanwhile means a
        new turn."""
        key = self._key(request)
        await self._places[key].acquire()
        request.meta[_HOLDS_PLACE] = True
        while True:
            wait = float(await self._reserve(keys=[key], args=[self.interval, KEY_TTL_S]))
            if wait <= 0:
                return None
            self.stats.inc_value("shared_throttle/delayed")
            await asyncio.sleep(wait)
            if float(await self._held(keys=[key])) <= 0:
                return None

    async def process_response(self, request: Request, response: Response) -> Response:
        self._release(request)
        if response.status in self.backoff_codes and not request.meta.get("dont_retry"):
            wait, _ = backoff_seconds(request, response, self.backoff_base)
            if wait <= self.max_wait:  # a longer wait gives the request up (retry_after.py)
                await self.host_backed_off(request, wait)
        return response

    async def host_backed_off(self, request: Request, wait: float) -> None:
        """Hold the request's host `wait` seconds for every crawler (a 429/503 answer here, a
        challenge page in `challenge.py`)."""
        await self._hold(keys=[self._key(request)], args=[wait, KEY_TTL_S + int(wait)])
        self.stats.inc_value("shared_throttle/holds")
        self.stats.max_value("shared_throttle/max_hold", wait)

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._release(request)

    def _release(self, request: Request) -> None:
        if request.meta.pop(_HOLDS_PLACE, False):
            self._places[self._key(request)].release()

    def _key(self, request: Request) -> str:
        return self.prefix + (urlparse_cached(request).hostname or "")


__all__ = ["SharedThrottleMiddleware"]
