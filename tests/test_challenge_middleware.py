"""ChallengeMiddleware in real Scrapy crawls of the demo shops' challenge pages.

Each crawl runs in a subprocess (a fresh Twisted reactor) with a tiny spider that fetches a
few product pages; the test reads the crawl's items and stats and the shop's request log.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from captcha_server.redis_runner import free_port
from tests.captcha_fixtures import KEY, ROOT, _env, captcha_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CRAWL = r"""
import json, sys
import scrapy
from scrapy.crawler import CrawlerProcess

urls, settings, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
items = []

class Products(scrapy.Spider):
    name = "products"
    start_urls = urls

    def parse(self, response):
        items.append({"url": response.url, "title": response.css("title::text").get()})

process = CrawlerProcess({
    "LOG_LEVEL": "INFO",
    "ROBOTSTXT_OBEY": True,
    "COOKIES_ENABLED": True,
    "DOWNLOAD_DELAY": 0,
    "DOWNLOADER_MIDDLEWARES": {"cumpair_scraper.middlewares.challenge.ChallengeMiddleware": 560},
    **settings,
})
crawler = process.create_crawler(Products)
process.crawl(crawler)
process.start()
json.dump({"items": items, "stats": crawler.stats.get_stats()}, open(out, "w"), default=str)
"""

FAST = {"CHALLENGE_BACKOFF_BASE": 0.2, "CHALLENGE_MAX_RETRIES": 3, "CAPTCHA_POLL_INTERVAL": 0.1}


def crawl(tmp_path: Path, urls: list[str], **settings) -> tuple[list[dict], dict]:
    out = tmp_path / "crawl.json"
    proc = subprocess.run(
        [sys.executable, "-c", CRAWL, json.dumps(urls), json.dumps({**FAST, **settings}), str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    assert "Unclosed client session" not in proc.stderr  # the OCR client is closed with the spider
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    return data["items"], data["stats"]


def product_urls(server, shop: str = "northwind", n: int = 3) -> list[str]:
    offers = server.catalog.offers_by_shop(shop)[:n]
    return [server.base_url(shop) + offer.url_path for offer in offers]


def captcha_hits(server) -> list[str]:
    return [f"{h.method} {h.path}" for h in server.hits if h.path.startswith("/challenge")]


def test_authorized_host_is_solved_through_the_ocr_server_and_the_crawl_resumes(
    tmp_path, demo_server_factory
):
    shop = demo_server_factory(challenge="solve", challenge_shops=("northwind",))
    urls = product_urls(shop)
    with captcha_server(tmp_path) as ocr:
        items, stats = crawl(
            tmp_path,
            urls,
            CAPTCHA_AUTHORIZED_HOSTS=["127.0.0.21"],
            CAPTCHA_SERVER_URL=ocr.base,
            CAPTCHA_API_KEY=KEY,
        )
        ocr_stats = ocr.get("/stats", params={"key": KEY}).json()
    assert sorted(i["url"] for i in items) == sorted(urls)
    assert all("Security check" not in (i["title"] or "") for i in items)
    assert stats["challenge/solved"] >= 1 and "challenge/gave_up" not in stats
    assert "challenge/backoff" not in stats  # solved, not waited out
    assert ocr_stats["solved"] >= stats["challenge/solved"]
    assert ocr_stats["reported_good"] == stats["challenge/solved"]
    assert any(h.startswith("POST /challenge") for h in captcha_hits(shop))


def test_authorized_host_is_solved_in_process_without_a_server(tmp_path, demo_server_factory):
    shop = demo_server_factory(challenge="solve", challenge_shops=("northwind",))
    urls = product_urls(shop, n=2)
    items, stats = crawl(tmp_path, urls, CAPTCHA_AUTHORIZED_HOSTS=["127.0.0.21"])
    assert sorted(i["url"] for i in items) == sorted(urls)
    assert stats["challenge/solved"] >= 1


def test_unauthorized_host_is_backed_off_never_solved_and_given_up(tmp_path, demo_server_factory):
    shop = demo_server_factory(challenge="solve", challenge_shops=("northwind",))
    urls = product_urls(shop, n=2)
    items, stats = crawl(tmp_path, urls)
    assert items == []
    assert stats["challenge/detected"] == 2 * 4  # first try + CHALLENGE_MAX_RETRIES each
    assert stats["challenge/backoff"] == 2 * 3 and stats["challenge/gave_up"] == 2
    assert stats["challenge/max_delay"] == pytest.approx(0.2 * 2**2)
    assert captcha_hits(shop) == []  # the captcha was never even fetched


def test_a_host_that_challenges_once_is_retried_later_and_crawled(tmp_path, demo_server_factory):
    shop = demo_server_factory(challenge="first", challenge_shops=("northwind",))
    urls = product_urls(shop)
    items, stats = crawl(tmp_path, urls)
    assert sorted(i["url"] for i in items) == sorted(urls)
    assert stats["challenge/backoff"] == 3 and "challenge/gave_up" not in stats
    assert captcha_hits(shop) == []


class _RecaptchaPage(http.server.BaseHTTPRequestHandler):
    """A third-party challenge that also carries a captcha-like form: must never be attempted."""

    seen: list[str] = []

    def do_GET(self):
        type(self).seen.append(self.path)
        if self.path == "/robots.txt":
            self.send_response(404)
            self.end_headers()
            return
        body = (
            b"<html><head><title>Security check</title>"
            b"<script src='https://www.google.com/recaptcha/api.js'></script></head><body>"
            b"<form id='challenge' method='post' action='/challenge'>"
            b"<img class='captcha' src='/challenge/x.png'><div class='g-recaptcha'></div>"
            b"<input name='answer'></form></body></html>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_third_party_challenges_are_always_backed_off_even_for_authorized_hosts(tmp_path):
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _RecaptchaPage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        items, stats = crawl(
            tmp_path, [f"http://127.0.0.1:{port}/p/1"], CAPTCHA_AUTHORIZED_HOSTS=["127.0.0.1"]
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert items == []
    assert stats["challenge/third_party"] == 4 and stats["challenge/gave_up"] == 1
    assert not [p for p in _RecaptchaPage.seen if p.startswith("/challenge")]
