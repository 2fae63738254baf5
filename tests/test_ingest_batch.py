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
