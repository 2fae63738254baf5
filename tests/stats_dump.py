"""A stats collector that writes the final stats as JSON, so tests can read a real crawl's stats."""

from __future__ import annotations

import json
from typing import Any

from scrapy.statscollectors import MemoryStatsCollector


class JsonDumpStatsCollector(MemoryStatsCollector):
    """MemoryStatsCollector that also writes the stats to the STATS_DUMP_FILE setting; a
    ``{spider}`` in it is the spider's name (`crawlall` runs several spiders in one process)."""

    def _persist_stats(self, stats: dict[str, Any]) -> None:
        super()._persist_stats(stats)
        path = self._crawler.settings.get("STATS_DUMP_FILE")
        if path:
            path = path.replace("{spider}", self._crawler.spider.name)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(stats, handle, default=str)
