"""Stored grouping, price views and exact queries over a real ProductStore of demo offers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cumpair.cli import main as cumpair_main
from cumpair.demo.catalog import build_catalog
from cumpair.index import OfferRecord, ProductStore, StoreOptions
from cumpair.search.demo_index import demo_offer_record, index_demo_offers
from cumpair.search.evaluation import pairwise_scores
from cumpair.search.products import GroupingError, ProductGroups
from cumpair.search.service import QueryError, SearchService
from cumpair.search.store_scan import first_vectors, scan_offers

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _no_models():
    raise AssertionError("this query must not load models")


@pytest.fixture
def catalog():
    return build_catalog(n_products=20, seed=5)


@pytest.fixture
def indexed(tmp_path, catalog):
    """A store holding the demo catalog crawled twice (second crawl: some prices change)."""
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    ids = index_demo_offers(store, groups, catalog.offers, seen_at=T0)
    for n, offer in enumerate(catalog.offers):
        price = offer.price - Decimal("5.00") if n % 3 == 0 else offer.price
        store.upsert(demo_offer_record(offer, price=price, seen_at=T0 + timedelta(days=1)))
    yield store, groups, ids
    groups.close()
    store.close()


def test_offers_are_grouped_as_they_are_added(indexed):
    _store, groups, ids = indexed
    truth = {offer_id: offer.product_id for offer_id, offer in ids.items()}
    scores = pairwise_scores(groups.product_of(ids), truth)
    assert scores.f1 >= 0.95, scores
    products, offers = groups.count()
    assert offers == len(ids)
    assert products == len({o.product_id for o in ids.values()})


def test_membership_explains_the_rule_that_grouped_an_offer(indexed):
    _, groups, ids = indexed
    rules = {groups.membership(offer_id).rule for offer_id in ids}
    assert "new" in rules and "gtin" in rules
    joined = next(m for m in map(groups.membership, ids) if m.rule == "gtin")
    assert joined.matched_offer in ids
    assert joined.evidence["reasons"][0].startswith("same GTIN")


def test_regroup_keeps_product_ids_stable(indexed):
    store, groups, ids = indexed
    before = groups.product_of(ids)
    products, offers = groups.regroup(scan_offers(store), first_vectors(store))
    assert offers == len(ids)
    assert groups.product_of(ids) == before
    assert products == groups.count()[0]


def test_reassigning_an_unchanged_offer_keeps_its_product(indexed):
    store, groups, ids = indexed
    offer_id = next(iter(ids))
    before = groups.membership(offer_id)
    assert groups.assign(store, offer_id).product_id == before.product_id


def test_an_offer_with_a_new_gtin_leaves_its_old_product(indexed, catalog):
    store, groups, ids = indexed
    offer_id, offer = next((i, o) for i, o in ids.items() if o.gtin_printed)
    old_product = groups.product_of([offer_id])[offer_id]
    record = demo_offer_record(offer)
    record.gtin, record.model, record.title = "4006381333931", "ZZ-999", "Something else ZZ-999"
    store.upsert(record)
    assert groups.assign(store, offer_id).product_id != old_product


def test_search_by_gtin_lists_offers_cheapest_first_with_price_history(indexed, catalog):
    store, groups, _ids = indexed
    service = SearchService(store, groups, encoder_loader=_no_models)
    product = max(catalog.products, key=lambda p: len(catalog.offers_for_product(p.product_id)))
    response = service.search_gtin(product.gtin)
    assert len(response.products) == 1
    view = response.products[0]
    offers = view.offers
    assert len(offers) == len(catalog.offers_for_product(product.product_id))
    prices = [o.price for o in offers]
    assert prices == sorted(prices)
    for o in offers:
        assert o.crawls == 2
        assert o.lowest_price == min(o.price, o.change.previous)
        assert o.change.delta in (Decimal("0.00"), Decimal("0"), Decimal("-5.00"))
    assert view.lowest_price == min(o.lowest_price for o in offers)


def test_search_filters_by_shop_and_max_price(indexed, catalog):
    store, groups, _ = indexed
    service = SearchService(store, groups, encoder_loader=_no_models)
    offers_of = catalog.offers_for_product
    product = next(p for p in catalog.products if len(offers_of(p.product_id)) >= 3)
    all_offers = service.search_gtin(product.gtin).products[0].offers
    cheapest = all_offers[0]
    only = service.search_gtin(product.gtin, shops=(cheapest.shop,)).products[0].offers
    assert [o.shop for o in only] == [cheapest.shop]
    capped = service.search_gtin(product.gtin, max_price=cheapest.price).products[0].offers
    assert all(o.price <= cheapest.price for o in capped) and capped
    assert service.search_gtin(product.gtin, max_price=Decimal("0.01")).products == []


def test_bad_queries_raise_query_error(indexed):
    store, groups, _ = indexed
    service = SearchService(store, groups, encoder_loader=_no_models)
    with pytest.raises(QueryError, match="check digit"):
        service.search_gtin("4006381333932")
    with pytest.raises(QueryError):
        service.search_text("   ")
    with pytest.raises(QueryError):
        service.product(999_999)
    with pytest.raises(QueryError):
        service.history("http://nowhere.example/x")


def test_history_by_product_and_by_url(indexed, catalog):
    store, groups, ids = indexed
    service = SearchService(store, groups, encoder_loader=_no_models)
    offer_id, offer = next(iter(ids.items()))
    by_url = service.history(demo_offer_record(offer).url)
    assert [r.id for r, _ in by_url] == [offer_id]
    assert [p.seen_at for p in by_url[0][1]] == [T0, T0 + timedelta(days=1)]
    product_id = groups.product_of([offer_id])[offer_id]
    assert offer_id in [r.id for r, _ in service.history(str(product_id))]


def test_read_only_grouping_refuses_writes(tmp_path, indexed):
    store, _, ids = indexed
    readonly = ProductGroups.open(store.path, readonly=True)
    with pytest.raises(GroupingError):
        readonly.assign(store, next(iter(ids)))
    readonly.close()
    with pytest.raises(GroupingError):
        ProductGroups.open(tmp_path / "empty", readonly=True)


def test_assigning_an_unknown_offer_is_an_error(indexed):
    store, groups, _ = indexed
    with pytest.raises(GroupingError):
        groups.assign(store, 999_999)


def test_cli_search_by_gtin_prints_a_comparison_table(indexed, catalog, capsys):
    store, _groups, _ = indexed
    product = max(catalog.products, key=lambda p: len(catalog.offers_for_product(p.product_id)))
    store.flush()
    code = cumpair_main(["search", "--index", str(store.path), "--gtin", product.gtin, "--explain"])
    out = capsys.readouterr().out
    assert code == 0
    assert product.model in out
    shops = [o.shop for o in catalog.offers_for_product(product.product_id)]
    assert all(shop in out for shop in shops)
    assert "why: " in out and "lowest price seen" in out


def test_cli_search_json_and_errors(indexed, catalog, capsys):
    store, _, _ = indexed
    product = catalog.products[0]
    code = cumpair_main(["search", "--index", str(store.path), "--gtin", product.gtin, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["products"][0]["gtin"] == product.gtin
    assert cumpair_main(["search", "--index", str(store.path), "--gtin", "123"]) == 1
    assert "not a valid GTIN" in capsys.readouterr().err
    assert cumpair_main(["search", "--index", str(store.path)]) == 2


def test_cli_history_json(indexed, capsys):
    store, groups, ids = indexed
    offer_id = next(iter(ids))
    product_id = groups.product_of([offer_id])[offer_id]
    assert cumpair_main(["history", "--index", str(store.path), str(product_id), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert offer_id in [row["offer_id"] for row in data]
    assert all(len(row["history"]) == 2 for row in data)


def test_cli_refuses_a_missing_index(tmp_path):
    with pytest.raises(SystemExit, match="no index"):
        cumpair_main(["search", "--index", str(tmp_path / "none"), "--gtin", "4006381333931"])


def test_offer_without_gtin_or_model_still_gets_a_product(tmp_path):
    with ProductStore.open(tmp_path, {}) as store, ProductGroups.open(tmp_path) as groups:
        result = store.upsert(OfferRecord(shop="northwind", url="http://x/1", title="Thing"))
        membership = groups.assign(store, result.offer_id)
        assert membership.rule == "new"
        assert groups.offers_of(membership.product_id) == [result.offer_id]
