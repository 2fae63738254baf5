"""A crawl frontier in Redis that loses no request: scrapy-redis's scheduler and priority queue,
with every request taken from the queue held in an in-flight hash until it is finished.

scrapy-redis pops a request destructively, so a crawler killed with requests in flight loses
them (their fingerprints are already in the shared dupefilter: nobody schedules them again).
Here the pop moves the request into ``<queue>:inflight`` under a token owned by this process,
and the token is acknowledged only once the engine is done with the request — downloaded,
parsed, its items through the pipelines (handed to the indexer), its new requests queued, its
retries and redirects queued in its place. Each crawler keeps a heartbeat key alive
(CRAWL_REDIS_LEASE_S); the requests of a crawler whose heartbeat has lapsed go back to the queue,
picked up by the others or by its restart. A crawler closes only when the queue is empty and no
crawler holds a request in flight. The crawl run then ends: its queue goes, and its dupefilter
and run id stay CRAWL_REDIS_RERUN_AFTER_S, so a crawler started late (or restarted) finds every
page already crawled and ends at once; the first crawler after that starts the next run.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

logger = logging.getLogger(__name__)

#: Request meta key of the in-flight token (stripped when a request is queued again).
TOKEN_META = "cumpair_frontier_token"


def run_key(queue_key: str) -> str:
    """The key holding the id of the crawl run a frontier serves (new once it is cleared)."""
    return f"{queue_key}:run"


# KEYS: queue, inflight (token -> request), owners (token -> "owner score"); ARGV: token, owner.
_POP = """
local found = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #found == 0 then return false end
redis.call('ZREM', KEYS[1], found[1])
redis.call('HSET', KEYS[2], ARGV[1], found[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. ' ' .. found[2])
return found[1]
"""

# KEYS: queue, inflight, owners; ARGV: heartbeat key prefix, an owner to requeue in any case.
# Puts back the requests of every owner whose heartbeat is gone; returns how many.
_REQUEUE = """
local owners = redis.call('HGETALL', KEYS[3])
local moved = 0
for i = 1, #owners, 2 do
  local token, value = owners[i], owners[i + 1]
  local sep = string.find(value, ' ', 1, true)
  local owner, score = string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
  if owner == ARGV[2] or redis.call('EXISTS', ARGV[1] .. owner) == 0 then
    local data = redis.call('HGET', KEYS[2], token)
    if data then
      redis.call('ZADD', KEYS[1], score, data)
      moved = moved + 1
    end
    redis.call('HDEL', KEYS[2], token)
    redis.call('HDEL', KEYS[3], token)
  end
end
return moved
"""


class ReliablePriorityQueue(PriorityQueue):
    """scrapy-redis's priority queue whose `pop` keeps the request in flight under a token.

    `owner` and `heartbeat_prefix` are set by `ReliableScheduler.open`.
    """

    owner: str = ""
    heartbeat_prefix: str = ""

    def __init__(self, server: Any, spider: Spider, key: str, serializer: Any = None) -> None:
        super().__init__(server, spider, key, serializer)
        self.inflight_key = f"{self.key}:inflight"
        self.owners_key = f"{self.key}:owners"
        self.run_key = run_key(self.key)
        self._pop_script = server.register_script(_POP)
        self._requeue_script = server.register_script(_REQUEUE)

    def push(self, request: Request) -> None:
        # A retry or redirect carries its parent's token; the copy queued here is a new request.
        request.meta.pop(TOKEN_META, None)
        super().push(request)

    def pop(self, timeout: int = 0) -> Request | None:
        token = uuid.uuid4().hex
        keys = [self.key, self.inflight_key, self.owners_key]
        data = self._pop_script(keys=keys, args=[token, self.owner])
        if not data:
            return None
        request = self._decode_request(data)
        request.meta[TOKEN_META] = token
        return request

    def ack(self, tokens: list[str]) -> None:
        if tokens:
            pipe = self.server.pipeline(transaction=True)
            pipe.hdel(self.inflight_key, *tokens).hdel(self.owners_key, *tokens)
            pipe.execute()

    def requeue_orphans(self, include_own: bool = False) -> int:
        """Put back the requests of crawlers whose heartbeat lapsed (and ours if asked)."""
        keys = [self.key, self.inflight_key, self.owners_key]
        mine = self.owner if include_own else ""
        return int(self._requeue_script(keys=keys, args=[self.heartbeat_prefix, mine]))

    def in_flight(self) -> int:
        return int(self.server.hlen(self.inflight_key))

    def start_run(self) -> str:
        """The id of the crawl run this frontier serves, made by its first crawler."""
        self.server.set(self.run_key, uuid.uuid4().hex, nx=True)
        return self.server.get(self.run_key).decode()

    def clear(self) -> None:
        self.server.delete(self.key, self.inflight_key, self.owners_key, self.run_key)


class ReliableScheduler(Scheduler):
    """scrapy-redis's scheduler over `ReliablePriorityQueue`, acknowledging finished requests.

    Settings (besides scrapy-redis's): CRAWL_REDIS_LEASE_S (seconds a crawler's heartbeat
    lives; its requests go back to the queue that long after it died), CRAWL_REDIS_RERUN_AFTER_S
    (seconds a finished run's dupefilter is kept), CRAWL_REDIS_PREFIX (the prefix of every key
    this mode writes).
    """

    crawler: Crawler
    owner: str
    lease_s: float
    rerun_after_s: float
    heartbeat_key: str

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        scheduler = super().from_crawler(crawler)
        scheduler.crawler = crawler
        scheduler.owner = uuid.uuid4().hex
        scheduler.lease_s = crawler.settings.getfloat("CRAWL_REDIS_LEASE_S")
        scheduler.rerun_after_s = crawler.settings.getfloat("CRAWL_REDIS_RERUN_AFTER_S")
        if scheduler.lease_s <= 0 or scheduler.rerun_after_s <= 0:
            raise ValueError("CRAWL_REDIS_LEASE_S and CRAWL_REDIS_RERUN_AFTER_S must be positive")
        prefix = f"{crawler.settings['CRAWL_REDIS_PREFIX']}:crawler:"
        scheduler.heartbeat_prefix = prefix
        scheduler.heartbeat_key = prefix + scheduler.owner
        return scheduler

    def open(self, spider: Spider) -> None:
        self._issued: dict[str, Request] = {}
        self._beat()  # alive before the first pop
        super().open(spider)
        if not isinstance(self.queue, ReliablePriorityQueue):
            raise TypeError("ReliableScheduler needs SCHEDULER_QUEUE_CLASS ReliablePriorityQueue")
        self.queue.owner, self.queue.heartbeat_prefix = self.owner, self.heartbeat_prefix
        run = self.queue.start_run()
        logger.info("Frontier %s, crawl run %s, this crawler %s", self.queue.key, run, self.owner)
        self._heartbeat = task.LoopingCall(self._tick)
        self._heartbeat.start(self.lease_s / 3, now=True)

    def next_request(self) -> Request | None:
        self._ack_finished()
        request = super().next_request()
        if request is not None:
            self._issued[request.meta[TOKEN_META]] = request
        return request

    def has_pending_requests(self) -> bool:
        """True while the shared queue holds requests or any crawler has one in flight (it
        may yield more, or die and give them back)."""
        self._ack_finished()
        return len(self.queue) > 0 or self.queue.in_flight() > 0

    def close(self, reason: str) -> None:
        if self._heartbeat.running:
            self._heartbeat.stop()
        self._ack_finished()
        returned = self.queue.requeue_orphans(include_own=True)
        if returned:
            logger.info("Frontier: %d unfinished request(s) returned to the queue", returned)
        self.server.delete(self.heartbeat_key)
        if reason == "finished" and not len(self.queue) and not self.queue.in_flight():
            self._end_run()

    def _end_run(self) -> None:
        """The run is complete: its queue goes, its dupefilter and id expire later."""
        keep_ms = int(self.rerun_after_s * 1000)
        pipe = self.server.pipeline(transaction=True)
        pipe.delete(self.queue.key, self.queue.inflight_key, self.queue.owners_key)
        pipe.pexpire(self.df.key, keep_ms, nx=True).pexpire(self.queue.run_key, keep_ms, nx=True)
        pipe.execute()
        logger.info("Frontier: crawl run of %s complete; the next one can start in %.0f s",
                    self.spider.name, self.rerun_after_s)  # fmt: skip

    def _tick(self) -> None:
        """Heartbeat: stay alive, acknowledge what finished, take back the dead's requests."""
        self._beat()
        self._ack_finished()
        requeued = self.queue.requeue_orphans()
        if requeued:
            logger.info("Frontier: %d request(s) of a lost crawler back in the queue", requeued)
            self.crawler.stats.inc_value("frontier/requeued", requeued)

    def _beat(self) -> None:
        self.server.set(self.heartbeat_key, "1", px=int(self.lease_s * 1000))

    def _ack_finished(self) -> None:
        """Acknowledge the issued requests the engine no longer holds.

        A request is held from the pop until its response (or failure) has been scraped: the
        downloader's `active` set covers the download and the downloader middlewares, the
        scraper slot's `active` set the callback, the item pipelines and the scheduling of
        what it yielded. The hand-over between the two happens within one reactor callback,
        and this runs in another, so a request is never seen in neither while unfinished.
        """
        if not self._issued:
            return
        engine = self.crawler.engine
        live = set(engine.downloader.active)
        slot = engine.scraper.slot  # None once the scraper has closed: nothing is scraped then
        if slot is not None:
            live |= slot.active | {request for _, request, _ in slot.queue}
        done = [token for token, request in self._issued.items() if request not in live]
        if done:
            self.queue.ack(done)
            for token in done:
                del self._issued[token]
            self.crawler.stats.inc_value("frontier/acknowledged", len(done))


__all__ = ["TOKEN_META", "ReliablePriorityQueue", "ReliableScheduler", "run_key"]
