"""Redirect loops: a chain that comes back to a request it already made is a logged, counted drop.

Scrapy's redirect middlewares follow a loop (A -> B -> A) until the duplicate filter drops the
revisit, or, for requests that skip the filter (`dont_filter`: challenge retries, resumed
requests), until REDIRECT_MAX_TIMES; either way only a DEBUG line says why the page is missing.
These subclasses stop the chain at its first revisit, judged by the same request fingerprint the
duplicate filter uses (so a POST answered by a redirect to the same URL is no loop), with a
warning that shows the chain and the `redirect/loop` stats counter. A site that redirects back
to the first URL once it has set a cookie is stopped too, as the duplicate filter stopped it.
"""

from __future__ import annotations

import logging

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

logger = logging.getLogger(__name__)

CHAIN_KEY = "redirect_fingerprints"
"""Meta key: fingerprints of the requests earlier in this redirect chain."""


class _LoopCheck:
    """Checks the request a redirect middleware returns against the chain that led to it."""

    crawler: Crawler

    def process_response(self, request: Request, response: Response) -> Request | Response:
        result = super().process_response(request, response)  # type: ignore[misc]
        if not isinstance(result, Request):
            return result
        fingerprint = self.crawler.request_fingerprinter.fingerprint
        chain = [*request.meta.get(CHAIN_KEY, ()), fingerprint(request)]
        if fingerprint(result) in chain:
            urls = [*request.meta.get("redirect_urls", ()), request.url, result.url]
            self.crawler.stats.inc_value("redirect/loop")
            logger.warning("Dropped a redirect loop: %s", " -> ".join(urls))
            raise IgnoreRequest(f"redirect loop back to {result.url}")
        result.meta[CHAIN_KEY] = chain
        return result


class LoopAwareRedirectMiddleware(_LoopCheck, RedirectMiddleware):
    """RedirectMiddleware (3xx Location) that drops redirect loops; replaces it at 600."""


class LoopAwareMetaRefreshMiddleware(_LoopCheck, MetaRefreshMiddleware):
    """MetaRefreshMiddleware (<meta http-equiv=refresh>) that drops loops; replaces it at 580."""
