"""Behaviour of the FAISS product store: records, duplicates, search, validation, encoders."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import (
    EncoderMismatchError,
    InvalidOfferError,
    InvalidVectorError,
    OfferRecord,
    ProductStore,
    ReadOnlyStoreError,
    SearchFilters,
    SpaceSpec,
    StoreOptions,
    UnknownSpaceError,
    split_vector_id,
    vector_id,
)

SPACES = {"image": SpaceSpec(16, "test-image", "1"), "text": SpaceSpec(8, "test-text", "1")}


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def store(tmp_path: Path):
    with ProductStore.open(tmp_path / "index_data", SPACES) as opened:
        yield opened


def offer(shop: str = "northwind", url: str = "http://n/p/1", **fields) -> OfferRecord:
    fields.setdefault("title", "Kettle 1.7 l")
    fields.setdefault("price", Decimal("19.99"))
    fields.setdefault("currency", "EUR")
    return OfferRecord(shop=shop, url=url, **fields)


def test_vector_ids_map_back_to_offer_and_image_ordinal():
    assert split_vector_id(vector_id(123456789, 3)) == (123456789, 3)
    with pytest.raises(ValueError):
        vector_id(1, 256)


def test_upsert_stores_offer_exactly_and_finds_it_by_its_image(store, rng):
    images = unit(rng, 3, 16)
    result = store.upsert(
        offer(price=Decimal("1299.00"), gtin="4006381333931", specs={"power_w": 2200}),
        {"image": images, "text": unit(rng, 8)},
    )
    assert result.created and result.vectors_added == 4
    record = store.get_offers([result.offer_id])[result.offer_id]
    assert record.price == Decimal("1299.00") and str(record.price) == "1299.00"
    assert record.specs == {"power_w": 2200} and record.gtin == "4006381333931"
    assert record.first_seen == record.last_seen
    for ordinal in range(3):
        hit = store.search("image", images[ordinal], k=1)[0][0]
        assert (hit.offer_id, hit.ordinal) == (result.offer_id, ordinal)
        assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_search_returns_each_offer_once_with_its_best_image(store, rng):
    first = store.upsert(offer(url="http://n/1"), {"image": unit(rng, 4, 16)})
    store.upsert(offer(url="http://n/2"), {"image": unit(rng, 4, 16)})
    query = store.get_offers([first.offer_id])  # the offer exists
    assert query
    hits = store.search("image", unit(rng, 16), k=10)[0]
    assert len(hits) == 2
    assert len({h.offer_id for h in hits}) == 2
    assert hits[0].score >= hits[1].score


def test_recrawl_same_url_updates_and_appends_price_history(store, rng):
    image = unit(rng, 1, 16)
    a = store.upsert(offer(price=Decimal("19.99")), {"image": image})
    b = store.upsert(offer(price=Decimal("17.49"), availability="OutOfStock"), {"image": image})
    assert b.offer_id == a.offer_id and b.matched_by == "url"
    assert b.price_changed and b.vectors_added == 0
    assert store.count("image") == 1
    history = store.price_history(a.offer_id)
    assert [p.price for p in history] == [Decimal("19.99"), Decimal("17.49")]
    assert history[-1].availability == "OutOfStock"


def test_same_gtin_in_same_shop_updates_the_offer_and_its_url(store, rng):
    a = store.upsert(offer(url="http://n/old", gtin="4006381333931"), {"image": unit(rng, 1, 16)})
    b = store.upsert(offer(url="http://n/new", gtin="4006381333931"), {"image": unit(rng, 1, 16)})
    other_shop = store.upsert(offer(shop="bluepeak", url="http://b/1", gtin="4006381333931"))
    assert b.offer_id == a.offer_id and b.matched_by == "gtin"
    assert store.get_offers([a.offer_id])[a.offer_id].url == "http://n/new"
    assert other_shop.created
    assert store.count("image") == 1  # the replaced image vector is gone


def test_near_identical_image_in_same_shop_is_a_duplicate_but_not_across_shops(store, rng):
    image = unit(rng, 1, 16)
    nudged = image + 0.001 * unit(rng, 1, 16)
    a = store.upsert(offer(url="http://n/1"), {"image": image})
    b = store.upsert(offer(url="http://n/1?utm=x", price=Decimal("18")), {"image": nudged})
    c = store.upsert(offer(shop="bluepeak", url="http://b/1"), {"image": image})
    d = store.upsert(offer(url="http://n/2"), {"image": unit(rng, 1, 16)})
    assert b.offer_id == a.offer_id and b.matched_by == "vector"
    assert store.get_offers([a.offer_id])[a.offer_id].url == "http://n/1"  # original URL kept
    assert c.created and d.created


def test_same_photo_with_a_different_text_is_not_a_duplicate(store, rng):
    """Two products shot alike in one shop stay apart when their text vectors differ."""
    image, text = unit(rng, 1, 16), unit(rng, 8)
    a = store.upsert(offer(url="http://n/1"), {"image": image, "text": text})
    same = store.upsert(offer(url="http://n/1b"), {"image": image, "text": text})
    other = store.upsert(offer(url="http://n/2"), {"image": image, "text": unit(rng, 8)})
    assert same.offer_id == a.offer_id and same.matched_by == "vector"
    assert other.created


def test_near_duplicate_detection_can_be_disabled(tmp_path, rng):
    image = unit(rng, 1, 16)
    options = StoreOptions(duplicate_threshold=None)
    with ProductStore.open(tmp_path / "s", SPACES, options) as store:
        store.upsert(offer(url="http://n/1"), {"image": image})
        assert store.upsert(offer(url="http://n/2"), {"image": image}).created


def test_fewer_images_on_recrawl_removes_the_extra_vectors(store, rng):
    images = unit(rng, 3, 16)
    a = store.upsert(offer(), {"image": images})
    b = store.upsert(offer(), {"image": images[:1]})
    assert (b.vectors_added, b.vectors_removed) == (0, 2)
    assert store.count("image") == 1
    assert store.search("image", images[2], k=5)[0][0].ordinal == 0
    assert a.offer_id == b.offer_id


def test_remove_deletes_offer_history_and_vectors(store, rng):
    a = store.upsert(offer(url="http://n/1"), {"image": unit(rng, 2, 16), "text": unit(rng, 8)})
    b = store.upsert(offer(url="http://n/2"), {"image": unit(rng, 1, 16)})
    assert store.remove(a.offer_id) is True
    assert store.remove(a.offer_id) is False
    assert store.get_offers([a.offer_id, b.offer_id]).keys() == {b.offer_id}
    assert store.price_history(a.offer_id) == []
    assert (store.count("image"), store.count("text")) == (1, 0)
    hits = store.search("image", unit(rng, 16), k=5)[0]
    assert [h.offer_id for h in hits] == [b.offer_id]


def test_filters_restrict_hits_by_shop_price_and_currency(store, rng):
    ids = {}
    for i, shop in enumerate(["northwind", "bluepeak", "cornerstore"] * 4):
        price, currency = Decimal(10 * (i + 1)), "EUR" if i % 2 else "USD"
        result = store.upsert(
            offer(shop=shop, url=f"http://{shop}/{i}", price=price, currency=currency),
            {"image": unit(rng, 1, 16)},
        )
        ids[result.offer_id] = (shop, price, currency)
    query = unit(rng, 16)
    hits = store.search("image", query, 20, SearchFilters(shops=("bluepeak",)))[0]
    assert {ids[h.offer_id][0] for h in hits} == {"bluepeak"} and len(hits) == 4
    cheap_eur = SearchFilters(currency="EUR", max_price=Decimal("60"))
    hits = store.search("image", query, 20, cheap_eur)[0]
    assert hits and all(ids[h.offer_id][2] == "EUR" and ids[h.offer_id][1] <= 60 for h in hits)
    assert store.search("image", query, 5, SearchFilters(shops=("nobody",))) == [[]]


def test_reopening_with_another_encoder_or_dimension_is_refused(tmp_path):
    path = tmp_path / "s"
    ProductStore.open(path, SPACES).close()
    for changed in (SpaceSpec(16, "clip-vit-b32", "1"), SpaceSpec(32, "test-image", "1")):
        with pytest.raises(EncoderMismatchError, match="image"):
            ProductStore.open(path, {**SPACES, "image": changed})
    ProductStore.open(path, SPACES).close()  # the refused opens left the lock free


@pytest.mark.parametrize(
    ("vectors", "error"),
    [
        ({"image": np.zeros((1, 16))}, InvalidVectorError),
        ({"image": np.ones((1, 15))}, InvalidVectorError),
        ({"image": np.full((1, 16), np.nan)}, InvalidVectorError),
        ({"image": "not a vector"}, InvalidVectorError),
        ({"image": np.ones((257, 16))}, InvalidVectorError),
        ({"audio": np.ones(16)}, UnknownSpaceError),
    ],
)
def test_bad_vectors_raise_clear_errors_and_store_nothing(store, vectors, error):
    with pytest.raises(error):
        store.upsert(offer(), vectors)
    assert store.get_offers([1]) == {}


@pytest.mark.parametrize(
    "fields",
    [{"shop": ""}, {"url": None}, {"price": 19.99}, {"price": Decimal("NaN")}, {"currency": "€"}],
)
def test_bad_offers_raise_clear_errors(store, fields):
    base = {"shop": "northwind", "url": "http://n/1", **fields}
    with pytest.raises(InvalidOfferError):
        store.upsert(OfferRecord(**base))


def test_readonly_store_refuses_writes_but_searches(tmp_path, rng):
    path = tmp_path / "s"
    image = unit(rng, 1, 16)
    with ProductStore.open(path, SPACES) as writer:
        oid = writer.upsert(offer(), {"image": image}).offer_id
    with ProductStore.open(path, readonly=True) as reader:
        assert reader.search("image", image, 1)[0][0].offer_id == oid
        with pytest.raises(ReadOnlyStoreError):
            reader.upsert(offer(url="http://n/2"))


async def test_asyncio_tasks_search_concurrently(store, rng):
    images = unit(rng, 50, 16)
    store.upsert_many([(offer(url=f"http://n/{i}"), {"image": images[i]}) for i in range(50)])
    results = await asyncio.gather(*(store.asearch("image", images[i], 1) for i in range(50)))
    assert [r[0][0].offer_id for r in results] == list(range(1, 51))


def test_single_queries_and_batches_find_the_exact_hits_and_leave_the_query_alone(store, rng):
    """A query row alone (1-D or 1 x d, any dtype) and in a batch small or large gets the same
    hits: each offer once at its best vector, exact scores, fewer than k when the space has
    fewer offers. The store scales a copy: the caller's array is left as it was."""
    images = {}
    for n in range(12):  # offers of 1 to 3 photos: ordinals > 0 in the hits
        images[
            store.upsert(offer(url=f"http://n/{n}"), {"image": unit(rng, 1 + n % 3, 16)}).offer_id
        ] = None
    vids, vectors = zip(*[(vector_id(o, i), v) for o, i, v in _stored(store, images)], strict=True)
    vectors = np.stack(vectors)
    queries = 3.0 * unit(rng, 300, 16)  # 300 x k: past the small-result path

    def exact(q: np.ndarray, k: int) -> list[tuple[int, int]]:
        best: dict[int, tuple[float, int]] = {}
        for vid, score in zip(vids, vectors @ (q / np.linalg.norm(q)), strict=True):
            o, i = split_vector_id(vid)
            if o not in best or score > best[o][0]:
                best[o] = (float(score), i)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:k]
        return [(o, i) for o, (_, i) in ranked]

    given = queries.copy()
    batched = store.search("image", given, k=5)
    small = store.search("image", given[:3], k=20)  # k past the offers: fewer hits
    assert np.array_equal(given, queries)
    for n, q in enumerate(queries[:40]):
        alone = [store.search("image", form, k=5)[0] for form in (q, q[None], q.astype(np.float64))]
        assert np.array_equal(q, queries[n])
        assert alone[0] == alone[1] == batched[n]
        assert [h.offer_id for h in alone[2]] == [h.offer_id for h in batched[n]]
        assert [(h.offer_id, h.ordinal) for h in batched[n]] == exact(q, 5)
        q_unit = q / np.linalg.norm(q)
        for hit in batched[n]:
            stored = images[hit.offer_id][hit.ordinal]
            assert hit.score == pytest.approx(float(stored @ q_unit), abs=1e-5)
    for n in range(3):
        assert len(small[n]) == 12 and [(h.offer_id, h.ordinal) for h in small[n]] == exact(
            queries[n], 20
        )
    big = np.full(16, 1e30, dtype=np.float32)  # squares overflow float32: still one unit query
    assert store.search("image", big, k=1)[0] == store.search("image", np.ones(16), k=1)[0]
    for bad in (np.zeros(16), np.full(16, np.nan), np.r_[np.ones(15), np.inf]):
        with pytest.raises(InvalidVectorError):
            store.search("image", bad.astype(np.float32), k=1)


def _stored(store, images: dict) -> list[tuple[int, int, np.ndarray]]:
    """(offer id, ordinal, vector) of every stored image vector; fills `images` by offer."""
    out = []
    for ids, matrix in store.iter_vectors("image"):
        for vid, vector in zip(ids.tolist(), matrix, strict=True):
            o, i = split_vector_id(vid)
            out.append((o, i, vector))
    for o in images:
        images[o] = np.stack([v for oo, _, v in sorted(out, key=lambda t: t[1]) if oo == o])
    return out
