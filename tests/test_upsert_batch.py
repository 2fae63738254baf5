"""The batch write path: a batch upsert equals one-by-one upserts in every case it handles
column-wise (unchanged, changed, fewer and dropped vectors, converted inputs, near-duplicates),
and its SQL calls, log writes and fsyncs do not grow with the batch."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import (
    InvalidVectorError,
    OfferRecord,
    ProductStore,
    SpaceSpec,
    StoreOptions,
    UpsertResult,
    vectorlog,
)

SPACES = {"image": SpaceSpec(16, "test-image", "1"), "text": SpaceSpec(8, "test-text", "1")}
OPTIONS = StoreOptions(duplicate_threshold=None)


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def dump(store: ProductStore) -> tuple:
    """Everything a write leaves: offer rows, price history, vectors by id per space."""
    conn = store._read_conn()
    offers = conn.execute(
        "SELECT id, shop, url, title, price, currency, gtin FROM offers ORDER BY id"
    ).fetchall()
    history = conn.execute("SELECT offer_id, price FROM price_history ORDER BY id").fetchall()
    vectors = {
        name: {int(i): m.tobytes() for ids, mat in store.iter_vectors(name)
               for i, m in zip(ids, mat, strict=True)}
        for name in SPACES
    }  # fmt: skip
    tombstones = conn.execute("SELECT space, vector_id FROM tombstones ORDER BY 1, 2").fetchall()
    return offers, history, vectors, tombstones


def batch_equals_one_by_one(
    tmp_path: Path, first: list, second: list, options: StoreOptions = OPTIONS
) -> list[UpsertResult]:
    """Upsert `first` then `second` item by item into one store and as two batches into
    another; assert that `second` gets the same results and leaves the same state in both.
    Returns the batch's results."""
    with ProductStore.open(tmp_path / "one", SPACES, options) as one:
        for offer, vectors in first:
            one.upsert(offer, vectors)
        expected = [one.upsert(offer, vectors) for offer, vectors in second]
        state = dump(one)
    with ProductStore.open(tmp_path / "many", SPACES, options) as many:
        many.upsert_many(first)
        got = many.upsert_many(second)
        assert got == expected
        assert dump(many) == state
    return got


def first_crawl(rng: np.random.Generator, n: int) -> list[tuple[OfferRecord, dict]]:
    return [
        (
            OfferRecord("a", f"http://a/{i}", title=f"t{i}", price=Decimal(i), currency="EUR"),
            {"image": unit(rng, 1 + i % 3, 16), "text": unit(rng, 8)},
        )
        for i in range(n)
    ]


def recrawl(rng: np.random.Generator, first: list[tuple[OfferRecord, dict]]) -> list:
    """The same offers again: vectors kept, changed, cut to fewer, dropped, left out, or given
    as float64 lists; some prices changed; a few new offers between them."""
    items = []
    for i, (offer, vectors) in enumerate(first):
        price = offer.price + (1 if i % 4 == 0 else 0)
        again = OfferRecord(offer.shop, offer.url, title=offer.title, price=price, currency="EUR")
        kind = i % 6
        if kind == 0:
            new = {"image": vectors["image"], "text": vectors["text"]}  # unchanged
        elif kind == 1:
            new = {"image": unit(rng, len(vectors["image"]), 16)}  # changed, text left out
        elif kind == 2:
            new = {"image": vectors["image"][:1], "text": vectors["text"]}  # fewer images
        elif kind == 3:
            new = {"image": np.empty((0, 16), np.float32)}  # every image dropped
        elif kind == 4:
            new = {"image": vectors["image"].astype(np.float64).tolist()}  # converted input
        else:
            new = {}  # vectors left as they are
        items.append((again, new))
        if i % 10 == 0:
            items.append((OfferRecord("a", f"http://a/new{i}"), {"image": unit(rng, 2, 16)}))
    return items


