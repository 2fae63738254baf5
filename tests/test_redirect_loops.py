"""The loop-aware redirect middlewares on their own: which chains are loops and which are not.

(A real crawl through a looping shop is in test_crawl_limits.py.)
"""

from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler

from cumpair_scraper.middlewares.redirects import (
    LoopAwareMetaRefreshMiddleware,
    LoopAwareRedirectMiddleware,
)


@pytest.fixture
def crawler():
    return get_crawler()


def _follow(middleware, request: Request, status: int, location: str) -> Request:
    response = Response(request.url, status=status, headers={"Location": location})
    return middleware.process_response(request, response)


def test_a_chain_back_to_its_first_url_is_dropped_and_counted(crawler):
    middleware = LoopAwareRedirectMiddleware.from_crawler(crawler)
    b = _follow(middleware, Request("http://shop.test/a"), 302, "/b")
    c = _follow(middleware, b, 302, "/c")
    with pytest.raises(IgnoreRequest, match="redirect loop"):
        _follow(middleware, c, 302, "/a")
    assert crawler.stats.get_value("redirect/loop") == 1


def test_a_loop_is_caught_even_for_requests_that_skip_the_duplicate_filter(crawler):
    middleware = LoopAwareRedirectMiddleware.from_crawler(crawler)
    b = _follow(middleware, Request("http://shop.test/a", dont_filter=True), 301, "/b")
    with pytest.raises(IgnoreRequest):
        _follow(middleware, b, 301, "/a")


def test_a_post_redirected_to_the_same_url_as_a_get_is_no_loop(crawler):
    middleware = LoopAwareRedirectMiddleware.from_crawler(crawler)
    form = Request("http://shop.test/basket", method="POST", body=b"add=1")
    followed = _follow(middleware, form, 303, "/basket")
    assert (followed.method, followed.url) == ("GET", "http://shop.test/basket")
    assert crawler.stats.get_value("redirect/loop") is None


def test_a_chain_that_only_passes_through_other_urls_is_followed(crawler):
    middleware = LoopAwareRedirectMiddleware.from_crawler(crawler)
    request = Request("http://shop.test/old-1")
    for hop in ("/old-2", "/old-3", "/product/1"):
        request = _follow(middleware, request, 301, hop)
    assert request.url == "http://shop.test/product/1"
    assert request.meta["redirect_urls"][0] == "http://shop.test/old-1"


def test_a_meta_refresh_loop_is_dropped(crawler):
    middleware = LoopAwareMetaRefreshMiddleware.from_crawler(crawler)

    def refresh(request: Request, target: str) -> Request:
        body = f'<html><head><meta http-equiv="refresh" content="0;url={target}"></head></html>'
        return middleware.process_response(
            request, HtmlResponse(request.url, body=body.encode(), encoding="utf-8")
        )

    b = refresh(Request("http://shop.test/a"), "/b")
    with pytest.raises(IgnoreRequest):
        refresh(b, "/a")
    assert crawler.stats.get_value("redirect/loop") == 1
