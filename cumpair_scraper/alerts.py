"""The crawl's price-drop alerts: one alerts pass (`cumpair.alerts.run_alerts`) at spider close.

Connected to `spider_closed`, which Scrapy sends after the item pipelines closed (the index
pipeline has flushed the offers by then). The pass runs in a thread, so the reactor is never
blocked, and is bounded by CUMPAIR_ALERTS_DEADLINE_S; notices it could not deliver stay in
the outbox for the next crawl. Disabled with CUMPAIR_ALERTS_ENABLED=false.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from cumpair.alerts import AlertOptions, run_alerts

logger = logging.getLogger(__name__)


class PriceAlerts:
    """Check the watches of INDEX_DATA_DIR once the spider closed; count what happened."""

    def __init__(self, index_dir: Path, options: AlertOptions, stats: Any) -> None:
        self.index_dir = index_dir
        self.options = options
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PriceAlerts:
        options = AlertOptions.from_settings(crawler.settings)
        if not options.enabled:
            raise NotConfigured("CUMPAIR_ALERTS_ENABLED is off")
        extension = cls(Path(crawler.settings.get("INDEX_DATA_DIR")), options, crawler.stats)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    async def spider_closed(self, spider: Any, reason: str) -> None:
        """Awaited by Scrapy; the pass runs in a thread, so the reactor is never blocked."""
        try:
            run = await maybe_deferred_to_future(
                deferToThread(run_alerts, self.index_dir, self.options)
            )
        except Exception as exc:  # alerts never fail the crawl: the offers are stored, notices wait
            logger.error("price alerts failed: %s", exc, extra={"spider": spider})
            self.stats.inc_value("alerts/errors")
            return
        if run is not None:
            for name in ("queued", "sent", "failed", "pending"):
                self.stats.set_value(f"alerts/{name}", getattr(run, name))
