"""The rules that decide which offer heads a product: condition, total price with shipping,
currencies through a rate file, unit prices, and a price far below the offer's own history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cumpair.index import OfferRecord, PricePoint
from cumpair.search.formatting import format_product
from cumpair.search.ranking import price_flags
from cumpair.search.ranking_options import RankingOptions, RankingOptionsError
from cumpair.search.rates import RatesError, load_rates, parse_ecb_xml
from cumpair.search.shipping import shipping_cost
from cumpair.search.unit_price import offer_quantity, unit_price
from cumpair.search.views import ProductView, cheapest_first, offer_view, with_condition

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FLAT = {"country": None, "rate": "4.95", "currency": "EUR", "free_from": "50.00", "source": "shop"}


def _record(n, shop, price, *, currency="EUR", availability="InStock", **fields):
    return OfferRecord(
        shop=shop,
        url=f"http://{shop}.example/p/{n}",
        title=fields.pop("title", "Culina Snack Container AB-101"),
        price=Decimal(price),
        currency=currency,
        availability=availability,
        seen_at=T0,
        id=n,
        last_seen=T0,
        **fields,
    )


def _product(records, options=None) -> ProductView:
    options = options or RankingOptions()
    offers = cheapest_first([offer_view(r, []) for r in records], None, options)
    view = ProductView(1, "Snack Container", None, None, None, {}, offers)
    view.ranking = options
    return view


def test_a_used_or_refurbished_offer_is_never_the_cheapest_new_one():
    view = _product(
        [
            _record(1, "new", "20.00", condition="New"),
            _record(2, "unstated", "21.00"),
            _record(3, "refurb", "12.00", condition="Refurbished"),
            _record(4, "used", "9.00", condition="Used"),
            _record(5, "gone", "8.00", availability="OutOfStock"),
        ]
    )
    assert [o.shop for o in view.offers] == ["new", "unstated", "refurb", "used", "gone"]
    data = view.to_dict()
    assert (data["lowest_price"], data["lowest_price_condition"]) == ("20.00", "New")
    only_used = _product([_record(3, "refurb", "12.00", condition="Refurbished")])
    assert only_used.to_dict()["lowest_price_condition"] == "Refurbished"
    kept = with_condition([view], "used")[0]
    assert [o.shop for o in kept.offers] == ["used"]


def test_shipping_rules_flat_free_above_a_threshold_and_per_country():
    de = {"country": "DE", "rate": "3.00", "currency": "EUR", "free_from": None}
    assert shipping_cost([FLAT], Decimal("20"), "EUR", None) == Decimal("4.95")
    assert shipping_cost([FLAT], Decimal("50"), "EUR", "FR") == 0  # free from 50
    assert shipping_cost([FLAT, de], Decimal("20"), "EUR", "DE") == Decimal("3.00")
    assert shipping_cost([de], Decimal("20"), "EUR", "FR") is None  # no rule for France
    assert shipping_cost([de], Decimal("20"), "EUR", None) is None
    assert shipping_cost([], Decimal("20"), "EUR", "DE") is None  # unknown, not free
    assert shipping_cost([{**FLAT, "currency": "USD"}], Decimal("20"), "EUR", None) is None


def test_ranking_by_total_price_adds_shipping_and_puts_unknown_shipping_after_known():
    records = [
        _record(1, "cheap", "45.00", shipping=[FLAT]),  # 45 + 4.95 = 49.95
        _record(2, "free", "49.00", shipping=[{**FLAT, "rate": "0"}]),  # 49.00 total
        _record(3, "silent", "40.00"),  # shipping unknown
    ]
    assert [o.shop for o in _product(records).offers] == ["silent", "cheap", "free"]
    view = _product(records, RankingOptions(by="total", ship_to="DE"))
    assert [(o.shop, str(o.total_price)) for o in view.offers] == [
        ("free", "49.00"),
        ("cheap", "49.95"),
        ("silent", "None"),
    ]
    data = view.to_dict()
    assert data["ranking"]["by"] == "total" and "shipping to DE" in data["ranking"]["said"]
    assert data["offers"][2]["shipping"] is None  # said unknown in the JSON
    table = format_product(view)
    assert "?" in table  # nebula-like shop: shipping unknown
    assert "lowest price (in stock) 49.00 EUR (49.00 EUR with shipping)" in table


@pytest.fixture
def rates_file(tmp_path):
    path = tmp_path / "eurofxref.csv"
    path.write_text("Date, USD, JPY, GBP,\n30 November 2026, 1.0500, 160.00, N/A,\n")
    return path


def test_a_rate_file_ranks_currencies_together_and_says_which_rates(rates_file):
    rates = load_rates(rates_file)
    assert (rates.base, rates.date.isoformat(), rates.rates["USD"]) == (
        "EUR",
        "2026-11-30",
        Decimal("1.0500"),
    )
    assert "GBP" not in rates.rates
    records = [
        _record(1, "eur", "100.00"),
        _record(2, "eur2", "110.00"),
        _record(3, "usd", "94.50", currency="USD"),  # 90.00 EUR
        _record(4, "gbp", "70.00", currency="GBP"),  # no rate: apart
    ]
    apart = _product(records)
    assert [o.rank_group for o in apart.offers][-2:] == ["other currency", "other currency"]
    view = _product(records, RankingOptions(rates=rates))
    assert [(o.shop, o.rank_group) for o in view.offers] == [
        ("usd", "in stock"),
        ("eur", "in stock"),
        ("eur2", "in stock"),
        ("gbp", "other currency"),
    ]
    data = view.to_dict()
    assert (data["lowest_compared_price"], data["lowest_compared_currency"]) == ("90.00", "EUR")
    assert data["ranking"]["rates"]["date"] == "2026-11-30"
    assert "rates of 2026-11-30" in data["ranking"]["said"]


def test_rate_files_in_json_and_the_ecb_xml_and_bad_ones(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text('{"base": "EUR", "date": "2026-11-30", "rates": {"USD": "1.05"}}')
    assert load_rates(path).convert(Decimal("10.50"), "USD", "EUR") == Decimal("10.00")
    xml = (
        b'<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
        b'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube>'
        b'<Cube time="2026-11-30"><Cube currency="USD" rate="1.05"/></Cube></Cube>'
        b"</gesmes:Envelope>"
    )
    assert parse_ecb_xml(xml).rates["USD"] == Decimal("1.05")
    path.write_text('{"base": "EUR", "date": "30.11.2026", "rates": {"USD": "1.05"}}')
    with pytest.raises(RatesError, match="date"):
        load_rates(path)
    path.write_text('{"base": "EUR", "date": "2026-11-30", "rates": {"USD": "-1"}}')
    with pytest.raises(RatesError, match="positive"):
        load_rates(path)
    with pytest.raises(RatesError, match="cannot read"):
        load_rates(tmp_path / "missing.csv")
    with pytest.raises(RankingOptionsError):
        RankingOptions(by="cheapest")


def test_unit_prices_from_a_pack_always_and_from_the_specs_for_consumables():
    pack = offer_quantity("Snack Container, Pack of 6", {})
    assert (pack.amount, pack.unit) == (6, "piece")
    assert unit_price(Decimal("12.00"), pack).to_dict() == {"amount": "2.00", "per": "piece"}
    multi = offer_quantity("Water 6 x 500 ml", {})
    assert (multi.amount, multi.unit) == (3000, "ml")
    assert unit_price(Decimal("3.00"), multi).to_dict() == {"amount": "1.00", "per": "l"}
    assert offer_quantity("Insulated Bottle 750 ml", {"volume_ml": 750}) is None  # a capacity
    single = offer_quantity("Coffee beans 1 kg", {}, consumables=True)
    small = offer_quantity("Saffron", {"weight_g": 2}, consumables=True)
    assert unit_price(Decimal("14.99"), single).to_dict() == {"amount": "14.99", "per": "kg"}
    assert unit_price(Decimal("5.00"), small).to_dict() == {"amount": "250.00", "per": "100 g"}


def test_ranking_by_unit_price_prefers_the_cheaper_litre():
    records = [
        _record(1, "small", "2.00", title="Juice 1 l"),
        _record(2, "big", "3.00", title="Juice 6 x 500 ml"),
    ]
    view = _product(records, RankingOptions(by="unit"))
    assert [(o.shop, o.unit_price.to_dict()["amount"]) for o in view.offers] == [
        ("big", "1.00"),
        ("small", "2.00"),
    ]


def test_a_price_far_below_the_offers_own_history_is_flagged():
    history = [
        PricePoint(Decimal(p), "EUR", "InStock", T0 + timedelta(days=n))
        for n, p in enumerate(("59.99", "61.00", "0.01"))
    ]
    current = replace(history[-1])
    assert price_flags([current], [history]) == ["implausible"]
    assert price_flags([current], [history[-1:]]) == [None]  # one crawl is no history
    sale = replace(current, price=Decimal("39.99"))
    assert price_flags([sale], [[*history[:-1], sale]]) == [None]  # a sale is a price


def test_an_alert_ignores_a_price_far_below_the_offers_own_history(tmp_path):
    from cumpair.alerts.book import WatchBook, make_watch
    from cumpair.alerts.check import check_watches
    from cumpair.index import ProductStore, StoreOptions
    from cumpair.search.products import ProductGroups

    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(tmp_path)
        for n, price in enumerate(("59.99", "61.00", "0.01")):
            record = _record(1, "solo", price, gtin="4006381333931")
            record = replace(record, id=None, last_seen=None, seen_at=T0 + timedelta(days=n))
            offer_id = store.upsert(record, {}).offer_id
        groups.assign(store, offer_id, {})
        groups.close()
    with WatchBook.open(tmp_path) as book:
        book.add(make_watch("4006381333931", below=Decimal("1.00"), webhook="http://127.0.0.1:9/h"))
        with (
            ProductStore.open(tmp_path, readonly=True) as store,
            ProductGroups.open(tmp_path, readonly=True) as groups,
        ):
            assert check_watches(book, store, groups) == 0  # the only offer: no others to judge by


def test_an_ungrouped_offers_placeholder_is_judged_by_its_own_history(tmp_path):
    from cumpair.index import ProductStore, StoreOptions
    from cumpair.search.export import product_dicts
    from cumpair.search.products import ProductGroups

    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        for n, price in enumerate(("59.99", "61.00", "0.01")):
            record = _record(1, "solo", price)
            store.upsert(replace(record, id=None, last_seen=None, seen_at=T0 + timedelta(n)), {})
        ProductGroups.open(tmp_path).close()  # nothing grouped yet
    with (
        ProductStore.open(tmp_path, readonly=True) as store,
        ProductGroups.open(tmp_path, readonly=True) as groups,
    ):
        (product,) = product_dicts(store, groups)
    assert product["product_id"] is None
    assert product["offers"][0]["price_flag"] == "implausible"
    assert product["lowest_price"] is None
