"""A spider loader that turns every shop config file into a named spider.

`scrapy list` shows one spider per config and `scrapy crawl <shop>` runs it, so adding a shop
is adding a file; scrapyd, which calls the same loader, schedules them by name too.
"""

from __future__ import annotations

from typing import Self

from scrapy.settings import BaseSettings
from scrapy.spiderloader import SpiderLoader

from cumpair_scraper.shopconfig import load_shop_configs
from cumpair_scraper.spiders.shop import ShopSpider


class ShopSpiderLoader(SpiderLoader):
    """Scrapy's loader (for hand-written spiders in SPIDER_MODULES) plus one per shop config."""

    def __init__(self, settings: BaseSettings):
        super().__init__(settings)
        for config in load_shop_configs(settings.getlist("SHOP_CONFIG_DIRS")).values():
            if config.name in self._spiders:
                raise ValueError(f"shop config {config.source} uses the name of an existing spider")
            self._spiders[config.name] = ShopSpider.for_shop(config)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(settings)
