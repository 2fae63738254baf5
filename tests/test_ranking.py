"""A product's offers in the order a shopper compares them: buyable now first, one currency at a
time, implausible prices flagged and kept out of the lowest price (and out of alerts)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cumpair.alerts.book import WatchBook, make_watch
from cumpair.alerts.check import check_watches
from cumpair.index import OfferRecord, ProductStore, StoreOptions
from cumpair.search.formatting import format_product
from cumpair.search.products import ProductGroups
from cumpair.search.ranking import availability_group, price_flags, rank_offers
from cumpair.search.server import create_app
from cumpair.search.service import SearchService
from cumpair.search.views import ProductView, cheapest_first, offer_view

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GTIN = "4006381333931"


def _record(n: int, shop: str, price: str | None, availability: str | None, currency="EUR"):
    return OfferRecord(
        shop=shop,
        url=f"http://{shop}.example/p/1",
        title="Ironbark Circular Saw AA-112S",
        price=None if price is None else Decimal(price),
        currency=currency,
        availability=availability,
        gtin=GTIN,
        seen_at=T0,
        id=n,
        last_seen=T0,
    )


# Every rule at once: the cheapest offer is out of stock, one is a pre-order, one states no
# availability, one quotes another currency, one is a 0.01 placeholder, one has no price.
OFFERS = [
    _record(1, "outlet", "79.00", "OutOfStock"),
    _record(2, "alpha", "99.00", "https://schema.org/InStock"),
    _record(3, "beta", "95.00", "PreOrder"),
    _record(4, "gamma", "101.00", None),
    _record(5, "delta", "89.00", "InStock", currency="USD"),
    _record(6, "penny", "0.01", "InStock"),
    _record(7, "omega", "105.00", "http://schema.org/LimitedAvailability"),
    _record(8, "nought", None, "InStock"),
]


def _view(records=OFFERS) -> ProductView:
    offers = cheapest_first(offer_view(r, []) for r in records)
    return ProductView(1, "Ironbark Circular Saw AA-112S", None, None, GTIN, {}, offers)


def test_offers_are_ranked_buyable_now_first_one_currency_at_a_time():
    view = _view()
    order = [(o.shop, o.rank_group, o.price_flag) for o in view.offers]
    assert order == [
        ("alpha", "in stock", None),
        ("omega", "in stock", None),
        ("penny", "in stock", "implausible"),  # after the plausible prices of its group
        ("nought", "in stock", None),  # unpriced: last of its group
        ("gamma", "availability unknown", None),
        ("beta", "pre-order or back-order", None),
        ("outlet", "out of stock", None),
        ("delta", "other currency", None),  # USD, never ranked with the EUR offers
    ]


def test_lowest_price_ignores_out_of_stock_flagged_and_other_currency_offers():
    view = _view()
    assert view.lowest_price == Decimal("99.00")
    data = view.to_dict()
    assert (data["lowest_price"], data["lowest_price_currency"]) == ("99.00", "EUR")
    assert (data["lowest_price_basis"], data["lowest_price_offer_id"]) == ("in stock", 2)
    # Seen: the pre-order's 95, never the out-of-stock 79, the placeholder or the USD price.
    assert data["lowest_price_seen"] == "95.00"
    assert "lowest price (in stock) 99.00 EUR" in format_product(view)
    assert "0.01 EUR (implausible)" in format_product(view)


def test_without_an_offer_in_stock_the_lowest_price_says_its_basis():
    view = _view([OFFERS[0], OFFERS[2], OFFERS[3]])
    best = view.best
    assert (best.offer.shop, best.group) == ("gamma", "availability unknown")
    assert _view([OFFERS[0]]).best is None  # out of stock: no price it can be bought at now


def test_availability_reads_short_names_and_schema_org_urls():
    assert availability_group("InStoreOnly") == "in stock"
    assert availability_group("https://schema.org/OnlineOnly") == "in stock"
    assert availability_group("http://schema.org/BackOrder") == "pre-order or back-order"
    assert availability_group("PreSale") == "pre-order or back-order"
    assert availability_group("SoldOut") == availability_group("Discontinued") == "out of stock"
    assert availability_group("") == availability_group("Maybe") == "availability unknown"


def test_a_price_is_implausible_when_zero_or_far_below_two_others_in_its_currency():
    prices = [
        _record(1, "a", "0", "InStock"),
        _record(2, "b", "9.99", "InStock"),  # under 20% of the others' median, 50
        _record(3, "c", "50.00", "InStock"),
        _record(4, "d", "55.00", "InStock"),
    ]
    assert price_flags(prices) == ["implausible", "implausible", None, None]
    # One other offer is no reference, and other currencies are no reference either.
    assert price_flags(prices[1:3]) == [None, None]
    dollars = [_record(5, "e", "9.00", "InStock", currency="USD")]
    assert price_flags(prices[2:] + dollars) == [None, None, None]


def test_the_main_currency_is_that_of_most_offers_ties_go_to_the_cheapest_buyable():
    usd = [_record(1, "u", "50.00", "InStock", "USD"), _record(2, "v", "40", "OutOfStock", "USD")]
    eur = [_record(3, "e", "60.00", "InStock"), _record(4, "f", "70.00", "InStock")]
    usd, eur = [offer_view(r, []) for r in usd], [offer_view(r, []) for r in eur]
    ranked = rank_offers(usd + eur[:1])
    assert [(r.offer.shop, r.group) for r in ranked] == [
        ("u", "in stock"),
        ("v", "out of stock"),
        ("e", "other currency"),
    ]
    tied = rank_offers([usd[1], eur[0]])  # one each: the offer buyable now decides
    assert [(r.offer.shop, r.group) for r in tied] == [("e", "in stock"), ("v", "other currency")]
    assert rank_offers(usd + eur)[0].offer.shop == "u"  # two each: "u" is buyable and cheapest


@pytest.fixture
def store_dir(tmp_path):
    """A real store holding `OFFERS`, grouped into one product by their shared GTIN."""
    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(tmp_path)
        for record in OFFERS:
            record = OfferRecord(**{**record.__dict__, "id": None, "last_seen": None})
            groups.assign(store, store.upsert(record, {}).offer_id, {})
        groups.close()
    return tmp_path


async def test_the_product_api_ranks_offers_and_names_the_lowest_price_basis(
    aiohttp_client, store_dir
):
    with (
        ProductStore.open(store_dir, readonly=True) as store,
        ProductGroups.open(store_dir, readonly=True) as groups,
    ):
        service = SearchService(store, groups, encoder_loader=_no_models)
        client = await aiohttp_client(create_app(service, warm=False))
        found = await (await client.get("/search", params={"gtin": GTIN})).json()
        product_id = found["products"][0]["product_id"]
        body = await (await client.get(f"/products/{product_id}")).json()
        html = await (await client.get(f"/p/{product_id}")).text()
        results = await (await client.get("/", params={"gtin": GTIN})).text()
    shops = [o["shop"] for o in body["offers"]]
    assert shops == ["alpha", "omega", "penny", "nought", "gamma", "beta", "outlet", "delta"]
    assert body["offers"][2]["price_flag"] == "implausible"
    assert (body["lowest_price"], body["lowest_price_basis"]) == ("99.00", "in stock")
    assert (
        body["cheapest_offer_id"] == body["lowest_price_offer_id"] == body["offers"][0]["offer_id"]
    )
    assert "Lowest price (in stock):" in html and "Lowest price (in stock):" in results
    assert 'class="badge flag"' in html and 'class="badge currency"' in html


def test_a_placeholder_left_alone_by_a_price_filter_is_still_flagged(store_dir):
    with (
        ProductStore.open(store_dir, readonly=True) as store,
        ProductGroups.open(store_dir, readonly=True) as groups,
    ):
        service = SearchService(store, groups, encoder_loader=_no_models)
        (view,) = service.search_gtin(GTIN, max_price=Decimal("1.00")).products
    assert [(o.shop, o.price_flag) for o in view.offers] == [("penny", "implausible")]
    assert view.lowest_price is None and view.to_dict()["lowest_price_basis"] is None


def test_an_alert_ignores_a_placeholder_price(store_dir):
    with WatchBook.open(store_dir) as book:
        book.add(make_watch(GTIN, below=Decimal("1.00"), webhook="http://127.0.0.1:9/hook"))
        with (
            ProductStore.open(store_dir, readonly=True) as store,
            ProductGroups.open(store_dir, readonly=True) as groups,
        ):
            assert check_watches(book, store, groups) == 0  # 0.01 is no price to buy at
            store_offers = groups.offers_of(groups.products_with_gtin(GTIN)[0])
        assert len(store_offers) == len(OFFERS) and book.notices() == []


def _no_models():
    raise AssertionError("these queries must not load models")
