"""What the headless browser of JavaScript shops loads: the page and its data, not its media.

A JavaScript shop's page (scrapy-playwright, `[javascript]` in its shop config) is read from the
DOM once its scripts ran; its photos are downloaded once, by the images pipeline, through
Scrapy's throttled, revalidating requests. The browser fetching them too asked the shop for
every photo twice (the demo's unchanged recrawl: 168 browser image requests beside Scrapy's 454)
and lengthened each page's latency, which AutoThrottle turns into the host's delay.
`skip_media` is the PLAYWRIGHT_ABORT_REQUEST predicate (settings.py): images, media and fonts
are aborted; documents, scripts, stylesheets and fetch/XHR calls load. An `<img>`'s `src` stays
in the DOM, so the spider still reads the photo URLs. Set PLAYWRIGHT_ABORT_REQUEST to None for
a shop whose scripts wait on an image's load event.
"""

from __future__ import annotations

from typing import Protocol

#: Playwright resource types the DOM reading never needs.
SKIPPED_RESOURCE_TYPES = frozenset({"image", "media", "font"})


class BrowserRequest(Protocol):
    """The part of `playwright.async_api.Request` the predicate reads."""

    @property
    def resource_type(self) -> str: ...


def skip_media(request: BrowserRequest) -> bool:
    """True for a browser subrequest the page can be read without (aborted unsent)."""
    return request.resource_type in SKIPPED_RESOURCE_TYPES
