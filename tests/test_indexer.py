"""`cumpair indexer` beyond the crawl tests of test_distributed.py, against a real Redis: photos
read from the crawl's image store (FTP here, for real), the vision stage in worker processes,
the regroup a killed indexer owed, and the price-alerts pass after the regroup.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from captcha_server.redis_runner import RedisRunner
from cumpair.embed import load_encoders
from cumpair.index import ProductStore
from cumpair.indexer.stream import ItemStream
from cumpair.indexer.vision import default_vision_processes
from cumpair.indexer.worker import Indexer, IndexerOptions
from cumpair.stored_images import ImageStoreOptions
from tests.ftp_fixtures import PASSWORD, USER, ftp_server
from tests.model_fixtures import with_installed_models

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.slow
@pytest.mark.integration
def test_a_page_handed_over_twice_in_one_crawl_run_is_indexed_once_even_in_one_batch(
    redis_url, encoders, tmp_path
):
    """A killed crawler's page is crawled again by another: both entries can come in one
    batch, before either is recorded for its run. One price point; another run's is new."""
    stream = ItemStream.from_url(redis_url)
    for run in ("r1", "r1", "r1", "r2"):
        stream.add(item(1), run=run)
    stream.add(item(2), run="r1")
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    report = Indexer(tmp_path / "data", stream, encoders, options).run()
    assert (report.new, report.updated, report.repeated) == (2, 1, 2)
    assert stream.backlog() == 0
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        offers = store.get_offers(range(1, 10))
        history = {offers[i].url[-1]: len(store.price_history(i)) for i in offers}
        assert history == {"1": 2, "2": 1}  # one point for run r1, one for r2


@pytest.mark.slow
@pytest.mark.integration
def test_a_later_copy_of_an_offer_whose_first_copy_in_the_batch_was_invalid_is_indexed(
    redis_url, encoders, tmp_path
):
    """The first copy of an offer in a batch is refused by the store (a currency that is no
    ISO code); the later copy of the same run is no repeat of a stored sighting: indexed."""
    stream = ItemStream.from_url(redis_url)
    stream.add({**item(1), "currency": "EURO"}, run="r1")
    stream.add(item(1), run="r1")
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    report = Indexer(tmp_path / "data", stream, encoders, options).run()
    assert (report.new, report.repeated, dict(report.rejected)) == (1, 0, {"invalid offer": 1})
    assert stream.backlog() == 0
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        (record,) = store.get_offers(range(1, 10)).values()
        assert record.currency == "EUR"


@pytest.mark.slow
@pytest.mark.integration
def test_an_entry_whose_crawled_at_is_no_time_is_kept_aside_and_the_rest_are_indexed(
    redis_url, encoders, tmp_path
):
    """A crawled_at that is not an ISO time is an invalid offer: kept in the dead-letter stream
    with the reason, the entries after it indexed (it used to raise ValueError out of the
    indexer, and the same entry, read first on every restart, stopped it again)."""
    stream = ItemStream.from_url(redis_url)
    stream.add({**item(1), "crawled_at": "yesterday"}, run="r1")
    stream.add({**item(2), "crawled_at": "2026-01-01T10:00:00+02:00"}, run="r1")
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    report = Indexer(tmp_path / "data", stream, encoders, options).run()
    assert (report.new, dict(report.rejected)) == (1, {"invalid offer": 1})
    assert stream.backlog() == 0 and stream.client.xlen(stream.dead_key) == 1
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        (record,) = store.get_offers(range(1, 10)).values()
        assert record.url.endswith("/p/2")
        seen = [p.seen_at for p in store.price_history(record.id)]
        assert seen == [datetime(2026, 1, 1, 8, tzinfo=UTC)]


class _Killed(Exception):
    """Stands for kill -9 of the indexer at that point."""


class _KilledAfterUpsert(ItemStream):
    def indexed(self, entry, offer_id):
        raise _Killed  # the first upsert returned, its acknowledgement never happened


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("batch", "after_restart"),
    [
        (1, (1, 0, 1)),  # killed between batches: offer 1 stored, offer 2 lost nothing
        (32, (0, 0, 2)),  # killed after the batch's one upsert: both stored, none acknowledged
    ],
)
def test_an_entry_stored_but_not_acknowledged_before_a_kill_is_not_stored_again(
    redis_url, encoders, tmp_path, batch, after_restart
):
    now = datetime.now(UTC).isoformat(timespec="seconds")
    stream = ItemStream.from_url(redis_url)
    for n in (1, 2):
        stream.add({**item(n), "crawled_at": now}, run="r1")
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    killed = dataclasses.replace(options, batch=batch)
    with pytest.raises(_Killed):
        Indexer(tmp_path / "data", _KilledAfterUpsert(stream.client), encoders, killed).run()
    report = Indexer(tmp_path / "data", ItemStream(stream.client), encoders, options).run()
    assert (report.new, report.updated, report.repeated) == after_restart
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        offers = store.get_offers(range(1, 10))
        assert sorted(len(store.price_history(i)) for i in offers) == [1, 1]


