"""Crawl processes sharing a store without Redis take turns (`cumpair.indexer.turns`): the one
finding the store held spools durably (`cumpair.indexer.spool`), the holder drains, nothing is
lost. Real store, real file lock: the second writer meets the first one's lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import (
    InvalidOfferError,
    ProductStore,
    SpaceSpec,
    StoreLockedError,
    StoreOptions,
)
from cumpair.indexer.spool import OfferSpool
from cumpair.indexer.turns import BatchedWrites, TurnOptions, TurnWriter

ROOT = Path(__file__).resolve().parents[1]
SPACES = {"text": SpaceSpec(8, "test-text", "1")}
QUICK = StoreOptions(lock_timeout_s=0.1)


def offer(shop: str, n: int) -> tuple[dict, list[str], dict[str, np.ndarray]]:
    item = {"shop": shop, "url": f"https://{shop}.example/p/{n}", "title": f"{shop} widget {n}",
            "price": Decimal(f"{n}.99"), "currency": "EUR", "specs": {"volume_ml": 5}}  # fmt: skip
    vector = np.random.default_rng(hash((shop, n)) % 2**32).standard_normal(8).astype(np.float32)
    return item, [f"/imgs/{shop}/{n}.jpg"], {"text": vector}


def writer(tmp_path, source: str, retry_s: float = 0) -> TurnWriter:
    turns = TurnOptions(retry_s=retry_s, drain_s=3600, close_wait_s=0)
    return TurnWriter(tmp_path / "store", SPACES, QUICK, turns, source=source)


def stored(tmp_path, store_dir: str = "store") -> dict[str, list]:
    with ProductStore.open(tmp_path / store_dir, readonly=True) as store:
        offers = store.get_offers(range(1, 1000)).values()
        return {r.url: [r.price, r.image_paths, len(store.price_history(r.id))] for r in offers}


def test_a_second_writer_spools_while_the_store_is_held_and_the_holder_drains(tmp_path):
    first = writer(tmp_path, "job-a")
    second = writer(tmp_path, "job-b")
    assert first.holding and not second.holding
    assert first.write(*offer("north", 1)) is not None
    assert second.write(*offer("corner", 1)) is None  # spooled, not refused
    assert second.write(*offer("corner", 2)) is None
    assert second.counts["spooled"] == 2
    assert first.drain() == 2  # the holder indexes what the other one spooled
    second.close()  # the store is still held: nothing of its own is left to wait for
    assert second.counts["left"] == 0
    first.close()
    got = stored(tmp_path)
    assert sorted(got) == sorted(offer(s, n)[0]["url"] for s, n in
                                 [("north", 1), ("corner", 1), ("corner", 2)])  # fmt: skip
    corner = got["https://corner.example/p/2"]
    assert corner == [Decimal("2.99"), ("/imgs/corner/2.jpg",), 1]  # once, with its photo
    assert OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite").count() == 0


def test_a_writer_that_waited_takes_the_store_at_close_and_indexes_its_own_offers(tmp_path):
    first = writer(tmp_path, "job-a")
    second = writer(tmp_path, "job-b", retry_s=3600)  # tries again only at close
    second.write(*offer("corner", 1))
    first.write(*offer("north", 1))
    first.close()  # the holder ends first: its last drain took corner/1 already
    second.write(*offer("corner", 2))  # spooled after the holder's last drain
    assert not second.holding
    second.close()  # the store is free now: it takes it and drains its own offer
    assert second.counts["turns"] == 1 and second.counts["drained"] == 1
    assert len(stored(tmp_path)) == 3


def test_a_spooled_offer_survives_its_process_and_the_next_writer_indexes_it(tmp_path):
    holder = writer(tmp_path, "job-a")
    killed = writer(tmp_path, "job-b")
    killed.write(*offer("corner", 7))
    del killed  # never closed, as after kill -9: the spool's commit is all there is
    holder.close()  # drained at close
    assert "https://corner.example/p/7" in stored(tmp_path)

    late = OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite")
    late.put(*offer("corner", 8), source="job-c")  # spooled while no process holds the store
    late.close()
    writer(tmp_path, "job-d").close()  # the next writer drains it when it takes the store
    assert "https://corner.example/p/8" in stored(tmp_path)


def test_a_spooling_writer_tries_the_store_again_once_the_holder_let_go(tmp_path):
    first = writer(tmp_path, "job-a")
    second = writer(tmp_path, "job-b")
    second.write(*offer("corner", 1))
    first.close()
    assert second.write(*offer("corner", 2)) is not None  # took the store, wrote directly
    assert second.holding and second.counts["drained"] == 0  # corner/1: drained by first
    second.close()
    assert len(stored(tmp_path)) == 2


def test_without_turns_the_second_writer_is_refused(tmp_path):
    """What the spool replaces: a second writer of a held store fails after lock_timeout_s."""
    with ProductStore.open(tmp_path / "store", SPACES, QUICK), pytest.raises(StoreLockedError):
        ProductStore.open(tmp_path / "store", SPACES, QUICK)


def test_an_unreadable_spool_row_is_kept_aside_and_the_rest_are_indexed(tmp_path):
    spool = OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite")
    spool.put(*offer("corner", 1), source="job-b")
    spool._conn.execute("UPDATE spooled SET item = '{broken' WHERE id = 1")
    spool.put(*offer("corner", 2), source="job-b")
    holder = writer(tmp_path, "job-a")
    assert holder.counts["unreadable"] == 1 and holder.counts["drained"] == 1
    holder.close()
    assert list(stored(tmp_path)) == ["https://corner.example/p/2"]
    assert spool.count() == 1  # the broken row stays for a person to look at


def test_a_spooled_offer_the_store_refuses_is_logged_and_the_drain_goes_on(tmp_path):
    spool = OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite")
    bad, refs, vectors = offer("corner", 1)
    spool.put({**bad, "price": 9.5}, refs, vectors, source="job-b")  # a float: inexact, refused
    spool.put(*offer("corner", 2), source="job-b")
    holder = writer(tmp_path, "job-a")
    assert holder.counts["refused"] == 1 and holder.counts["drained"] == 1
    holder.close()
    assert list(stored(tmp_path)) == ["https://corner.example/p/2"]
    assert spool.count() == 0  # refused as its own process would have been: not kept


def test_a_spooled_offer_with_a_crawled_at_that_is_no_time_is_refused_and_the_drain_goes_on(
    tmp_path,
):
    spool = OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite")
    bad, refs, vectors = offer("corner", 1)
    spool.put({**bad, "crawled_at": "yesterday"}, refs, vectors, source="job-b")
    spool.put(*offer("corner", 2), source="job-b")
    holder = writer(tmp_path, "job-a")
    assert holder.counts["refused"] == 1 and holder.counts["drained"] == 1
    holder.close()
    assert list(stored(tmp_path)) == ["https://corner.example/p/2"]


@pytest.mark.slow
@pytest.mark.integration
class _Killed(BaseException):
    """The drain's process dying between a batch's upsert and marking its rows done."""


def test_a_drain_killed_after_its_batch_was_stored_stores_no_sighting_twice(tmp_path, monkeypatch):
    """Rows are marked done a batch at a time: the next drain finds the sightings the killed
    one stored and forgets those rows, with one price point each, not two."""
    holder = writer(tmp_path, "job-a")
    spool = OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite")
    for n in (1, 2, 3):
        item, refs, vectors = offer("corner", n)
        spool.put({**item, "crawled_at": f"2026-12-01T10:00:0{n}"}, refs, vectors, source="b")
    spool.put(*offer("corner", 4), source="job-b")  # no crawl time: stored again, none lost
    spool.close()
    done = OfferSpool.done

    def killed(self, ids):
        raise _Killed

    monkeypatch.setattr(OfferSpool, "done", killed)
    with pytest.raises(_Killed):
        holder.drain()
    monkeypatch.setattr(OfferSpool, "done", done)
    assert holder.drain() == 1  # corner/4 only
    assert holder.counts["repeated"] == 3
    holder.close()
    points = {url: n for url, (_, _, n) in stored(tmp_path).items()}
    assert points == {offer("corner", n)[0]["url"]: 1 for n in (1, 2, 3)} | {
        offer("corner", 4)[0]["url"]: 2
    }
    assert OfferSpool(tmp_path / "store" / "spool" / "offers.sqlite").count() == 0


def test_every_offer_a_crawl_spooled_before_kill_9_is_indexed_by_the_holder(
    demo_server_factory, tmp_path
):
    """A real `scrapy crawl` finds the store held (by this test), spools, and is killed -9
    midway: the holder's drain indexes every offer it had spooled, once."""
    from cumpair.embed import load_encoders
    from cumpair.embed.reindex import spaces_for

    server = demo_server_factory()
    data = tmp_path / "data"
    spaces = spaces_for(load_encoders("offline", backend="torch", threads=1))
    holder = TurnWriter(data, spaces, QUICK, TurnOptions(drain_s=3600), source="holder")
    assert holder.holding
    crawl = subprocess.Popen(
        [sys.executable, "-m", "scrapy", "crawl", "cornerstore",
         "-a", f"base_url={server.base_url('cornerstore')}",
         "-s", f"INDEX_DATA_DIR={data}", "-s", "SPECS_ENABLED=False",
         "-s", "EMBED_ENCODERS=offline", "-s", "EMBED_BACKEND=torch",
         "-s", "INDEX_SPOOL_RETRY_S=3600", "-s", f"LOG_FILE={tmp_path / 'crawl.log'}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    spool_path = data / "spool" / "offers.sqlite"
    deadline = time.monotonic() + 240
    while not spool_path.exists() or OfferSpool(spool_path).count() < 5:
        assert crawl.poll() is None, (tmp_path / "crawl.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the crawl spooled nothing"
        time.sleep(0.2)
    os.kill(crawl.pid, signal.SIGKILL)
    crawl.wait(timeout=30)
    spooled = OfferSpool(spool_path).count()
    assert holder.drain() == spooled
    holder.close()
    got = stored(tmp_path, "data")
    assert len(got) == spooled and {points for *_, points in got.values()} == {1}
    assert OfferSpool(spool_path).count() == 0


def test_batched_writes_upsert_a_full_batch_in_one_transaction_and_resolve_once_durable(
    tmp_path, monkeypatch
):
    holder = writer(tmp_path, "job-a")
    calls = []
    upsert_many = holder.store.upsert_many
    monkeypatch.setattr(holder.store, "upsert_many", lambda part: calls.append(len(part)) or
                        upsert_many(part))  # fmt: skip
    writes = BatchedWrites(holder, batch_size=4, max_wait_s=3600)
    futures = [writes.submit(*offer("north", n)) for n in range(1, 5)]
    outcomes = [future.result(timeout=30) for future in futures]  # full: written without waiting
    assert calls == [4]
    assert [result.created for (result, _), _ in outcomes] == [True] * 4
    assert all(cpu_s >= 0 for _, cpu_s in outcomes)
    late = writes.submit(*offer("north", 5))
    assert not late.done()  # one waiting, far from its time limit: not written yet
    writes.close()  # ... until close, which writes what waits
    assert late.result(timeout=0)[0][0].created and calls == [4, 1]
    holder.close()
    assert len(stored(tmp_path)) == 5


def test_batched_writes_write_a_partial_batch_after_its_time_limit(tmp_path):
    holder = writer(tmp_path, "job-a")
    writes = BatchedWrites(holder, batch_size=100, max_wait_s=0.05)
    futures = [writes.submit(*offer("north", n)) for n in (1, 2)]
    assert all(future.result(timeout=10)[0] is not None for future in futures)
    assert writes.batches == 1
    writes.close()
    holder.close()


def test_a_bad_record_in_a_batch_gets_its_error_and_the_rest_are_stored(tmp_path):
    holder = writer(tmp_path, "job-a")
    writes = BatchedWrites(holder, batch_size=4, max_wait_s=3600)
    bad, refs, vectors = offer("north", 2)
    late, late_refs, late_vectors = offer("north", 3)
    futures = [
        writes.submit(*offer("north", 1)),
        writes.submit({**bad, "price": 9.5}, refs, vectors),  # a float: refused by the store
        writes.submit({**late, "crawled_at": "2999-01-01T00:00:00"}, late_refs, late_vectors),
        writes.submit(*offer("north", 4)),
    ]
    with pytest.raises(InvalidOfferError, match="Decimal"):
        futures[1].result(timeout=30)
    with pytest.raises(InvalidOfferError, match="future"):
        futures[2].result(timeout=30)
    assert futures[0].result()[0] is not None and futures[3].result()[0] is not None
    writes.close()
    holder.close()
    assert sorted(stored(tmp_path)) == ["https://north.example/p/1", "https://north.example/p/4"]


def test_a_batch_groups_and_stores_as_one_at_a_time_does(tmp_path):
    """Near-identical photos of one shop in one batch: the second is the first offer seen
    again, as it is upserted one at a time (the batch is cut before it)."""
    items = [offer("north", n) for n in range(1, 7)]
    twin = items[4]
    items[4] = (twin[0], twin[1], {"text": items[1][2]["text"] * 1.0001})  # repeats offer 2's
    options = StoreOptions(lock_timeout_s=0.1, duplicate_space="text")
    one = TurnWriter(tmp_path / "one", SPACES, options, TurnOptions(), source="a")
    alone = [one.write(*entry) for entry in items]
    one.close()
    many = TurnWriter(tmp_path / "many", SPACES, options, TurnOptions(), source="b")
    batched = many.write_many(items)
    many.close()
    key = [(r.offer_id, r.created, r.matched_by, m.product_id) for r, m in alone]
    assert [(r.offer_id, r.created, r.matched_by, m.product_id) for r, m in batched] == key
    assert stored(tmp_path, "one") == stored(tmp_path, "many")
    assert not alone[4][0].created  # the twin photo: offer 2 again, one at a time and batched


def test_batched_writes_run_on_start_on_the_writer_thread_before_writing(tmp_path, monkeypatch):
    """FAISS's OpenMP thread count is per thread: the crawl sets it (one thread) on the writer
    thread through `on_start`, or the writer's searches run, and spin, on a team per core."""
    import faiss

    from cumpair.faiss_threads import set_faiss_threads

    holder = writer(tmp_path, "job-a")
    seen = []
    upsert_many = holder.store.upsert_many
    monkeypatch.setattr(holder.store, "upsert_many", lambda part: seen.append(
        faiss.omp_get_max_threads()) or upsert_many(part))  # fmt: skip
    writes = BatchedWrites(holder, batch_size=1, on_start=lambda: set_faiss_threads(1))
    writes.submit(*offer("north", 1)).result(timeout=30)
    writes.close()
    holder.close()
    assert seen == [1]


def test_batched_writes_whose_on_start_failed_fail_each_offer_instead_of_hanging(tmp_path):
    """A writer thread whose `on_start` raised writes nothing: every offer submitted gets that
    error (the crawl's index threads wait on their futures, which no one would resolve)."""

    def broken() -> None:
        raise ImportError("no faiss here")

    holder = writer(tmp_path, "job-a")
    writes = BatchedWrites(holder, batch_size=1, on_start=broken)
    with pytest.raises(ImportError, match="no faiss here"):
        writes.submit(*offer("north", 1)).result(timeout=10)
    writes.close()
    holder.close()
    assert stored(tmp_path) == {}
