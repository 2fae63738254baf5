"""Stored product images are asked for conditionally: an unchanged one costs a 304 and keeps
its stored file and checksum, a changed one under the same URL is downloaded again."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from scrapy import Spider
from scrapy.utils.test import get_crawler

from cumpair_scraper.pipelines.image_validators import fresh_until
from cumpair_scraper.pipelines.images import ProductImagesPipeline

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "PNG")
    return buffer.getvalue()


class _Shop(BaseHTTPRequestHandler):
    """One product page and its photo, which honours If-None-Match."""

    photo = _png((200, 30, 30))
    answers: list[int] = []
    cache_control: str | None = None  # sent with the photo's 200s and 304s
    age: str | None = None

    def do_GET(self) -> None:
        if self.path == "/":
            body = b'<a class="product" href="/p/1.html">x</a>'
        elif self.path == "/p/1.html":
            body = (
                b'<h1 class="t">Red mug</h1><span class="p">9.99</span>'
                b'<img class="g" src="/img/mug.png">'
            )
        elif self.path == "/img/mug.png":
            etag = f'"{hash(self.photo) & 0xFFFFFFFF:x}"'
            status = 304 if self.headers.get("If-None-Match") == etag else 200
            type(self).answers.append(status)
            self.send_response(status)
            self.send_header("ETag", etag)
            if self.cache_control:
                self.send_header("Cache-Control", self.cache_control)
            if self.age:
                self.send_header("Age", self.age)
            if status == 304:
                self.end_headers()
                return
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.photo)))
            self.end_headers()
            self.wfile.write(self.photo)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _crawl(tmp: Path, shops: Path, run: int, *settings: str) -> tuple[dict, dict]:
    feed, stats = tmp / f"items{run}.jsonl", tmp / f"stats{run}.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "scrapy", "crawl", "mugs", "-O", str(feed),
            "-s", f"SHOP_CONFIG_DIRS={shops}", "-s", f"INDEX_DATA_DIR={tmp / 'data'}",
            "-s", "SPECS_ENABLED=False", "-s", "INDEX_ENABLED=False",
            "-s", f"LOG_FILE={tmp / f'crawl{run}.log'}",
            "-s", "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s", f"STATS_DUMP_FILE={stats}",
            *(arg for setting in settings for arg in ("-s", setting)),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (item,) = [json.loads(line) for line in feed.read_text().splitlines()]
    return item, json.loads(stats.read_text())


def _shop(tmp_path: Path) -> tuple[ThreadingHTTPServer, Path]:
    """The one-product shop served on a spare port, and a folder with its shop config."""
    _Shop.photo, _Shop.answers = _png((200, 30, 30)), []
    _Shop.cache_control = _Shop.age = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shops = tmp_path / "shops"
    shops.mkdir()
    (shops / "mugs.toml").write_text(
        f'name = "mugs"\nstart_urls = ["{base}/"]\ndefault_currency = "EUR"\n'
        '[links]\nproduct = "a.product"\n'
        '[fields]\ntitle = "h1.t::text"\nprice = "span.p::text"\nimages = "img.g::attr(src)"\n'
    )
    return server, shops


def test_unchanged_images_cost_a_304_and_changed_ones_are_downloaded(tmp_path):
    server, shops = _shop(tmp_path)
    try:
        first, first_stats = _crawl(tmp_path, shops, 1)
        second, second_stats = _crawl(tmp_path, shops, 2)
        _Shop.photo = _png((30, 30, 200))  # a new photo under the same URL
        third, third_stats = _crawl(tmp_path, shops, 3)
    finally:
        server.shutdown()
        server.server_close()
    assert _Shop.answers == [200, 304, 200]
    assert first_stats["file_status_count/downloaded"] == 1
    assert second_stats["file_status_count/revalidated"] == 1
    assert "file_status_count/downloaded" not in second_stats
    kept = [{k: image[k] for k in ("url", "path", "checksum")} for image in second["images"]]
    assert kept == [{k: image[k] for k in ("url", "path", "checksum")} for image in first["images"]]
    assert second["images"][0]["status"] == "uptodate"  # same path and checksum: cache hits
    assert third_stats["file_status_count/downloaded"] == 1
    assert third["images"][0]["path"] == first["images"][0]["path"]
    assert third["images"][0]["checksum"] != first["images"][0]["checksum"]
    assert first_stats["stage/download_s"] > 0


def test_an_expiry_in_hours_spares_the_request_for_a_recently_stored_photo(tmp_path):
    """IMAGES_EXPIRES_HOURS: a recrawl within the hours sends no photo request (the trade-off:
    a photo replaced meanwhile under the same URL is not seen), then asks again after them."""
    server, shops = _shop(tmp_path)
    try:
        first, _ = _crawl(tmp_path, shops, 1, "IMAGES_EXPIRES_HOURS=1")
        _Shop.photo = _png((30, 30, 200))  # replaced: not seen within the hour
        second, second_stats = _crawl(tmp_path, shops, 2, "IMAGES_EXPIRES_HOURS=1")
        third, third_stats = _crawl(tmp_path, shops, 3, "IMAGES_EXPIRES_HOURS=0")
    finally:
        server.shutdown()
        server.server_close()
    assert _Shop.answers == [200, 200]  # the first crawl's and the third's: none in between
    assert second_stats["file_status_count/uptodate"] == 1
    assert second["images"][0]["checksum"] == first["images"][0]["checksum"]
    assert third_stats["file_status_count/downloaded"] == 1
    assert third["images"][0]["checksum"] != first["images"][0]["checksum"]


def test_a_photo_fresh_by_its_max_age_is_not_asked_for_and_a_304_renews_its_freshness(tmp_path):
    """RFC 9111 freshness: a stored response that is stale (its Age used up its max-age) is
    revalidated; the 304's own max-age makes it fresh again, and while fresh no request is sent
    (the trade-off: a photo replaced under the same URL meanwhile is seen once it is stale)."""
    server, shops = _shop(tmp_path)
    try:
        _Shop.cache_control = "public, max-age=3600"
        _Shop.age = "3599"  # a CDN's copy with one second left
        first, _ = _crawl(tmp_path, shops, 1)
        time.sleep(1.0)
        _Shop.age = None
        _, second_stats = _crawl(tmp_path, shops, 2)  # stale: a 304 that says an hour
        _Shop.photo = _png((30, 30, 200))  # replaced under the same URL while fresh
        third, third_stats = _crawl(tmp_path, shops, 3)
    finally:
        server.shutdown()
        server.server_close()
    assert _Shop.answers == [200, 304]  # the third crawl asked for nothing
    assert second_stats["file_status_count/revalidated"] == 1
    assert "file_status_count/fresh" not in second_stats
    assert third_stats["file_status_count/fresh"] == 1
    assert third["images"][0]["path"] == first["images"][0]["path"]
    assert third["images"][0]["checksum"] == first["images"][0]["checksum"]


def test_a_crawl_without_freshness_keeps_what_its_304s_said_for_the_next_crawl(tmp_path):
    server, shops = _shop(tmp_path)
    try:
        _Shop.cache_control = "public, max-age=3600"
        _crawl(tmp_path, shops, 1)
        _crawl(tmp_path, shops, 2, "IMAGES_HTTP_FRESHNESS=False")  # revalidates: a 304
        _, third_stats = _crawl(tmp_path, shops, 3)
    finally:
        server.shutdown()
        server.server_close()
    assert _Shop.answers == [200, 304]
    assert third_stats["file_status_count/fresh"] == 1


def test_no_cache_and_no_lifetime_revalidate_while_expires_gives_freshness():
    now = 1_000_000.0
    date = formatdate(now - 10, usegmt=True)
    headers = {"Date": date, "Expires": formatdate(now + 50, usegmt=True)}
    assert fresh_until(headers.get, now) == pytest.approx(now + 50, abs=1)
    assert fresh_until({"Cache-Control": "max-age=60", "Age": "20"}.get, now) == now + 40
    assert fresh_until({"Cache-Control": "max-age=60", "Date": date}.get, now) == now + 50
    assert fresh_until({"Cache-Control": "no-cache, max-age=60"}.get, now) is None
    assert fresh_until({"Cache-Control": "no-store"}.get, now) is None
    assert fresh_until({"Cache-Control": "max-age=10", "Age": "30"}.get, now) is None
    assert fresh_until({"Expires": "0"}.get, now) is None  # invalid Expires: already stale
    assert fresh_until({"ETag": '"x"'}.get, now) is None  # no lifetime: no heuristic one


def test_a_negative_expiry_in_hours_is_a_clear_error(tmp_path):
    crawler = get_crawler(Spider, {"INDEX_DATA_DIR": str(tmp_path), "IMAGES_EXPIRES_HOURS": "-2"})
    with pytest.raises(ValueError, match="IMAGES_EXPIRES_HOURS must not be negative"):
        ProductImagesPipeline.from_crawler(crawler)


def test_http_dates_are_utc_in_every_form_and_delta_seconds_are_ascii_digits(monkeypatch):
    """asctime's HTTP-date names no zone but is UTC (RFC 9110 5.6.7); Python reads it as local
    time. A max-age of non-ASCII digits is invalid (stale), not a crash of the photo's item."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # 9 h ahead: a date read as local is 9 h early
    time.tzset()
    try:
        now = 784_111_777.0  # Sun, 06 Nov 1994 08:49:37 GMT
        headers = {"Expires": "Sun Nov  6 09:49:37 1994"}
        assert fresh_until(headers.get, now) == pytest.approx(now + 3600, abs=1)
        headers = {"Cache-Control": "max-age=3600", "Date": "Sun Nov  6 08:49:37 1994"}
        assert fresh_until(headers.get, now) == pytest.approx(now + 3600, abs=1)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert fresh_until({"Cache-Control": "max-age=\u00b2"}.get, now) is None


def test_a_cache_control_on_two_lines_is_both_and_age_is_its_first_value(tmp_path):
    """A response's Cache-Control lines make one list (RFC 9110 5.3): ``no-store`` on the first
    and ``max-age`` on the last is no-store; of two Age values the first counts (9111 5.1)."""
    from scrapy import Request
    from scrapy.http import Headers, Response

    crawler = get_crawler(Spider, {"INDEX_DATA_DIR": str(tmp_path)})
    pipeline = ProductImagesPipeline.from_crawler(crawler)
    url = "http://shop.example/img.png"

    def fresh(*headers: tuple[str, str]) -> float | None:
        response = Response(url, headers=Headers(list(headers)), request=Request(url))
        return pipeline._fresh_until(response)

    assert fresh(("Cache-Control", "no-store"), ("Cache-Control", "max-age=3600")) is None
    assert fresh(("Cache-Control", "public"), ("Cache-Control", "max-age=3600")) is not None
    until = fresh(("Cache-Control", "max-age=3600"), ("Age", "3000"), ("Age", "5"))
    assert until == pytest.approx(time.time() + 600, abs=5)