@pytest.mark.slow
@pytest.mark.integration
def test_a_later_crawl_waiting_behind_a_kill_is_stored_though_the_indexer_lags_its_crawl(
    redis_url, encoders, tmp_path
):
    """An indexer more than a crawl run behind (down for a while, or slower than the crawls)
    stores run r1's sighting after r2 crawled the same page, and is killed before r2's entry:
    that redelivered entry, a new price, is stored (r1's point is newer than r2's crawl only
    on the indexer's clock)."""
    first = {**item(1), "crawled_at": "2026-01-01T10:00:00+00:00"}
    later = {**item(1), "price": Decimal("8.49"), "crawled_at": "2026-01-01T12:00:00+00:00"}
    report, history = _rerun_after_a_kill_behind(first, later, redis_url, encoders, tmp_path)
    assert (report.new, report.updated, report.repeated) == (0, 1, 1)  # r1's was stored
    assert [point.price for point in history] == [Decimal("9.99"), Decimal("8.49")]


def _rerun_after_a_kill_behind(first, later, redis_url, encoders, tmp_path):
    """Run r1's `first` and r2's `later` through an indexer killed after its first upsert (a
    batch of one: r2's entry is not stored), then a restarted one: its report, and the offer's
    price history."""
    stream = ItemStream.from_url(redis_url)
    stream.add(first, run="r1")
    stream.add(later, run="r2")
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    killed = dataclasses.replace(options, batch=1)
    with pytest.raises(_Killed):
        Indexer(tmp_path / "data", _KilledAfterUpsert(stream.client), encoders, killed).run()
    report = Indexer(tmp_path / "data", ItemStream(stream.client), encoders, options).run()
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        (offer_id,) = store.get_offers(range(1, 10))
        return report, store.price_history(offer_id)


@pytest.mark.slow
@pytest.mark.integration
def test_a_later_crawl_that_changed_only_spec_text_is_stored_though_the_indexer_lags_its_crawl(
    redis_url, encoders, tmp_path
):
    """As above, but r2 changed only the page's spec text: price, title and photos are r1's.
    The old rule (a point after the crawl time, and the offer holds the item's price, title
    and photos) took r2's redelivered entry for stored and lost its sighting and its specs;
    the point at exactly r2's crawl time is not there, so it is stored."""
    first = {**item(1), "crawled_at": "2026-01-01T10:00:00+00:00", "description": "Steel."}
    later = {**first, "crawled_at": "2026-01-01T12:00:00+00:00",
             "description": "Stainless steel, 500 ml, weight 320 g."}  # fmt: skip
    report, history = _rerun_after_a_kill_behind(first, later, redis_url, encoders, tmp_path)
    assert (report.new, report.updated, report.repeated) == (0, 1, 1)  # r1's was stored
    seen = [point.seen_at for point in history]
    assert seen == [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (10, 12)]


def test_an_unreadable_image_store_stops_the_indexer_before_it_reads_anything(tmp_path):
    from cumpair.stored_images import ImageStoreError

    stream = ItemStream.from_url("redis://127.0.0.1:1/0")  # never contacted
    with pytest.raises(ImageStoreError, match="sftp"):
        Indexer(tmp_path, stream, encoders=None, options=IndexerOptions(images="sftp://h/x"))


def test_vision_runs_in_processes_only_where_the_cores_allow():
    assert [default_vision_processes(n) for n in (1, 2, 3, 4, 8, 16)] == [0, 0, 0, 2, 4, 8]
    with pytest.raises(ValueError, match="vision_processes"):
        IndexerOptions(vision_processes=-1)


