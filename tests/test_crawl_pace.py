"""A crawl's pace: which answers set AutoThrottle's delay per host, what the browser of a
JavaScript shop leaves unloaded (cumpair_scraper/throttle.py, cumpair_scraper/browser.py), and
whether the index stage can fill an embedding batch.

(A real crawl fetching each demo photo once is in test_crawl.py.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scrapy import Request, Spider
from scrapy.core.downloader import Slot
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from cumpair_scraper import settings as project_settings
from cumpair_scraper.browser import skip_media
from cumpair_scraper.throttle import RevalidationAwareAutoThrottle

HOST = "shop.test"
SPIDER = Spider("shop")


def _throttled(**settings: object) -> tuple[RevalidationAwareAutoThrottle, Slot]:
    """The project's throttle over one host's download slot, its delay at 0.9 s (as a slow
    browser-rendered page leaves it)."""
    defaults = {"AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_TARGET_CONCURRENCY": 2.0}
    crawler = get_crawler(Spider, {**defaults, **settings})
    throttle = RevalidationAwareAutoThrottle.from_crawler(crawler)
    slot = Slot(concurrency=4, delay=0.0, jitter=0.0)
    crawler.engine = SimpleNamespace(downloader=SimpleNamespace(slots={HOST: slot}, _delay=None))
    throttle._spider_opened(SPIDER)  # what the spider_opened signal runs
    slot.delay = 0.9
    return throttle, slot


def _answer(throttle: RevalidationAwareAutoThrottle, status: int, latency: float) -> None:
    """One answer from the host, as the response_downloaded signal hands it to the throttle."""
    request = Request(f"http://{HOST}/images/a.jpg", meta={"download_slot": HOST})
    request.meta["download_latency"] = latency
    response = Response(request.url, status=status, request=request)
    throttle._response_downloaded(response, request, SPIDER)


def test_fast_304s_to_revalidated_photos_bring_a_hosts_delay_down():
    throttle, slot = _throttled()
    for _ in range(4):
        _answer(throttle, 304, 0.01)
    assert slot.delay < 0.1  # halved per answer toward latency / target concurrency


@pytest.mark.parametrize("none", [[], ""])  # "": `-s AUTOTHROTTLE_LEARN_STATUSES=`
def test_without_learnt_statuses_a_304_keeps_scrapys_rule_and_cannot_lower_the_delay(none):
    throttle, slot = _throttled(AUTOTHROTTLE_LEARN_STATUSES=none)
    for _ in range(4):
        _answer(throttle, 304, 0.01)
    assert slot.delay == 0.9


def test_fast_error_answers_still_cannot_lower_the_delay_but_slow_ones_raise_it():
    throttle, slot = _throttled()
    _answer(throttle, 503, 0.01)
    assert slot.delay == 0.9
    _answer(throttle, 503, 4.0)
    assert slot.delay == pytest.approx(2.0)  # latency / AUTOTHROTTLE_TARGET_CONCURRENCY (2)


def test_a_status_list_that_is_not_status_codes_is_a_clear_error():
    crawler = get_crawler(
        Spider, {"AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_LEARN_STATUSES": ["not-modified"]}
    )
    with pytest.raises(ValueError, match="AUTOTHROTTLE_LEARN_STATUSES"):
        RevalidationAwareAutoThrottle(crawler)


def test_the_project_runs_this_throttle_instead_of_scrapys():
    extensions = project_settings.EXTENSIONS
    assert extensions["scrapy.extensions.throttle.AutoThrottle"] is None
    assert "cumpair_scraper.throttle.RevalidationAwareAutoThrottle" in extensions
    assert project_settings.AUTOTHROTTLE_LEARN_STATUSES == [304]


@pytest.mark.parametrize(
    ("resource_type", "skipped"),
    [("image", True), ("media", True), ("font", True), ("document", False),
     ("script", False), ("fetch", False), ("xhr", False), ("stylesheet", False)],
)  # fmt: skip
def test_the_browser_skips_media_but_loads_what_renders_the_dom(resource_type, skipped):
    assert skip_media(SimpleNamespace(resource_type=resource_type)) is skipped
    assert project_settings.PLAYWRIGHT_ABORT_REQUEST == "cumpair_scraper.browser.skip_media"


def test_the_index_stage_holds_enough_items_to_fill_an_embedding_batch():
    """Each index worker waits on its own item's vectors: with fewer workers than inputs in a
    batch (an item has at least one), no batch fills and each waits EMBED_MAX_WAIT."""
    assert project_settings.INDEX_WORKERS >= project_settings.EMBED_BATCH_SIZE