def test_a_recrawl_batch_equals_upserting_one_by_one(tmp_path):
    rng = np.random.default_rng(11)
    first = first_crawl(rng, 60)
    second = recrawl(rng, first)
    got = batch_equals_one_by_one(tmp_path, first, second)
    assert {r.matched_by for r in got} == {"url", "new"}
    assert any(r.vectors_added == 0 and r.vectors_removed == 0 for r in got)  # unchanged
    assert any(r.vectors_removed > 0 for r in got)
    assert sum(r.price_changed for r in got) == 15


def test_near_duplicates_in_a_batch_are_found_as_one_by_one(tmp_path):
    rng = np.random.default_rng(12)
    options = StoreOptions(duplicate_threshold=0.99)
    first = first_crawl(rng, 30)
    moved = []
    for i, (offer, vectors) in enumerate(first[:12]):
        image = vectors["image"][0] + 0.01 * unit(rng, 16)  # the same photo, re-encoded
        text = vectors["text"] if i % 3 else unit(rng, 8)  # every third: another product
        shop = "b" if i % 4 == 0 else offer.shop  # and some in another shop
        moved.append((OfferRecord(shop, f"http://a/moved{i}"), {"image": image, "text": text}))
    got = batch_equals_one_by_one(tmp_path, first, moved, options)
    assert {r.matched_by for r in got} == {"vector", "new"}