@pytest.mark.slow
@pytest.mark.integration
def test_specs_read_in_worker_processes_are_the_ones_read_in_threads(redis_url, encoders, tmp_path):
    """The vision stage in a spawned worker process gives each offer the specs the in-process
    threads give, and every entry is still acknowledged once, after its upsert."""
    images = tmp_path / "images"
    (images / "full").mkdir(parents=True)
    (images / "full" / "red.jpg").write_bytes(photo((200, 20, 20)))
    specs = {}
    for processes in (0, 1):
        stream = ItemStream.from_url(redis_url, f"items{processes}")
        stream.add(item(1, "full/red.jpg"), run="r1")
        options = IndexerOptions(images=str(images), vision_processes=processes, ocr=True,
                                 exit_when_idle_s=0.5, regroup_idle_s=0)  # fmt: skip
        index = tmp_path / f"data{processes}"
        report = Indexer(index, stream, encoders, options).run()
        assert report.new == 1 and stream.backlog() == 0
        with ProductStore.open(index, readonly=True) as store:
            (record,) = store.get_offers([1]).values()
            specs[processes] = record.specs
    assert specs[1] == specs[0]
    assert specs[1].get("dominant_colors")  # the photo was read, not skipped


def indexer_cli(redis_url: str, index, *flags: str) -> subprocess.Popen:
    index = with_installed_models(index)
    return subprocess.Popen(
        [sys.executable, "-m", "cumpair.cli", "indexer", "--index", str(index),
         "--redis", redis_url, "--no-ocr", "--no-alerts", *flags],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.integration
def test_offers_a_killed_indexer_had_not_regrouped_are_regrouped_by_the_next(redis_url, tmp_path):
    stream = ItemStream.from_url(redis_url)
    for n in range(1, 6):
        stream.add(item(n))
    # a regroup only after a minute of quiet: the kill comes first, with every entry stored
    first = indexer_cli(redis_url, tmp_path / "data", "--regroup-idle", "60")
    deadline = time.monotonic() + 180
    while stream.client.exists(stream.key) == 0 or stream.backlog():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the indexer did not take the entries"
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert len(stream.awaiting_regroup()) == 5  # stored, acknowledged, not regrouped

    second = indexer_cli(redis_url, tmp_path / "data", "--regroup-idle", "0",
                         "--exit-when-idle", "1")  # fmt: skip
    out, _ = second.communicate(timeout=180)
    assert second.returncode == 0, out[-3000:]
    assert "indexed 0 offers" in out and "regroups: 1" in out, out[-3000:]
    assert stream.awaiting_regroup() == set()
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        assert {len(store.price_history(i)) for i in store.get_offers(range(1, 10))} == {1}


@pytest.mark.slow
@pytest.mark.integration
def test_the_indexer_checks_the_watches_once_the_new_prices_are_stored(
    redis_url, encoders, tmp_path, monkeypatch
):
    """In Redis mode the crawl's spider-close pass is off (it would run before the indexer
    stored anything); the indexer's pass after its regroup sees the new price and queues."""
    from cumpair.alerts import WatchBook
    from cumpair.alerts.book import make_watch

    monkeypatch.setenv("CUMPAIR_ALERTS_RETRIES", "0")
    index = tmp_path / "data"
    index.mkdir()
    with WatchBook.open(index) as book:
        book.add(make_watch(item(1)["url"], below=Decimal("10.00"),
                            webhook="http://127.0.0.1:9/hook"))  # fmt: skip
    stream = ItemStream.from_url(redis_url)
    stream.add(item(1))  # 9.99 EUR: under the target
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0)
    report = Indexer(index, stream, encoders, options).run()
    assert report.alerts_queued == 1
    with WatchBook.open(index) as book:
        (notice,) = book.notices()
        assert notice.reason == "at or below 10.00"


@pytest.mark.slow
@pytest.mark.integration
def test_the_indexer_indexes_what_crawls_without_redis_spooled_for_its_store(
    redis_url, encoders, tmp_path
):
    """A crawl without Redis that found the store held by the indexer spooled its offer; the
    indexer, the holder, indexes it when the stream is quiet and regroups it."""
    from cumpair.indexer.spool import OfferSpool

    index = tmp_path / "data"
    offer = item(3)
    vector = encoders.text.encode_texts([offer["title"]])[0]
    with OfferSpool(index / "spool" / "offers.sqlite") as spool:
        spool.put(offer, [], {"text": vector}, source="scrapy@elsewhere")
    stream = ItemStream.from_url(redis_url)
    options = IndexerOptions(ocr=False, exit_when_idle_s=0.5, regroup_idle_s=0, alerts=False)
    report = Indexer(index, stream, encoders, options).run()
    assert (report.from_spool, report.regroups) == (1, 1)
    assert stream.awaiting_regroup() == set()
    with OfferSpool(index / "spool" / "offers.sqlite") as spool:
        assert spool.count() == 0
    with ProductStore.open(index, readonly=True) as store:
        assert [r.url for r in store.get_offers([1]).values()] == [offer["url"]]
