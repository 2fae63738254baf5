"""A recrawl regroups only what changed: `TurnWriter` (the crawl's store writer) hands its
close's regroup the offers whose grouping inputs or vectors an upsert changed, not every offer
it saw. Real store and grouping.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from cumpair.index import ProductStore, SpaceSpec, StoreOptions
from cumpair.indexer.turns import TurnOptions, TurnWriter
from cumpair.search.products import ProductGroups

SPACES = {"text": SpaceSpec(8, "test-text", "1"), "image": SpaceSpec(8, "test-image", "1")}
TURNS = TurnOptions(drain_s=3600, close_wait_s=0)
QUICK = StoreOptions(lock_timeout_s=0.1)


@dataclasses.dataclass
class Page:
    """One crawled product page: what the item says and its vectors."""

    n: int
    title: str
    price: Decimal
    gtin: str | None = None
    brand: str | None = "Acme"
    photo_seed: int = 0

    def entry(self) -> tuple[dict, list[str], dict[str, np.ndarray]]:
        item = {"shop": "north", "url": f"https://north.example/p/{self.n}", "title": self.title,
                "price": self.price, "currency": "EUR", "gtin": self.gtin, "brand": self.brand,
                "specs": {"volume_ml": 5 * self.n}}  # fmt: skip
        text = np.random.default_rng(self.n).standard_normal(8).astype(np.float32)
        photo = np.random.default_rng(1000 * self.photo_seed + self.n).standard_normal((1, 8))
        return item, [f"/imgs/{self.n}.jpg"], {"text": text, "image": photo.astype(np.float32)}


def pages() -> list[Page]:
    return [
        Page(n, f"Acme kettle K{n}00 {n} l", Decimal(f"{n}9.99"), f"400638133393{n}")
        for n in range(1, 9)
    ]


def crawl(path, shown: list[Page]) -> tuple[set[int], dict[str, int]]:
    """One crawl of `shown` through a writer of the store at `path`: the offers its close's
    regroup was handed, and each URL's offer id."""
    writer = TurnWriter(path, SPACES, QUICK, TURNS, source="test")
    outcomes = writer.write_many([page.entry() for page in shown])
    touched = set(writer.touched)
    writer.close()
    urls = [page.entry()[0]["url"] for page in shown]
    ids = {url: outcome[0].offer_id for url, outcome in zip(urls, outcomes, strict=True)}
    return touched, ids


def test_a_recrawl_of_unchanged_pages_regroups_nothing_and_keeps_the_grouping(tmp_path):
    path = tmp_path / "store"
    touched, ids = crawl(path, pages())
    assert touched == set(ids.values())  # the first crawl groups everything
    with ProductGroups.open(path, readonly=True) as groups:
        before = groups.product_of(ids.values())
    again, _ = crawl(path, pages())
    assert again == set()
    with ProductGroups.open(path, readonly=True) as groups:
        assert groups.product_of(ids.values()) == before
    with ProductStore.open(path, readonly=True) as store:  # the sightings are still recorded
        assert all(len(store.price_history(oid)) == 2 for oid in ids.values())


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Acme kettle K300 3 l steel"},
        {"price": Decimal("31.99")},
        {"gtin": "4006381333986"},
        {"brand": "Bosch"},
        {"photo_seed": 1},
    ],
    ids=["title", "price", "gtin", "brand", "photo"],
)
def test_a_recrawl_regroups_the_offer_whose_grouping_inputs_changed(tmp_path, change):
    path = tmp_path / "store"
    _, ids = crawl(path, pages())
    shown = pages()
    shown[2] = dataclasses.replace(shown[2], **change)
    touched, _ = crawl(path, shown)
    assert touched == {ids["https://north.example/p/3"]}


def test_a_page_first_seen_in_a_recrawl_is_grouped_at_close(tmp_path):
    path = tmp_path / "store"
    crawl(path, pages()[:-1])
    touched, ids = crawl(path, pages())
    assert touched == {ids["https://north.example/p/8"]}


def test_a_close_that_touched_most_of_the_store_regroups_all_without_its_reach(
    tmp_path, monkeypatch
):
    """A first crawl touches every offer: the touched neighbourhood would only say "all"."""
    from cumpair.ingest import stages

    path = tmp_path / "store"
    _, ids = crawl(path, pages())

    def no_reach(*args, **kwargs):
        raise AssertionError("touched_reach ran for a regroup of the whole store")

    monkeypatch.setattr(stages, "touched_reach", no_reach)
    with ProductStore.open(path, SPACES) as store, ProductGroups.open(path) as groups:
        assert stages.regroup_store(store, groups, set(ids.values()))[1] == len(ids)
