"""Photos of feed offers: fetched over HTTP, from file:// URLs and local paths, stored as the
crawl's images pipeline stores them; a bad photo is reported and loses only itself."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from PIL import Image

from cumpair.ingest.images import ImageOptions, fetch_images, image_file_name

PHOTO = Path(__file__).parent / "fixtures" / "feeds" / "photo.png"


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on localhost serving `tmp_path / "site"`; yields its base URL."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "photo.png").write_bytes(PHOTO.read_bytes())
    (site / "page.html").write_text("<html>not a photo</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_photos_from_http_file_urls_and_paths_are_stored_as_rgb_jpegs(tmp_path, http_root):
    images = tmp_path / "images"
    urls = [f"{http_root}/photo.png", PHOTO.as_uri(), "photo.png"]
    fetched = fetch_images(urls, images, PHOTO.parent)
    assert fetched.errors == [] and fetched.sources == urls
    assert fetched.paths[0] == f"full/{hashlib.sha1(urls[0].encode()).hexdigest()}.jpg"
    assert fetched.paths[1] == fetched.paths[2] == image_file_name(PHOTO.as_uri())
    with Image.open(images / fetched.paths[0]) as stored:
        assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (96, 96))


def test_a_bad_photo_is_reported_and_the_others_kept(tmp_path, http_root):
    urls = [f"{http_root}/missing.jpg", f"{http_root}/page.html", "nope.png", "photo.png"]
    fetched = fetch_images(urls, tmp_path / "images", PHOTO.parent)
    assert fetched.sources == ["photo.png"]
    assert [e.split(": ")[0] for e in fetched.errors] == urls[:3]
    assert "HTTPError" in fetched.errors[0] and "UnidentifiedImageError" in fetched.errors[1]
    assert not list((tmp_path / "images").rglob("*.tmp"))


def test_oversized_photos_are_refused_and_stored_ones_not_fetched_again(tmp_path, http_root):
    images = tmp_path / "images"
    small = ImageOptions(max_bytes=100)
    assert (
        "larger than 100 bytes"
        in fetch_images(["photo.png"], images, PHOTO.parent, small).errors[0]
    )
    url = f"{http_root}/photo.png"
    first = fetch_images([url], images, PHOTO.parent)
    (tmp_path / "site" / "photo.png").unlink()  # a second ingest finds the stored file
    assert fetch_images([url], images, PHOTO.parent).paths == first.paths
