"""One request pace per host across every crawler of it: a slot and a back-off kept in Redis.

In Redis mode several processes on several machines crawl the same shops, and Scrapy's download
slots, AutoThrottle and the Retry-After back-off are each per process. This middleware asks Redis
for the host's turn before every request (pages, robots.txt, photos): a request goes only once
CRAWL_REDIS_HOST_INTERVAL after the previous turn given to that host *by any crawler*, and not
before a back-off deadline (a hold) any crawler set. Answers on RETRY_BACKOFF_HTTP_CODES set that
hold (the server's Retry-After, else the retry middleware's doubling back-off), so one crawler's
429 holds all of them; so does a challenge page's back-off (`challenge.py`'s rules). Times come
from the Redis server's clock, shared by all.

The turn is the last thing a request waits for: it first waits out its own process's download
slot (AutoThrottle's delay, a challenge's slow-down, at their longest jitter), one request of a
host at a time, and no more requests per host hold a turn here than the slot downloads side by
side (CONCURRENT_REQUESTS_PER_DOMAIN). So nothing holds a request between its turn and its
download, and a hold posted before the turn is never overtaken. A response that asks for a hold
posts it before it gives its place back, so the next request of this process sees it too.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Self

import redis.asyncio as aioredis
from scrapy import Request, signals
from scrapy.core.downloader import Slot
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached

from cumpair_scraper.middlewares.challenge import HOST_BACKED_OFF, ChallengeRules
from cumpair_scraper.middlewares.retry_after import backoff_seconds

# KEYS: the host's hash; ARGV: interval, ttl. Reserves the host's next turn (after the last
# reserved one and after any hold); returns the seconds until it and the turn (server clock).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local turn = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'next') or '0'),
                      tonumber(redis.call('HGET', KEYS[1], 'hold') or '0'))
redis.call('HSET', KEYS[1], 'next', tostring(turn + tonumber(ARGV[1])))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {tostring(turn - now), tostring(turn)}
"""
# KEYS: the host's hash. Seconds the host is still held ('0' when it is not).
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return tostring(math.max(0, tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') - now))
"""

# KEYS: the host's hash, its hold log; ARGV: seconds to hold the host, ttl, how many holds the
# log keeps (0: no log). Never shortens a longer hold; logs "posted until" (server clock).
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = now + tonumber(ARGV[1])
if hold > tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') then
  redis.call('HSET', KEYS[1], 'hold', tostring(hold))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('RPUSH', KEYS[2], tostring(now) .. ' ' .. tostring(hold))
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 1
"""

#: Seconds a host's keys outlive its last use.
KEY_TTL_S = 600
#: Request meta key: the request holds one of its host's local places.
_HOLDS_PLACE = "cumpair_shared_throttle_place"
#: Request meta key: the challenge hold this request's response asked for is posted already.
_HOLD_POSTED = "cumpair_shared_throttle_hold_posted"
#: Seconds between two looks at a download slot that is busy for another reason (a request
#: queued in it without a turn, fewer transfers than places: DOWNLOAD_SLOTS).
_SLOT_POLL_S = 0.05


class SharedThrottleMiddleware:
    """Per-host pace and back-off shared through Redis (only in Redis mode).

    Settings: CRAWL_REDIS_URL (off when empty), CRAWL_REDIS_PREFIX, CRAWL_REDIS_HOST_INTERVAL
    (seconds between two requests to one host from all crawlers together),
    CRAWL_REDIS_TURN_LOG (how many of each host's latest turns and holds to keep in Redis,
    under ``<prefix>:host:<host>:turns`` and ``:holds``, for a pace to be checked on; 0, the
    default, keeps none),
    the retry middleware's RETRY_BACKOFF_HTTP_CODES, RETRY_BACKOFF_BASE and RETRY_AFTER_MAX,
    and the challenge settings (`challenge.py`).
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        url = settings.get("CRAWL_REDIS_URL")
        if not url:
            raise NotConfigured
        self.interval = settings.getfloat("CRAWL_REDIS_HOST_INTERVAL")
        if self.interval < 0:
            raise ValueError("CRAWL_REDIS_HOST_INTERVAL must not be negative")
        self.turn_log = settings.getint("CRAWL_REDIS_TURN_LOG")
        if self.turn_log < 0:
            raise ValueError("CRAWL_REDIS_TURN_LOG must not be negative")
        self.prefix = f"{settings['CRAWL_REDIS_PREFIX']}:host:"
        self.backoff_codes = {int(c) for c in settings.getlist("RETRY_BACKOFF_HTTP_CODES")}
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.max_wait = settings.getfloat("RETRY_AFTER_MAX")
        self.challenges = ChallengeRules.from_settings(settings)
        self.crawler = crawler
        self.stats = crawler.stats
        per_host = settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") or 1
        self._places: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_host)
        )
        self._turns: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._logging: set[asyncio.Task] = set()
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
        if self._logging:
            await asyncio.gather(*self._logging, return_exceptions=True)
        await self.client.aclose()

    async def process_request(self, request: Request) -> None:
        """Wait for a place, then (one request of the host at a time) for this process's slot
        and the host's turn. Nothing awaits between the last look at the hold and the download:
        Scrapy hands the request to its slot, which sends it at once, in the same step."""
        key = self._key(request)
        await self._places[key].acquire()
        request.meta[_HOLDS_PLACE] = True
        async with self._turns[key]:
            while True:
                while (ready := self._slot_wait(request)) > 0:
                    await asyncio.sleep(ready)
                wait, turn = await self._reserve(keys=[key], args=[self.interval, KEY_TTL_S])
                if float(wait) > 0:
                    self.stats.inc_value("shared_throttle/delayed")
                    await asyncio.sleep(float(wait))
                    if float(await self._held(keys=[key])) > 0:
                        continue  # a hold came after the turn was given: a new turn after it
                if self._slot_wait(request) > 0:
                    continue  # this process's slot slowed down meanwhile (a response's delay)
                self._log_turn(key, turn)
                return None

    async def process_response(self, request: Request, response: Response) -> Response:
        """Post the hold the response asks for, then give the place back (so the hold is in
        Redis before this process's next request takes a turn)."""
        # a mark left by an earlier answer (a middleware between here and challenge.py sent
        # the request on before challenge.py saw it, copying its meta) is not this answer's
        request.meta.pop(_HOLD_POSTED, None)
        try:
            if response.status in self.backoff_codes and not request.meta.get("dont_retry"):
                wait, _ = backoff_seconds(request, response, self.backoff_base)
                if wait <= self.max_wait:  # a longer wait gives the request up (retry_after.py)
                    await self._post_hold(request, wait)
            if self.challenges is not None:
                wait = self.challenges.backoff_at_once(request, response)
                if wait is not None:
                    await self._post_hold(request, wait)
                    request.meta[_HOLD_POSTED] = wait  # challenge.py's signal for it is a repeat
        finally:
            self._release(request)
        return response

    async def host_backed_off(self, request: Request, wait: float) -> None:
        """`challenge.py`'s back-off: hold the request's host `wait` seconds for every crawler,
        unless this middleware posted that hold already (all but a failed captcha answer's)."""
        if request.meta.pop(_HOLD_POSTED, None) != wait:
            await self._post_hold(request, wait)

    async def _post_hold(self, request: Request, wait: float) -> None:
        key = self._key(request)
        ttl = KEY_TTL_S + int(wait)
        await self._hold(keys=[key, f"{key}:holds"], args=[wait, ttl, self.turn_log])
        self.stats.inc_value("shared_throttle/holds")
        self.stats.max_value("shared_throttle/max_hold", wait)

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._release(request)

    def _release(self, request: Request) -> None:
        if request.meta.pop(_HOLDS_PLACE, False):
            self._places[self._key(request)].release()

    def _slot_wait(self, request: Request) -> float:
        """Seconds until this process's download slot for the request would send it at once:
        its delay at its longest jitter after the last request it sent, no queue, a transfer
        free (Scrapy's `Downloader._process_queue`)."""
        downloader = self.crawler.engine.downloader
        slot: Slot | None = downloader.slots.get(downloader.get_slot_key(request))
        if slot is None:
            return 0.0
        if slot.queue or slot.latercall or slot.free_transfer_slots() <= 0:
            return _SLOT_POLL_S
        return slot.lastseen + slot.delay * (1 + slot.jitter) - time.monotonic()

    def _log_turn(self, key: str, turn: bytes) -> None:
        """Keep the turn a request leaves on in the host's turn log (CRAWL_REDIS_TURN_LOG), in
        the background: nothing may wait between the turn and the download."""
        if not self.turn_log:
            return
        task = asyncio.ensure_future(self._append_turn(f"{key}:turns", turn))
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)

    async def _append_turn(self, log: str, turn: bytes) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(log, turn).ltrim(log, -self.turn_log, -1).expire(log, KEY_TTL_S)
            await pipe.execute()

    def _key(self, request: Request) -> str:
        return self.prefix + (urlparse_cached(request).hostname or "")


__all__ = ["SharedThrottleMiddleware"]
