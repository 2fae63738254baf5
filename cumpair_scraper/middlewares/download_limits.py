"""Download size limits: a body over its limit is a logged, counted drop, never an item.

Scrapy enforces the limits itself: its HTTP/1.1 handler stops a body once it passes
DOWNLOAD_MAXSIZE (or the request's `download_maxsize` meta, which the images pipeline sets from
IMAGES_DOWNLOAD_MAXSIZE), before reading it when Content-Length says so, and
HttpCompressionMiddleware stops inflating at the same limit, so a small gzip bomb never expands
in memory. What Scrapy does not do is account for those drops: a cut download ends as an ERROR
with a traceback, a bomb as a bare warning. This subclass of HttpCompressionMiddleware (it takes
that middleware's place) makes both a drop (`IgnoreRequest`) with one warning and a stats counter.
"""

from __future__ import annotations

import logging

from scrapy import Request
from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http import Response

logger = logging.getLogger(__name__)


class DownloadLimitsMiddleware(HttpCompressionMiddleware):
    """HttpCompressionMiddleware that counts and logs what the download size limits drop.

    Place it where HttpCompressionMiddleware was (590) and disable that one. Settings: Scrapy's
    DOWNLOAD_MAXSIZE and DOWNLOAD_WARNSIZE (and the per-request `download_maxsize` /
    `download_warnsize` meta). Stats: `download_limits/too_big` (a body over its limit, by
    Content-Length or as it arrived), `download_limits/decompressed_too_big` (a compressed body
    that would inflate past it).
    """

    def process_response(self, request: Request, response: Response) -> Request | Response:
        try:
            return super().process_response(request, response)
        except IgnoreRequest:
            # Raised only for a body inflating past the limit; Scrapy has logged the sizes.
            self.stats.inc_value("download_limits/decompressed_too_big")
            raise

    def process_exception(self, request: Request, exception: Exception) -> None:
        # Scrapy's HTTP handlers cancel a download only when its body passes the size limit.
        if not isinstance(exception, DownloadCancelledError):
            return
        limit = request.meta.get("download_maxsize", self._max_size)
        self.stats.inc_value("download_limits/too_big")
        logger.warning("Dropped %s: its body is over the %d-byte download limit", request, limit)
        raise IgnoreRequest(f"body over the {limit}-byte download limit") from exception
