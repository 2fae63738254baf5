"""The generic shop spider: walks listings (or a sitemap) to product pages and reads them.

One class serves every shop; `ShopSpider.for_shop(config)` makes the named subclass that
`scrapy crawl <shop>` runs. Shops marked `javascript` go through headless Chromium
(scrapy-playwright, the project's DOWNLOAD_HANDLERS); all others use Scrapy's plain HTTP
downloader, without the Playwright handler, which starts a browser driver at engine start.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response, TextResponse
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from cumpair_scraper.shopconfig import ShopConfig

#: What a browser page load that ran out of time raises (scrapy-playwright lets it through).
BROWSER_TIMEOUT = "playwright.async_api.TimeoutError"


class ShopSpider(scrapy.Spider):
    """Crawl one shop as described by its `ShopConfig`.

    Spider arguments (`-a name=value`): `base_url` serves the same shop from another origin
    (a staging copy, a test server on another port).
    """

    # No `name` here: only the per-shop subclasses are spiders that `scrapy list` shows.
    shop: ClassVar[ShopConfig]

    @classmethod
    def for_shop(cls, config: ShopConfig) -> type[ShopSpider]:
        """The spider class for one shop, named after it."""
        class_name = "".join(part.title() for part in config.name.split("_")) + "Spider"
        return type(
            class_name, (cls,), {"name": config.name, "shop": config, "__module__": __name__}
        )

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """A shop without JavaScript downloads without scrapy-playwright's handler (Scrapy's
        own takes its schemes; other DOWNLOAD_HANDLERS stay): that handler starts a Playwright
        driver (a node process, ~100 MB resident) per scheme at engine start, so `scrapy
        crawlall` ran eight of them for the demo's one browser shop. A JavaScript shop's page
        that the browser did not finish loading in PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT (a busy
        machine) is retried like a download timeout (RETRY_EXCEPTIONS) instead of dropped with
        every product it links to; other shops never import Playwright for it. The timeout
        joins the list in force at that list's own priority, so an operator's
        `-s RETRY_EXCEPTIONS=...` keeps it instead of silently dropping it."""
        super().update_settings(settings)
        if cls.shop.javascript:
            retried = [*settings.getlist("RETRY_EXCEPTIONS"), BROWSER_TIMEOUT]
            priority = max(
                settings.getpriority("RETRY_EXCEPTIONS") or 0, SETTINGS_PRIORITIES["spider"]
            )
            settings.set("RETRY_EXCEPTIONS", retried, priority=priority)
        else:
            handlers = settings.getdict("DOWNLOAD_HANDLERS")
            plain = {scheme: path for scheme, path in handlers.items() if not _playwright(path)}
            if plain != handlers:
                settings.set("DOWNLOAD_HANDLERS", plain, priority="spider")

    def __init__(self, *args: Any, base_url: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if base_url:
            self.shop = self.shop.rebased(base_url)
        self.allowed_domains = self.shop.allowed_domains
        self._product_url = (
            re.compile(self.shop.product_url_pattern) if self.shop.product_url_pattern else None
        )

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.shop.sitemap_urls:
            yield scrapy.Request(url, callback=self.parse_sitemap)
        for url in self.shop.start_urls:
            yield self._page_request(url, self.parse_listing)

    def _page_request(self, url: str, callback: Any, **kwargs: Any) -> scrapy.Request:
        """A request for an HTML page, rendered in the browser when the shop needs JavaScript."""
        meta: dict[str, Any] = {}
        if self.shop.javascript:
            from scrapy_playwright.page import PageMethod  # only JS shops need the browser

            meta["playwright"] = True
            if self.shop.wait_for:
                meta["playwright_page_methods"] = [
                    PageMethod("wait_for_selector", self.shop.wait_for)
                ]
        return scrapy.Request(url, callback=callback, meta=meta, **kwargs)

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        """Follow sitemap indexes; product URLs go to `parse_product`, others to listings."""
        if response.url.endswith("/robots.txt"):
            for url in sitemap_urls_from_robots(response.text, base_url=response.url):
                yield scrapy.Request(url, callback=self.parse_sitemap)
            return
        sitemap = Sitemap(response.body)
        for entry in sitemap:
            url = entry["loc"]
            if sitemap.type == "sitemapindex":
                yield scrapy.Request(url, callback=self.parse_sitemap)
            elif self._product_url is None or self._product_url.search(url):
                yield self._page_request(url, self.parse_product)

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        """A home or category page: follow categories, the next page and product links."""
        if not isinstance(response, TextResponse):
            return
        # Product links first: when a broad listing selector also matches them, the duplicate
        # filter then keeps the product callback.
        for selector, callback in (
            (self.shop.product_links, self.parse_product),
            (self.shop.category_links, self.parse_listing),
            (self.shop.next_page, self.parse_listing),
        ):
            if not selector:
                continue
            for href in response.css(selector).css("::attr(href)").getall():
                yield self._page_request(response.urljoin(href), callback)

    def parse_product(self, response: Response) -> Iterator[Any]:
        """A product page: one item (validated downstream by the item pipelines)."""
        if not isinstance(response, TextResponse):
            self.crawler.stats.inc_value("cumpair/product_not_html")
            return
        # Imported here: extruct and rdflib take 0.2 s that `scrapy list` (which only loads the
        # spider classes) never needs.
        from cumpair_scraper.extraction import extract_product

        extraction = extract_product(response, self.shop)
        stats = self.crawler.stats
        for source in extraction.sources:
            stats.inc_value(f"cumpair/extracted_from/{source}")
        for problem in extraction.problems:
            stats.inc_value(f"cumpair/page_problems/{problem.split(':', 1)[0]}")
            self.logger.warning("%s: %s", response.url, problem)
        yield extraction.item


def _playwright(handler: object) -> bool:
    """Whether a DOWNLOAD_HANDLERS value (an import path or a class) is scrapy-playwright's."""
    name = handler if isinstance(handler, str) else getattr(handler, "__module__", "")
    return str(name).startswith("scrapy_playwright.")
