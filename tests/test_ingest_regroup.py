"""Incremental regrouping: after a crawl or an ingest touched some offers, only the products they
are in or could join are regrouped, with the same products a full regroup makes, and only the
products whose offers change are rewritten."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from cumpair.demo.catalog import build_catalog
from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions
from cumpair.index.products import ProductTables
from cumpair.ingest.stages import regroup_store, store_boilerplate, store_sample, touched_scope
from cumpair.search import grouping
from cumpair.search.boilerplate import TitleBoilerplate
from cumpair.search.candidates import touched_reach
from cumpair.search.demo_index import demo_offer_record
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import scan_offers

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DIM = 32


def _partition(groups: ProductGroups, offer_ids) -> set[frozenset[int]]:
    members: dict[int, set[int]] = {}
    for offer_id, product_id in groups.product_of(offer_ids).items():
        members.setdefault(product_id, set()).add(offer_id)
    return {frozenset(m) for m in members.values()}


@pytest.fixture(scope="module")
def crawled_once(tmp_path_factory):
    """A store of 80 demo products (text vectors: one random direction per product plus noise),
    grouped by a full regroup, with the offers of the last two products held back."""
    catalog = build_catalog(n_products=80, seed=11)
    rng = np.random.default_rng(3)
    centres = {p.product_id: rng.normal(size=DIM) for p in catalog.products}
    vectors = {}
    for n, offer in enumerate(catalog.offers):
        vector = centres[offer.product_id] + 0.2 * rng.normal(size=DIM)
        vectors[n] = {"text": (vector / np.linalg.norm(vector)).astype(np.float32)}
    late_products = {p.product_id for p in catalog.products[-2:]}
    early = [n for n, o in enumerate(catalog.offers) if o.product_id not in late_products]
    late = [n for n, o in enumerate(catalog.offers) if o.product_id in late_products]
    path = tmp_path_factory.mktemp("crawled")
    space = {"text": SpaceSpec(DIM, "random", "1")}
    with (
        ProductStore.open(path, space, StoreOptions(duplicate_threshold=None)) as store,
        ProductGroups.open(path) as groups,
    ):
        for n in early:
            offer = catalog.offers[n]
            result = store.upsert(demo_offer_record(offer, seen_at=T0), vectors[n])
            groups.assign(store, result.offer_id, vectors[n])
        regroup_store(store, groups)
    late_offers = [(catalog.offers[n], vectors[n]) for n in late]
    return path, late_offers


@pytest.fixture
def crawled(crawled_once, tmp_path):
    """A copy of the grouped store for one test, and the held-back offers with their vectors."""
    source, late = crawled_once
    shutil.copytree(source, tmp_path / "store")
    store = ProductStore.open(tmp_path / "store", options=StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path / "store")
    yield store, groups, late
    groups.close()
    store.close()


def test_incremental_regroup_covers_the_touched_products_only_and_agrees_with_a_full_one(
    crawled,
):
    store, groups, late = crawled
    before = _partition(groups, [r.id for r in scan_offers(store)])
    touched = set()
    for offer, vectors in late:  # a crawl that found two more products
        result = store.upsert(demo_offer_record(offer, seen_at=T0), vectors)
        groups.assign(store, result.offer_id, vectors)
        touched.add(result.offer_id)
    scope = touched_scope(store, groups, touched)
    assert touched <= scope and len(scope) < len(scan_offers(store)) // 2
    _, offers = regroup_store(store, groups, touched)
    assert offers == len(scope)
    everything = [r.id for r in scan_offers(store)]
    incremental = _partition(groups, everything)
    # Products outside the scope are exactly as they were.
    outside = {group for group in before if not group & scope}
    assert outside <= incremental
    regroup_store(store, groups)
    assert _partition(groups, everything) == incremental


@pytest.fixture
def written(monkeypatch):
    """The offers whose memberships are written from now on."""
    offers: set[int] = set()
    put = ProductTables.put_member

    def spy(self, member, brand, model):
        offers.add(member.offer_id)
        return put(self, member, brand, model)

    monkeypatch.setattr(ProductTables, "put_member", spy)
    return offers


def test_incremental_regroup_rewrites_only_the_products_that_change(crawled, written):
    store, groups, late = crawled
    touched = set()
    for offer, vectors in late:
        result = store.upsert(demo_offer_record(offer, seen_at=T0), vectors)
        groups.assign(store, result.offer_id, vectors)
        touched.add(result.offer_id)
    everything = [r.id for r in scan_offers(store)]
    # one new product split into single offers, as if grouped wrongly on arrival
    split = groups.offers_of(groups.product_of(touched)[min(touched)])
    assert len(split) > 1
    records = store.get_offers(split)
    groups.regroup([records[i] for i in split], partial=True, pairs=[])
    before = _partition(groups, everything)
    written.clear()
    regroup_store(store, groups, touched)
    after = _partition(groups, everything)
    changed = set().union(*(group for group in after if group not in before))
    assert changed and written == changed  # the split product formed again, nothing else
    assert written < touched_scope(store, groups, touched)


def test_the_incremental_regroup_compares_touched_pairs_only_and_scans_nothing(
    crawled, monkeypatch
):
    store, groups, late = crawled
    touched = set()
    for offer, vectors in late:
        result = store.upsert(demo_offer_record(offer, seen_at=T0), vectors)
        groups.assign(store, result.offer_id, vectors)
        touched.add(result.offer_id)

    def whole_store(*args, **kwargs):
        raise AssertionError("an incremental regroup must not look at the whole store")

    pages = store.iter_offers

    def first_page(batch: int = 1000):  # a sample of titles (boilerplate, IDF), no more
        yield next(pages(batch=batch))
        whole_store()

    # neither pairs over its whole scope (candidate_pairs) nor a scan of the store (past the
    # title bound: below it, title neighbours read every stored title, as a full regroup does)
    monkeypatch.setenv("CUMPAIR_GROUP_TRIGRAM_MAX_OFFERS", "10")
    monkeypatch.setattr(grouping, "candidate_pairs", whole_store)
    monkeypatch.setattr(store, "iter_offers", first_page)
    monkeypatch.setattr(store, "iter_vectors", whole_store)
    reach = touched_reach(store, groups, touched)
    assert all(groups.product_of([t])[t] in reach.products[t] for t in touched)
    _, offers = regroup_store(store, groups, touched)
    assert offers == len(reach.scope())


def test_a_price_change_rewrites_no_product(crawled, written):
    store, groups, _ = crawled
    record = scan_offers(store)[0]
    before = _partition(groups, [r.id for r in scan_offers(store)])
    later = replace(record, id=None, price=record.price + Decimal("1.00"))
    later = replace(later, seen_at=T0 + timedelta(days=1))
    offer_id = store.upsert(later, {}).offer_id
    assert offer_id == record.id
    written.clear()
    regroup_store(store, groups, {offer_id})
    assert written == set()
    assert _partition(groups, [r.id for r in scan_offers(store)]) == before


def test_partial_regroup_leaves_other_products_and_drops_emptied_ones(crawled):
    store, groups, _ = crawled
    records = scan_offers(store)
    product_of = groups.product_of(r.id for r in records)
    first_product = product_of[records[0].id]
    part = [r for r in records if product_of[r.id] == first_product]
    others = {r.id: product_of[r.id] for r in records if product_of[r.id] != first_product}
    products_before = groups.count()[0]
    assert groups.regroup(part, partial=True) == (1, len(part))
    assert groups.product_of(others) == others
    assert groups.count() == (products_before, len(records))


def test_a_touched_set_that_is_most_of_the_store_regroups_everything(crawled):
    store, groups, _ = crawled
    ids = [r.id for r in scan_offers(store)]
    assert regroup_store(store, groups, ids[: len(ids) * 3 // 4])[1] == len(ids)
    assert regroup_store(store, groups, []) == (0, 0)


def test_a_partial_regroup_learns_title_boilerplate_from_the_store_not_its_scope(tmp_path):
    names = ("Kettle", "Toaster", "Blender", "Mixer", "Grill", "Juicer", "Fryer", "Heater")
    with (
        ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store,
        ProductGroups.open(tmp_path) as groups,
    ):
        for n, name in enumerate(names):
            record = OfferRecord(
                shop="acme", url=f"http://acme/{n}", title=f"{name} X{n}00 | Acme Home Store",
                price=10 + n, currency="EUR",
            )  # fmt: skip
            store.upsert(record, {})
        learned = store_boilerplate(groups, {"acme"}, store_sample(store))
        assert learned.remove("Kettle X100 | Acme Home Store") == "Kettle X100"
        # the two offers a small regroup reads show no template on their own
        scope_only = TitleBoilerplate.learn(["Kettle X000 | Acme Home Store"] * 2, ["acme"] * 2)
        assert not scope_only.endings


def test_a_partial_regroup_weighs_title_words_by_the_store_not_its_scope(tmp_path, monkeypatch):
    """Rarity (the title-token IDF the matcher's rarity signals read) is the store's, as a full
    regroup learns it: "zephyr" is in 2 of the store's 202 titles, but in 2 of the few dozen
    a small regroup reads, where it would look common (review R14: shoes pair F1 0.797 with the
    whole set's IDF, 0.768 with 30 offers' own)."""
    seen = []

    class Recorded(grouping._Verdicts):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.weights)

    with (
        ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store,
        ProductGroups.open(tmp_path) as groups,
    ):
        ids = []
        for n in range(200):
            record = OfferRecord(
                shop=f"shop{n % 4}", url=f"http://shop/{n}", title=f"Trail Runner Shoe Q{n}X{n}",
                price=10 + n, currency="EUR",
            )  # fmt: skip
            ids.append(store.upsert(record, {}).offer_id)
        for shop in ("north", "south"):
            record = OfferRecord(
                shop=shop, url=f"http://{shop}/z", title="Zephyr Trail Runner Shoe",
                price=50, currency="EUR",
            )  # fmt: skip
            ids.append(store.upsert(record, {}).offer_id)
        regroup_store(store, groups)
        monkeypatch.setattr(grouping, "_Verdicts", Recorded)
        seen.clear()
        _, offers = regroup_store(store, groups, ids[-2:])
    assert 0 < offers < len(ids)  # a partial regroup
    stored = len(ids)
    assert seen[-1].idf["zephyr"] == pytest.approx(math.log((1 + stored) / (1 + 2)) + 1)