class CountingConnection:
    """The writer's SQLite connection, counting the statements sent to it (an executemany
    is one)."""

    def __init__(self, conn) -> None:
        self._conn = conn
        self.calls = 0

    def execute(self, *args):
        self.calls += 1
        return self._conn.execute(*args)

    def executemany(self, *args):
        self.calls += 1
        return self._conn.executemany(*args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def sql_calls(store: ProductStore, items: list) -> int:
    counting = CountingConnection(store._conn)
    store._conn = counting
    try:
        store.upsert_many(items)
    finally:
        store._conn = counting._conn
    return counting.calls


def test_a_batch_sends_the_same_sql_whatever_its_size(tmp_path):
    rng = np.random.default_rng(13)
    counts = []
    for size in (5, 400):
        first = first_crawl(rng, size)
        # the recrawl drops one image of each offer that had several and changes the rest
        second = [
            (offer, {"image": unit(rng, max(1, len(v["image"]) - 1), 16), "text": unit(rng, 8)})
            for offer, v in first
        ]
        with ProductStore.open(tmp_path / str(size), SPACES, OPTIONS) as store:
            counts.append((sql_calls(store, first), sql_calls(store, second)))
    assert counts[0] == counts[1]


def test_one_log_write_and_one_fsync_per_space_for_a_batch(tmp_path, monkeypatch):
    rng = np.random.default_rng(14)
    calls = {"write": 0, "sync": 0}
    for name in calls:
        original = getattr(vectorlog.VectorLog, name)

        def counted(self, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(vectorlog.VectorLog, name, counted)
    options = StoreOptions(duplicate_threshold=None, synchronous="FULL")
    with ProductStore.open(tmp_path / "s", SPACES, options) as store:
        calls.update(write=0, sync=0)
        store.upsert_many(first_crawl(rng, 200))
        assert calls == {"write": 2, "sync": 2}


def test_a_bad_vector_inside_a_batch_names_its_space_and_stores_nothing(tmp_path):
    rng = np.random.default_rng(15)
    items = first_crawl(rng, 20)
    items[13][1]["text"] = np.full(8, np.nan, np.float32)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        with pytest.raises(InvalidVectorError, match=r"vectors\['text'\].*NaN"):
            store.upsert_many(items)
        assert store.health()["offers"] == 0
        assert store.count("image") == store.count("text") == 0


def test_offers_of_one_batch_without_a_sighting_time_share_one(tmp_path):
    rng = np.random.default_rng(16)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many(first_crawl(rng, 50))
        seen = store._read_conn().execute("SELECT DISTINCT seen_at FROM price_history").fetchall()
    assert len(seen) == 1


def traced(store: ProductStore, items: list) -> list[str]:
    """The SQL statements one `upsert_many` sends (each statement of an executemany once)."""
    sent: list[str] = []
    store._conn.set_trace_callback(sent.append)
    try:
        store.upsert_many(items)
    finally:
        store._conn.set_trace_callback(None)
    return list(dict.fromkeys(sent))


def test_a_recrawl_reads_old_vectors_through_the_offer_index(tmp_path):
    # the planner otherwise scans every vector of the space per query (vectors_seq on space)
    rng = np.random.default_rng(17)
    first = first_crawl(rng, 50)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many(first)
        sent = traced(store, recrawl(rng, first))
        reads = [
            sql for sql in sent if sql.startswith("SELECT offer_id, ordinal, row FROM vectors")
        ]
        assert reads
        for sql in reads:
            plan = " ".join(r[3] for r in store._conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert "vectors_offer" in plan, plan


def test_a_recrawl_sets_no_shop_and_no_unchanged_url(tmp_path):
    # an indexed column in SET costs its index writes even when the value stays the same
    rng = np.random.default_rng(18)
    first = first_crawl(rng, 20)
    moved = [(OfferRecord("a", "http://a/elsewhere", gtin="4006381333931"), {})]
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many([*first, (OfferRecord("a", "http://a/g", gtin="4006381333931"), {})])
        updates = [sql for sql in traced(store, first) if sql.startswith("UPDATE offers")]
        assert updates and not any(" shop = " in sql or " url = " in sql for sql in updates)
        (result,) = store.upsert_many(moved)
        assert result.matched_by == "gtin"
        assert store.get_offers([result.offer_id])[result.offer_id].url == "http://a/elsewhere"


def test_a_batch_repeating_urls_and_gtins_equals_upserting_one_by_one(tmp_path):
    # Items of one batch that meet one offer (a URL twice, a GTIN twice, a new URL carrying an
    # existing offer's GTIN beside that offer's own URL) land as they would one after another.
    rng = np.random.default_rng(19)
    gtin, other = "4006381333931", "5012345678900"
    first = [
        *first_crawl(rng, 6),
        (OfferRecord("a", "http://a/g", gtin=gtin, price=Decimal(5)), {"text": unit(rng, 8)}),
    ]
    second = [
        (OfferRecord("a", "http://a/1", price=Decimal(7)), {"image": unit(rng, 2, 16)}),
        (OfferRecord("a", "http://a/1", price=Decimal(8)), {"image": unit(rng, 1, 16)}),
        (OfferRecord("a", "http://a/moved", gtin=gtin, price=Decimal(6)), {}),
        (OfferRecord("a", "http://a/g", gtin=gtin, price=Decimal(9)), {"text": unit(rng, 8)}),
        (OfferRecord("a", "http://a/n1", gtin=other), {"image": unit(rng, 3, 16)}),
        (OfferRecord("a", "http://a/n2", gtin=other, price=Decimal(2)), {}),
        (OfferRecord("b", "http://a/n2", gtin=other), {"text": unit(rng, 8)}),  # another shop
        (OfferRecord("a", "http://a/1"), {"image": np.empty((0, 16), np.float32)}),
    ]
    got = batch_equals_one_by_one(tmp_path, first, second)
    # http://a/g moved to http://a/moved just before, so its offer is found by its GTIN
    matched = ["url", "url", "gtin", "gtin", "new", "gtin", "new", "url"]
    assert [r.matched_by for r in got] == matched


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the float32 norm's
def test_a_vector_too_large_for_float32_squares_is_normalised_not_zeroed(tmp_path):
    # Finite components past ~1e19 overflow a float32 norm to infinity: dividing by it would
    # store a zero vector.
    big = unit(np.random.default_rng(20), 16) * np.float32(1e30)
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
        (result,) = store.upsert_many([(OfferRecord("a", "http://a/big"), {"image": big})])
        ((_, stored),) = store.iter_vectors("image")
        np.testing.assert_allclose(stored[0], big / np.linalg.norm(big.astype(np.float64)))
        ((hit,),) = store.search("image", big, k=1)  # a query as large: normalised too
        assert hit.offer_id == result.offer_id and hit.score == pytest.approx(1.0)
