"""Retries that slow down: honour Retry-After on 429/503 and back the whole host off.

Scrapy's RetryMiddleware re-queues a failed request at once. A shop that answers 429 or 503 is
asking us to slow down, so this subclass also raises the download slot's delay for that host
(to the Retry-After the server sent, or an exponential back-off when it sent none). AutoThrottle
then lowers the delay again gradually as the host answers normally.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.response import response_status_message

logger = logging.getLogger(__name__)


def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent
    or unreadable."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(request: Request, response: Response, base: float) -> tuple[float, bool]:
    """How long to hold the host after a slow-down answer: the server's Retry-After, else
    `base` doubled per retry of `request` so far; and whether the server named the wait."""
    wait = retry_after_seconds(response.headers.get(b"Retry-After"))
    if wait is None:
        return base * 2 ** request.meta.get("retry_times", 0), False
    return wait, True


class RetryAfterMiddleware(RetryMiddleware):
    """RetryMiddleware that backs off the host on the status codes in RETRY_BACKOFF_HTTP_CODES.

    Settings: RETRY_BACKOFF_HTTP_CODES (default [429, 503]), RETRY_BACKOFF_BASE (seconds for
    the first back-off without Retry-After, doubled per retry; default 1), RETRY_AFTER_MAX
    (longest wait honoured; a longer Retry-After gives up on the request; default 300).
    """

    def __init__(self, crawler: Crawler):
        super().__init__(crawler.settings)
        self.crawler = crawler
        settings = crawler.settings
        self.backoff_codes = {int(c) for c in settings.getlist("RETRY_BACKOFF_HTTP_CODES")}
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.max_wait = settings.getfloat("RETRY_AFTER_MAX")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_response(
        self, request: Request, response: Response, spider: object = None
    ) -> Request | Response:
        if response.status not in self.backoff_codes or request.meta.get("dont_retry"):
            return super().process_response(request, response)
        stats = self.crawler.stats
        wait, named = backoff_seconds(request, response, self.backoff_base)
        if named:
            stats.inc_value("retry_after/honoured")
        if wait > self.max_wait:
            stats.inc_value("retry_after/too_long")
            logger.warning(
                "Giving up on %s: the host asks us to wait %.0f s (RETRY_AFTER_MAX is %.0f s)",
                request,
                wait,
                self.max_wait,
            )
            return response
        self._slow_down_host(request, wait)
        return self._retry(request, response_status_message(response.status)) or response

    def _slow_down_host(self, request: Request, wait: float) -> None:
        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        slot = downloader.slots.get(key)
        if slot is None:
            return
        if wait > slot.delay:
            logger.info("Backing off %s: %.1f s between requests", key, wait)
            slot.delay = wait
        self.crawler.stats.max_value("retry_after/max_delay", wait)
        self.crawler.stats.inc_value("retry_after/backoff")
