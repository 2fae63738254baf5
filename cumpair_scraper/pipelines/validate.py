"""Drop items that cannot take part in a price comparison, and say why.

An offer without a title or a usable price compares with nothing; Scrapy counts each drop in
`item_dropped_reasons_count/DropItem` and this pipeline adds a per-reason counter.
"""

from __future__ import annotations

from typing import Any, Self

from itemadapter import ItemAdapter
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from cumpair.ingest.stages import missing_fields


class ValidationPipeline:
    """First pipeline: rejects offers missing a title, a price or a currency."""

    def __init__(self, crawler: Crawler):
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        missing = missing_fields(adapter)
        if missing:
            self.stats.inc_value(f"cumpair/dropped/missing_{missing[0]}")
            raise DropItem(f"{adapter.get('url')}: no usable {', '.join(missing)}")
        return item
