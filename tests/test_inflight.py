"""Pages and items queued ahead of a slow pipeline stay bounded however many the crawl finds.

A real Scrapy crawl (in a child process: a reactor runs once per process) of 60 `data:` pages,
each one item, through a pipeline that holds every item until 60 are in or none came for 0.5 s:
with nothing bounding it, all 60 pile up; with PAGES_IN_FLIGHT_MAX, at most that many plus the
requests already downloading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from cumpair_scraper.inflight import PagesInFlightLimit

REPO = Path(__file__).resolve().parent.parent

_CRAWL = """
import asyncio, json, sys
import scrapy
from scrapy.crawler import CrawlerProcess

PAGES, LIMIT = 60, int(sys.argv[1])
inside = {"now": 0, "most": 0, "done": 0, "last_in": 0.0}

class Holding:
    async def process_item(self, item):
        loop = asyncio.get_running_loop()
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        inside["last_in"] = loop.time()
        # Until every page is in, or none came for 0.5 s (the limit holds the rest back).
        while inside["now"] + inside["done"] < PAGES and loop.time() - inside["last_in"] < 0.5:
            await asyncio.sleep(0.01)
        inside["now"] -= 1
        inside["done"] += 1
        return item

class Pages(scrapy.Spider):
    name = "pages"

    async def start(self):
        for n in range(PAGES):
            yield scrapy.Request(f"data:text/html,<p>{n}</p>", callback=self.parse)

    def parse(self, response):
        yield {"n": response.css("p::text").get()}

process = CrawlerProcess({
    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    "ITEM_PIPELINES": {"__main__.Holding": 100},
    "DOWNLOADER_MIDDLEWARES": {"cumpair_scraper.inflight.PagesInFlightLimit": 50},
    "PAGES_IN_FLIGHT_MAX": LIMIT, "CONCURRENT_REQUESTS": 2, "LOG_LEVEL": "ERROR",
})
crawler = process.create_crawler(Pages)
process.crawl(crawler)
process.start()
stats = crawler.stats.get_stats()
print(json.dumps({"most": inside["most"], "done": inside["done"],
                  "held": stats.get("inflight/requests_held", 0)}))
"""


def _crawl(limit: int, folder: Path) -> dict[str, int]:
    script = folder / "crawl.py"  # a file: Scrapy reads its callbacks' source
    script.write_text(textwrap.dedent(_CRAWL))
    done = subprocess.run(
        [sys.executable, str(script), str(limit)], cwd=REPO, capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_pages_held_for_the_pipelines_stay_within_the_limit_and_every_item_gets_through(tmp_path):
    bounded = _crawl(5, tmp_path)
    assert bounded["done"] == 60 and bounded["held"] > 0, bounded
    assert bounded["most"] <= 5 + 2, bounded  # the limit + the requests already downloading
    unbounded = _crawl(0, tmp_path)  # 0: the middleware is off (Scrapy's own bounds only)
    assert unbounded["done"] == 60 and unbounded["most"] > 30, unbounded


@pytest.mark.parametrize(("limit", "error"), [(0, NotConfigured), (-1, ValueError)])
def test_pages_in_flight_limit_off_or_wrong(limit, error):
    crawler = SimpleNamespace(settings=Settings({"PAGES_IN_FLIGHT_MAX": limit}))
    with pytest.raises(error):
        PagesInFlightLimit.from_crawler(crawler)
