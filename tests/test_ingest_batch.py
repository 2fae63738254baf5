"""`cumpair ingest` upserts a chunk of offers in one durable batch: the same offers and results
as one upsert at a time, an offer whose photo repeats an earlier one of its shop in the chunk
still found as that offer, and a record the store refuses dropped with its reason while the
rest of its chunk is stored."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from cumpair.embed import BatchEmbedder, load_encoders
from cumpair.embed.reindex import spaces_for
from cumpair.index import InvalidOfferError, ProductStore
from cumpair.ingest.batches import embed_and_store_many
from cumpair.ingest.runner import IngestOptions, ingest
from cumpair.search.products import ProductGroups

pytestmark = pytest.mark.slow

FEEDS = Path(__file__).parent / "fixtures" / "feeds"


@pytest.fixture(scope="module")
def encoders():
    return load_encoders("offline", backend="torch", threads=1)


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """The size of every batch the store is asked to upsert (its own upsert_many, unchanged)."""
    sizes: list[int] = []
    real = ProductStore.upsert_many

    def counted(self, items):
        items = list(items)
        sizes.append(len(items))
        return real(self, items)

    monkeypatch.setattr(ProductStore, "upsert_many", counted)
    return sizes


def _feed(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    shutil.copy(FEEDS / "photo.png", folder / "photo.png")
    path = folder / "items.jl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(n: int, **fields) -> dict:
    row = {
        "shop": "aden",
        "url": f"https://aden.example/p{n}",
        "title": f"Acme kettle KT-{100 + n} steel {n} L",
        "price": f"{10 + n}.00",
        "currency": "USD",
        "image_urls": [],
    }
    return row | fields


def test_a_chunk_is_one_durable_batch_with_the_results_of_one_at_a_time(
    tmp_path, encoders, batch_sizes
):
    feed = _feed(tmp_path / "feeds", [_row(n) for n in range(10)])
    options = IngestOptions(ocr=False, chunk=4)
    report = ingest([feed], tmp_path / "index", options, encoders=encoders)
    assert batch_sizes == [4, 4, 2]  # one upsert per chunk (was one per offer)
    assert (report.new, report.updated) == (10, 0)
    again = ingest([feed], tmp_path / "index", options, encoders=encoders)
    assert (again.new, again.updated) == (0, 10)
    with ProductStore.open(tmp_path / "index", readonly=True) as store:
        offers = [r for batch in store.iter_offers() for r in batch]
        history = store.price_history(offers[0].id)
    assert len(offers) == 10 and len(history) == 2  # each run one price point, none twice


def test_a_photo_repeated_in_one_chunk_finds_the_earlier_offer_as_one_at_a_time(
    tmp_path, encoders, batch_sizes
):
    # the same product under two URLs of one shop, same photo and text: the store merges the
    # second into the first (near-duplicate), which it finds only among offers stored before
    # a batch, so the batch is cut before the second
    same = {"title": "Acme kettle KT-200 steel 1.7 L", "price": "20.00"}
    rows = [
        _row(0, image_urls=["photo.png"], **same),
        _row(1),
        _row(2, image_urls=["photo.png"], **same),
        _row(3),
    ]
    feed = _feed(tmp_path / "feeds", rows)
    report = ingest([feed], tmp_path / "index", IngestOptions(ocr=False), encoders=encoders)
    assert (report.new, report.updated) == (3, 1)
    assert batch_sizes == [2, 2]


def test_a_record_the_store_refuses_is_reported_and_the_rest_of_its_batch_is_stored(
    tmp_path, encoders
):
    items = [
        {**_row(n), "price": Decimal(f"{10 + n}.00"), "image_urls": [], "specs": {}}
        for n in range(5)
    ]
    items[2]["currency"] = "EURO"  # not an ISO 4217 code: refused by the store itself
    index = tmp_path / "index"
    with (
        ProductStore.open(index, spaces_for(encoders)) as store,
        ProductGroups.open(index) as groups,
        BatchEmbedder(encoders, batch_size=8, max_wait=0.05) as embedder,
    ):
        out = embed_and_store_many(store, groups, embedder, [(item, []) for item in items])
        assert [o.result is None for o in out] == [False, False, True, False, False]
        assert isinstance(out[2].error, InvalidOfferError) and "currency" in str(out[2].error)
        stored = {o.result.offer_id for o in out if o.result}
        assert len(stored) == 4 and all(groups.membership(i) for i in stored)
    with ProductStore.open(index, readonly=True) as store:
        urls = {r.url for batch in store.iter_offers() for r in batch}
    assert urls == {items[n]["url"] for n in (0, 1, 3, 4)}


def _grouped_with_first(index: Path, encoders, chunk: int) -> list[bool]:
    """Ingest one shop-A offer, then 20 variants of it from shop B `chunk` at a time (grouping
    each as the chunk's upsert returns, no final regroup): which B offers joined A's product."""

    def item(shop: str, n: int, title: str) -> dict:
        url = f"https://{shop}.example/p{n}"
        return {"shop": shop, "url": url, "title": title, "price": Decimal("99.00")} | {
            "currency": "EUR",
            "image_urls": [],
            "specs": {},
            "brand": "Nike",
        }

    first = item("a", 0, "Nike Air Zoom Pegasus 39 running shoe")
    colours = ["black", "white", "red", "blue", "green", "grey", "pink", "navy", "orange", "purple"]
    variants = [
        item("b", n, f"Nike Air Zoom Pegasus 39 Herren running shoe {colour} size {40 + n}")
        for n, colour in enumerate(colours * 2)
    ]
    with (
        ProductStore.open(index, spaces_for(encoders)) as store,
        ProductGroups.open(index) as groups,
        BatchEmbedder(encoders, batch_size=16, max_wait=0.05) as embedder,
    ):
        (a,) = embed_and_store_many(store, groups, embedder, [(first, [])])
        out = []
        for start in range(0, len(variants), chunk):
            part = [(v, []) for v in variants[start : start + chunk]]
            out += embed_and_store_many(store, groups, embedder, part)
        product = groups.membership(a.result.offer_id).product_id
        return [groups.membership(o.result.offer_id).product_id == product for o in out]


def test_a_chunk_groups_as_one_upsert_at_a_time_though_its_later_offers_are_stored(
    tmp_path, encoders
):
    # the chunk's later variants are nearer each other than to shop A's offer: stored before
    # they are grouped, they filled the first variant's neighbour slots (no product yet, so no
    # candidate) and it became a product of its own; one at a time it joins A's offer
    alone = _grouped_with_first(tmp_path / "alone", encoders, chunk=1)
    assert alone[0]
    assert _grouped_with_first(tmp_path / "chunk", encoders, chunk=20) == alone
