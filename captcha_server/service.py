"""What every protocol shares: auth, rate limit, image validation, submit, lookup, wait.

The v1, v2 and native handlers only translate their wire format to these calls and back.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from captcha_server.config import ServerConfig
from captcha_server.errors import CaptchaError
from captcha_server.intake import BodyGate
from captcha_server.options import TaskOptions
from captcha_server.security import KeyRing, RateLimiter, same_key
from captcha_server.tasks import (
    QueueFull,
    QueueUnavailable,
    Report,
    TaskQueue,
    TaskRecord,
    new_task_id,
)
from captcha_server.upload import validate_image

ID_DIGITS = frozenset("0123456789")


class Service:
    def __init__(self, config: ServerConfig, queue: TaskQueue) -> None:
        self.config = config
        self.queue = queue
        self.keyring = KeyRing(config.api_keys, config.no_auth, config.admin_keys)
        self.bodies = BodyGate(config.limits)
        self.limiter = RateLimiter(config.rate_per_s, config.rate_burst)
        self.errors: Counter[str] = Counter()
        self.started = time.time()

    def authenticate(self, key: str | None) -> str:
        return self.keyring.check(key)

    async def submit(
        self, key: str, image: bytes, options: TaskOptions, want_specs: bool = False
    ) -> TaskRecord:
        if not self.limiter.allow(key):
            raise CaptchaError("MAX_USER_TURN")
        validate_image(image, self.config.limits)
        if self.config.engines is not None:
            options = dataclasses.replace(options, engines=self.config.engines)
        record = TaskRecord(
            id=new_task_id(), key=key, options=options.to_dict(), want_specs=want_specs
        )
        try:
            await self.queue.submit(record, image)
        except QueueFull as exc:
            raise CaptchaError("ERROR_NO_SLOT_AVAILABLE") from exc
        except QueueUnavailable as exc:
            raise CaptchaError("ERROR_NO_SLOT_AVAILABLE", "queue unreachable, retry") from exc
        return record

    async def lookup(self, key: str, task_id: str | None) -> TaskRecord | None:
        """The caller's task, None while the queue is unreachable (answer "not ready").

        Raises ERROR_WRONG_ID_FORMAT for a non-numeric id and ERROR_WRONG_CAPTCHA_ID for an id
        that does not exist or belongs to another key.
        """
        task_id = (task_id or "").strip()
        if not task_id or not set(task_id) <= ID_DIGITS:
            raise CaptchaError("ERROR_WRONG_ID_FORMAT")
        try:
            record = await self.queue.get(task_id)
        except QueueUnavailable:
            return None
        if record is None or not (self.config.no_auth or same_key(key, record.key)):
            raise CaptchaError("ERROR_WRONG_CAPTCHA_ID")
        return record

    async def report(self, key: str, task_id: str | None, good: bool) -> None:
        record = await self.lookup(key, task_id)
        if record is None:
            raise CaptchaError("REPORT_NOT_RECORDED", "queue unreachable, retry")
        outcome = await self.queue.report(record.id, Report.GOOD if good else Report.BAD)
        if outcome == "duplicate":
            raise CaptchaError("ERROR_DUPLICATE_REPORT")
        if outcome == "not_finished":
            raise CaptchaError("REPORT_NOT_RECORDED")

    async def wait(self, key: str, task_id: str, timeout_s: float) -> TaskRecord | None:
        """The task once final, or as it stands after `timeout_s` (None if unreachable)."""
        await self.lookup(key, task_id)  # ownership and id checks first
        await self.queue.wait(task_id, timeout_s)
        return await self.lookup(key, task_id)

    async def stats(self, key: str | None) -> dict[str, Any]:
        """`/stats` for the caller: an admin key gets the server's counters, queue depth,
        latency, error and upload counts; any other valid key the counters of its own tasks."""
        if self.keyring.is_admin(key):
            try:
                queue_stats = await self.queue.stats()
            except QueueUnavailable as exc:
                queue_stats = {"queue_error": str(exc)}
            return {
                "scope": "server",
                **queue_stats,
                "errors": dict(self.errors),
                "uploads": self.bodies.stats(),
                "uptime_s": round(time.time() - self.started, 1),
            }
        key = self.authenticate(key)
        try:
            counts: dict[str, Any] = await self.queue.key_stats(key)
        except QueueUnavailable as exc:
            counts = {"queue_error": str(exc)}
        return {"scope": "key", **counts, "uptime_s": round(time.time() - self.started, 1)}
