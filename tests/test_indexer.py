"""`cumpair indexer` beyond the crawl tests of test_distributed.py: photos read from the crawl's
image store (FTP here, for real), and the indexer's own loop against a real Redis.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from PIL import Image

from captcha_server.redis_runner import RedisRunner
from cumpair.embed import load_encoders
from cumpair.index import ProductStore
from cumpair.indexer.stream import ItemStream
from cumpair.indexer.worker import Indexer, IndexerOptions
from cumpair.stored_images import ImageStoreOptions
from tests.ftp_fixtures import PASSWORD, USER, ftp_server


@pytest.fixture
def redis_url(tmp_path):
    runner = RedisRunner(tmp_path / "redis")
    runner.start()
    yield runner.url
    runner.stop()


@pytest.fixture(scope="module")
def encoders():
    return load_encoders("offline", backend="torch", threads=1)


def photo(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 96), color).save(out, "JPEG")
    return out.getvalue()


def item(n: int, *paths: str) -> dict:
    return {
        "shop": "northwind",
        "url": f"https://northwind.example/p/{n}",
        "title": f"Widget {n} 500 ml",
        "price": Decimal("9.99"),
        "currency": "EUR",
        "images": [{"url": f"https://northwind.example/img/{p}", "path": p} for p in paths],
    }


@pytest.mark.slow
@pytest.mark.integration
def test_the_indexer_reads_photos_through_the_crawls_ftp_image_store(redis_url, encoders, tmp_path):
    """The photos live on an FTP server only (IMAGES_STORE=ftp://...): the indexer embeds them
    from there, the record keeps their FTP reference, and a missing one costs only its vector."""
    root = tmp_path / "ftproot"
    (root / "images" / "full").mkdir(parents=True)
    (root / "images" / "full" / "red.jpg").write_bytes(photo((200, 20, 20)))
    (root / "images" / "full" / "blue.jpg").write_bytes(photo((20, 20, 200)))
    stream = ItemStream.from_url(redis_url)
    stream.add(item(1, "full/red.jpg", "full/blue.jpg"))
    stream.add(item(2, "full/gone.jpg"))
    with ftp_server(root) as port:
        uri = f"ftp://127.0.0.1:{port}/images"
        options = IndexerOptions(
            images=uri,
            image_store=ImageStoreOptions(ftp_user=USER, ftp_password=PASSWORD),
            ocr=False,
            exit_when_idle_s=0.5,
            regroup_idle_s=0,
        )
        report = Indexer(tmp_path / "data", stream, encoders, options).run()
    assert (report.new, report.image_errors) == (2, 1)
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        offers = {r.url.rsplit("/", 1)[1]: r for r in store.get_offers(range(1, 10)).values()}
        assert offers["1"].image_paths == (f"{uri}/full/red.jpg", f"{uri}/full/blue.jpg")
        assert offers["2"].image_paths == (f"{uri}/full/gone.jpg",)
        assert store.count("image") == 2  # both photos of offer 1, none of offer 2


def test_an_unreadable_image_store_stops_the_indexer_before_it_reads_anything(tmp_path):
    from cumpair.stored_images import ImageStoreError

    stream = ItemStream.from_url("redis://127.0.0.1:1/0")  # never contacted
    with pytest.raises(ImageStoreError, match="sftp"):
        Indexer(tmp_path, stream, encoders=None, options=IndexerOptions(images="sftp://h/x"))
