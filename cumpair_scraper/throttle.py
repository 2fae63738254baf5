"""AutoThrottle that also learns a host's pace from its 304 answers to revalidated photos.

Scrapy's AutoThrottle lets only a 200 lower a host's delay: error pages and redirects are small
and fast, and letting them speed the crawl up would answer a struggling server with more
requests. A recrawl, though, is mostly 304s (every stored photo asked for conditionally,
IMAGES_REVALIDATE), and those are the server's real, cheap answers. Ignoring them, one slow
page (a browser-rendered one takes a second or two) set the host's delay and held it through
the dozens of fast 304s after it: the unchanged demo recrawl spent about twice the summed
delay it needed (replaying its own throttle log: 138 s against 57 s on the slowest host).

`RevalidationAwareAutoThrottle` replaces Scrapy's extension (settings.py) and lets a response
whose status is in AUTOTHROTTLE_LEARN_STATUSES ([304]) adjust the delay both ways like a 200,
with Scrapy's own policy (latency / AUTOTHROTTLE_TARGET_CONCURRENCY, smoothed). Every other
status may still only raise it. CONCURRENT_REQUESTS_PER_DOMAIN, DOWNLOAD_DELAY (the floor),
robots.txt and the Retry-After back-off are unchanged; [] gives Scrapy's behaviour back.
"""

from __future__ import annotations

from scrapy.core.downloader import Slot
from scrapy.crawler import Crawler
from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Response

DEFAULT_LEARN_STATUSES = (304,)


class RevalidationAwareAutoThrottle(AutoThrottle):
    """Scrapy's AutoThrottle; the statuses besides 200 that may lower a delay come from a
    setting."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        statuses = crawler.settings.getlist("AUTOTHROTTLE_LEARN_STATUSES", DEFAULT_LEARN_STATUSES)
        try:
            # `-s AUTOTHROTTLE_LEARN_STATUSES=` (Scrapy reads [""]) means none, as [] does.
            self.learn_statuses = frozenset(int(status) for status in statuses if str(status))
        except ValueError as exc:
            raise ValueError(
                f"AUTOTHROTTLE_LEARN_STATUSES must list HTTP status codes, got {statuses!r}"
            ) from exc

    def _adjust_delay(self, slot: Slot, latency: float, response: Response) -> None:
        # Scrapy's policy lets only a 200 lower the delay: show it a learnt status as one.
        if response.status in self.learn_statuses:
            response = response.replace(status=200)
        super()._adjust_delay(slot, latency, response)
