"""A real `scrapy crawl` of a hostile little shop: oversized pages, a gzip bomb, a huge image,
a redirect loop, all on loopback; and, on a machine without tldextract's cache, no download of
the public suffix list.

The shop is a plain `http.server` (it must send what no well-behaved server would); the crawl
runs the project's own spider, settings and middlewares in a subprocess, with the OCR and index
stages off (they are not what is tested, and they load models).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _product(title: str, *images: str, padding: int = 0) -> bytes:
    gallery = "".join(f'<img class="gallery" src="{src}">' for src in images)
    return (
        f"<html><head><title>{title}</title></head><body><h1 class='prod-title'>{title}</h1>"
        f"<span class='prod-price'>19.99</span>{gallery}<!-- {' ' * padding} --></body></html>"
    ).encode()


def _png(padding: int) -> bytes:
    """A valid 64x64 PNG followed by `padding` bytes (Pillow stops reading at its end)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue() + b"\0" * padding


PAGES = {
    "/p/ok": _product("Plain offer", "/img/ok.png"),
    # An image over the page limit but within the image limit is kept; one past it is dropped.
    "/p/photos": _product("Offer with big photos", "/img/wide.png", "/img/huge.png"),
    "/p/big": _product("Oversized page", padding=20 * MiB),  # says its size up front
}
STREAMED = {"/p/stream": _product("Oversized page, no Content-Length", padding=20 * MiB)}
GZIPPED = {"/p/bomb": gzip.compress(_product("Gzip bomb", padding=64 * MiB), 9)}
IMAGES = {"/img/ok.png": _png(0), "/img/wide.png": _png(20 * MiB), "/img/huge.png": _png(40 * MiB)}
REDIRECTS = {"/p/loop-a": "/p/loop-b", "/p/loop-b": "/p/loop-a"}
LISTING = "".join(
    f'<a class="product" href="{path}">{path}</a>'
    for path in [*PAGES, *STREAMED, *GZIPPED, "/p/loop-a"]
).encode()


class _Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cookies_sent_back: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Cookie"):
            type(self).cookies_sent_back.append(self.path)
        if self.path in REDIRECTS:
            self._send(302, b"", Location=REDIRECTS[self.path])
        elif self.path == "/":
            self._send(200, LISTING, **{"Set-Cookie": "visitor=1; Path=/"})
        elif self.path in PAGES:
            self._send(200, PAGES[self.path])
        elif self.path in GZIPPED:
            self._send(200, GZIPPED[self.path], **{"Content-Encoding": "gzip"})
        elif self.path in IMAGES:
            self._send(200, IMAGES[self.path], **{"Content-Type": "image/png"})
        elif self.path in STREAMED:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            self._write(STREAMED[self.path])
            self.close_connection = True
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Type", "text/html")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _write(self, body: bytes) -> None:
        try:
            self.wfile.write(body)
        except OSError:  # the crawler hung up on a body over its limit: that is the point
            self.close_connection = True


class _Recorder(threading.Thread):
    """A 'proxy' that only counts who tries to reach the internet through it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Iterator[dict]:
    """One crawl of the hostile shop with an empty tldextract cache and the internet blocked."""
    tmp = tmp_path_factory.mktemp("limits")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shops = tmp / "shops"
    shops.mkdir()
    (shops / "hostile.toml").write_text(
        f'name = "hostile"\nstart_urls = ["{base}/"]\ndefault_currency = "EUR"\n'
        '[links]\nproduct = "a.product"\n'
        '[fields]\ntitle = "h1.prod-title::text"\nprice = "span.prod-price::text"\n'
        'images = "img.gallery::attr(src)"\n'
    )
    recorder = _Recorder()
    recorder.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLDEXTRACT_")}
    proxy = f"http://127.0.0.1:{recorder.port}"
    env.update(TLDEXTRACT_CACHE=str(tmp / "tldextract"), HTTPS_PROXY=proxy, https_proxy=proxy)
    feed, stats, log = tmp / "items.jsonl", tmp / "stats.json", tmp / "crawl.log"
    result = subprocess.run(
        [
            sys.executable, "-m", "scrapy", "crawl", "hostile", "-O", str(feed),
            "-s", f"SHOP_CONFIG_DIRS={shops}", "-s", f"INDEX_DATA_DIR={tmp / 'data'}",
            "-s", "SPECS_ENABLED=False", "-s", "INDEX_ENABLED=False",
            "-s", f"LOG_FILE={log}", "-s", "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s", f"STATS_DUMP_FILE={stats}",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    server.shutdown()
    server.server_close()
    recorder.socket.close()
    log_text = log.read_text() if log.exists() else ""
    assert result.returncode == 0, result.stderr[-3000:] + log_text[-3000:]
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    yield {
        "base": base,
        "items": {item["url"]: item for item in items},
        "stats": json.loads(stats.read_text()),
        "log": log_text,
        "internet_attempts": recorder.connections,
        "cookies_sent_back": list(_Shop.cookies_sent_back),
    }


def test_oversized_pages_and_a_gzip_bomb_are_dropped_never_items(crawl):
    base = crawl["base"]
    assert set(crawl["items"]) == {base + "/p/ok", base + "/p/photos"}
    stats = crawl["stats"]
    assert stats["download_limits/decompressed_too_big"] == 1  # the bomb stopped inflating
    # /p/big (by Content-Length), /p/stream (as it arrived) and the 40 MiB photo
    assert stats["download_limits/too_big"] == 3
    for path in ("/p/big", "/p/stream"):
        assert f"Dropped <GET {base}{path}>: its body is over the 16777216-byte" in crawl["log"]
    assert f"<200 {base}/p/bomb> because its body" in crawl["log"]  # Scrapy's own reason


def test_images_have_their_own_limit(crawl):
    photos = crawl["items"][crawl["base"] + "/p/photos"]
    assert [image["url"] for image in photos["images"]] == [crawl["base"] + "/img/wide.png"]
    huge = crawl["base"] + "/img/huge.png"
    assert f"Dropped <GET {huge}>: its body is over the 33554432-byte" in crawl["log"]


def test_a_redirect_loop_is_logged_and_counted(crawl):
    base = crawl["base"]
    assert crawl["stats"]["redirect/loop"] == 1
    loop = f"{base}/p/loop-a -> {base}/p/loop-b -> {base}/p/loop-a"
    assert f"Dropped a redirect loop: {loop}" in crawl["log"]


def test_drops_are_warnings_not_errors(crawl):
    assert "Traceback" not in crawl["log"]
    assert "log_count/ERROR" not in crawl["stats"]


def test_no_suffix_list_download_without_a_tldextract_cache(crawl):
    assert crawl["cookies_sent_back"]  # the cookie middleware did handle the shop's cookie
    assert crawl["internet_attempts"] == 0
    assert "Public Suffix List" not in crawl["log"]
