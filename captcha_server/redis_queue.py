"""Redis backend: the server enqueues, any number of `captcha_server.worker` processes solve.

Durability relies on Redis persistence: run redis-server with `appendonly yes` and
`appendfsync always` (what `captcha_server.redis_runner` starts) so that every task whose id was
returned to a client survives a Redis crash or restart. Tasks expire after `task_ttl_s`, results
`result_ttl_s` after they finish. See `redis_scripts` for the state transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from captcha_server import redis_scripts
from captcha_server.config import QueueSettings
from captcha_server.solver import UNSOLVABLE, Solution
from captcha_server.stats import COUNTERS, key_counts, percentiles
from captcha_server.tasks import QueueFull, QueueUnavailable, Report, State, TaskRecord

LATENCY_WINDOW = 2000
LISTEN_POLL_S = 0.5
"""How often the done-channel listener looks up from its read to see whether to stop."""
UNSOLVABLE_JSON = json.dumps(Solution(error=UNSOLVABLE, engine="worker-lost").to_dict())


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "captcha"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    @property
    def task_prefix(self) -> str:
        return f"{self.prefix}:task:"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def processing(self) -> str:
        return f"{self.prefix}:processing"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def key_stats(self, api_key: str) -> str:
        """Counters of one API key; named by a digest so key names never show an API key."""
        return f"{self.prefix}:stats:key:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}"

    def latency(self, engine: str) -> str:
        return f"{self.prefix}:lat:{engine}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def done(self) -> str:
        return f"{self.prefix}:done"


def record_from_hash(task_id: str, h: dict[bytes, bytes]) -> TaskRecord:
    def s(name: str, default: str = "") -> str:
        value = h.get(name.encode())
        return value.decode() if value is not None else default

    solution = s("solution")
    finished = s("finished")
    return TaskRecord(
        id=task_id,
        key=s("key"),
        state=State(s("state", "pending")),
        options=json.loads(s("options", "{}")),
        want_specs=s("want_specs") == "1",
        created=float(s("created", "0")),
        finished=float(finished) if finished else None,
        attempts=int(s("attempts", "0")),
        report=Report(s("report")),
        solution=Solution.from_dict(json.loads(solution)) if solution else None,
    )


def reap(client: redis.Redis, keys: Keys, settings: QueueSettings) -> tuple[int, int]:
    """Requeue tasks of workers that went silent (sync; used by workers)."""
    requeued, failed = client.eval(
        redis_scripts.REAP,
        4,
        keys.processing,
        keys.pending,
        keys.stats,
        keys.done,
        time.time(),
        settings.visibility_timeout_s,
        settings.max_attempts,
        keys.task_prefix,
        settings.result_ttl_s,
        UNSOLVABLE_JSON,
    )
    return int(requeued), int(failed)


class RedisQueue:
    """Server side of the Redis backend (asyncio)."""

    def __init__(self, url: str, settings: QueueSettings, prefix: str = "captcha") -> None:
        self.url = url
        self.settings = settings
        self.keys = Keys(prefix)
        self.client: aioredis.Redis | None = None
        self._waiters: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def start(self) -> None:
        self.client = aioredis.Redis.from_url(
            self.url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        # The listener is stopped by a flag, not cancelled: redis-py's blocking pub/sub read can
        # swallow a cancellation, which left `close()` (and so server shutdown) hanging.
        self._closing.set()
        if self._listener is not None:
            await self._listener
        if self.client is not None:
            await self.client.aclose()

    async def _listen(self) -> None:
        """Wake local waiters when a worker announces a finished task; resubscribe after
        Redis restarts (waiters poll meanwhile). Checks for `close()` every LISTEN_POLL_S."""
        while not self._closing.is_set():
            try:
                async with self._c().pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.keys.done)
                    while not self._closing.is_set():
                        message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                        if message is not None and message["type"] == "message":
                            event = self._waiters.get(message["data"].decode())
                            if event is not None:
                                event.set()
            except (redis.RedisError, OSError):
                await asyncio.sleep(0.5)

    def _c(self) -> aioredis.Redis:
        assert self.client is not None, "RedisQueue.start() was not awaited"
        return self.client

    async def submit(self, record: TaskRecord, image: bytes) -> None:
        try:
            if await self._c().llen(self.keys.pending) >= self.settings.max_pending:
                raise QueueFull
            k = self.keys.task(record.id)
            key_stats = self.keys.key_stats(record.key)
            async with self._c().pipeline(transaction=True) as pipe:
                pipe.hset(
                    k,
                    mapping={
                        "key": record.key,
                        "state": State.PENDING.value,
                        "options": json.dumps(record.options),
                        "want_specs": "1" if record.want_specs else "0",
                        "created": repr(record.created),
                        "attempts": 0,
                        "image": image,
                        "kstats": key_stats,
                    },
                )
                pipe.expire(k, self.settings.task_ttl_s)
                pipe.lpush(self.keys.pending, record.id)
                pipe.hincrby(self.keys.stats, "submitted", 1)
                pipe.hincrby(key_stats, "submitted", 1)
                await pipe.execute()
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc

    async def get(self, task_id: str) -> TaskRecord | None:
        try:
            h = await self._c().hgetall(self.keys.task(task_id))
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        return record_from_hash(task_id, h) if h else None

    async def wait(self, task_id: str, timeout_s: float) -> None:
        """Until the task is final: woken by the done channel, re-checked every 0.25 s."""
        deadline = time.monotonic() + timeout_s
        event = self._waiters.setdefault(task_id, asyncio.Event())
        try:
            while True:
                try:
                    state = await self._c().hget(self.keys.task(task_id), "state")
                except redis.RedisError:
                    state = None  # unreachable for now: keep waiting until the deadline
                left = deadline - time.monotonic()
                if state in (b"done", b"unsolvable") or left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, 0.25))
                event.clear()
        finally:
            self._waiters.pop(task_id, None)

    async def report(self, task_id: str, report: Report) -> str:
        try:
            n = await self._c().eval(
                redis_scripts.REPORT, 2, self.keys.task(task_id), self.keys.stats, report.value
            )
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        return {1: "recorded", 0: "duplicate", -1: "not_finished"}[int(n)]

    async def _workers(self) -> list[dict[str, Any]]:
        found = []
        async for key in self._c().scan_iter(match=self.keys.worker("*"), count=100):
            raw = await self._c().get(key)
            if raw:
                found.append(json.loads(raw))
        return found

    async def health(self) -> dict[str, Any]:
        try:
            await self._c().ping()
            workers = await self._workers()
        except redis.RedisError as exc:
            return {
                "ok": False,
                "backend": "redis",
                "queue_reachable": False,
                "engines_loaded": False,
                "workers_alive": 0,
                "error": str(exc),
            }
        loaded = any(w.get("engines_loaded") for w in workers)
        return {
            "ok": bool(workers) and loaded,
            "backend": "redis",
            "queue_reachable": True,
            "engines_loaded": loaded,
            "workers_alive": len(workers),
        }

    async def key_stats(self, key: str) -> dict[str, int]:
        try:
            counts = await self._c().hgetall(self.keys.key_stats(key))
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        return key_counts({k.decode(): int(v) for k, v in counts.items()})

    async def stats(self) -> dict[str, Any]:
        try:
            c = self._c()
            counts = {k.decode(): int(v) for k, v in (await c.hgetall(self.keys.stats)).items()}
            depth = await c.llen(self.keys.pending) + await c.llen(self.keys.processing)
            latency = {}
            async for key in c.scan_iter(match=self.keys.latency("*"), count=100):
                samples = [float(x) for x in await c.lrange(key, 0, -1)]
                latency[key.decode().rsplit(":", 1)[-1]] = percentiles(samples)
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        return {
            **{name: counts.get(name, 0) for name in COUNTERS},
            "queue_depth": depth,
            "latency": latency,
        }
