"""The demo shops' comparison-rule offers, read off their rendered pages by the real extraction,
stored, grouped and ranked: the exact order of offers in `search_index.py --json` and the JSON
API, under each ranking option, and alerts that ignore the placeholder price.

Nebula's pages need a browser (`test_crawl.py` crawls them); here its offers come from the JSON
its page renders, with its shop config's rules, as the spider's item would hold them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from cumpair.alerts.book import WatchBook, make_watch
from cumpair.alerts.check import check_watches
from cumpair.demo import pages
from cumpair.demo.catalog import RULES, SHIPPING, SHOP_HOSTS, SHOPS, build_catalog
from cumpair.identifiers import normalize_gtin
from cumpair.index import ProductStore, StoreOptions
from cumpair.ingest.stages import offer_record
from cumpair.search.cli import main_search
from cumpair.search.products import ProductGroups
from cumpair.search.ranking_options import RankingOptions
from cumpair.search.rates import load_rates
from cumpair.search.server import create_app
from cumpair.search.service import SearchService
from cumpair_scraper.extraction import extract_product
from cumpair_scraper.items import ProductItem
from cumpair_scraper.shopconfig import load_shop_configs

DEMO_RATES = Path(__file__).resolve().parents[1] / "cumpair" / "demo" / "rates.json"
CATALOG = build_catalog()


def _item(offer, configs) -> dict:
    base = f"http://{SHOP_HOSTS[offer.shop]}:8070"
    shop = configs[offer.shop].rebased(base)
    if offer.shop == "nebula":
        data = pages.nebula_item_json(offer, base)
        item = ProductItem(
            shop="nebula",
            url=base + offer.url_path,
            title=data["name"],
            price=Decimal(data["price"]),
            currency=data["currency"],
            availability=data["availability"],
            brand=data["brand"],
            model=data["mpn"],
            sku=data["sku"],
            gtin=normalize_gtin(data["gtin"]),
            shipping=[dict(rule) for rule in shop.shipping],
        )
        return asdict(item)
    render = {
        "northwind": lambda: pages.northwind_product(offer, base),
        "bluepeak": lambda: pages.bluepeak_product(offer, base),
        "cornerstore": lambda: pages.cornerstore_product(offer),
    }[offer.shop]
    response = HtmlResponse(base + offer.url_path, body=render(), encoding="utf-8")
    return asdict(extract_product(response, shop).item)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    """A store of every offer of the products the rule offers are for, grouped by GTIN."""
    path = tmp_path_factory.mktemp("comparison")
    configs = load_shop_configs()
    with ProductStore.open(path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(path)
        for rule in RULES:
            for offer in CATALOG.offers_for_product(CATALOG.rule_offer(rule).product_id):
                record = offer_record(_item(offer, configs), ())
                groups.assign(store, store.upsert(record, {}).offer_id, {})
        groups.close()
    return path


def _gtin(rule: str) -> str:
    return CATALOG.rule_offer(rule).product.gtin


def _cli(capsys, monkeypatch, index: Path, rule: str, *options: str) -> dict:
    for name in ("BY", "SHIP_TO", "RATES", "CURRENCY"):
        monkeypatch.delenv(f"CUMPAIR_RANKING_{name}", raising=False)
    argv = ["--index", str(index), "--gtin", _gtin(rule), "--json", *options]
    assert main_search(argv) == 0
    (product,) = json.loads(capsys.readouterr().out)["products"]
    return product


def _order(product: dict) -> list[tuple[str, ...]]:
    return [
        (o["shop"], o["rank_group"], o["condition"], o["price_flag"]) for o in product["offers"]
    ]


def test_the_out_of_stock_cheapest_offer_comes_last_and_is_not_the_lowest(
    capsys, monkeypatch, index
):
    product = _cli(capsys, monkeypatch, index, "out_of_stock_cheapest")
    assert _order(product) == [
        ("nebula", "in stock", "New", None),
        ("cornerstore", "in stock", "New", None),
        ("northwind", "in stock", "New", None),
        ("bluepeak", "out of stock", "New", None),  # 37.00, the cheapest sticker
    ]
    assert (product["lowest_price"], product["lowest_price_basis"]) == ("38.00", "in stock")


def test_a_refurbished_offer_is_ranked_after_the_new_ones(capsys, monkeypatch, index):
    product = _cli(capsys, monkeypatch, index, "refurbished")
    assert _order(product) == [
        ("nebula", "in stock", "New", None),
        ("northwind", "in stock", "New", None),
        ("bluepeak", "in stock", "Refurbished", None),  # 9.06, from markup and title
        ("cornerstore", "out of stock", "New", None),
    ]
    assert (product["lowest_price"], product["lowest_price_condition"]) == ("12.95", "New")
    used = _cli(capsys, monkeypatch, index, "refurbished", "--condition", "refurbished")
    assert [o["shop"] for o in used["offers"]] == ["bluepeak"]


def test_another_currency_is_apart_without_rates_and_ranked_with_the_demo_rates(
    capsys, monkeypatch, index
):
    apart = _cli(capsys, monkeypatch, index, "other_currency")
    assert [(o["shop"], o["rank_group"]) for o in apart["offers"]] == [
        ("cornerstore", "in stock"),
        ("northwind", "in stock"),
        ("bluepeak", "other currency"),
    ]
    converted = _cli(capsys, monkeypatch, index, "other_currency", "--rates", str(DEMO_RATES))
    assert [(o["shop"], o["compared_price"]) for o in converted["offers"]] == [
        ("bluepeak", "191.99"),  # 207.35 USD at 1.08
        ("cornerstore", "192.49"),
        ("northwind", "197.00"),
    ]
    assert (converted["lowest_price"], converted["lowest_price_currency"]) == ("207.35", "USD")
    assert converted["ranking"]["rates"]["date"] == "2026-11-30"
    assert "rates of 2026-11-30" in converted["ranking"]["said"]


def test_free_shipping_above_a_threshold_wins_by_total_price(capsys, monkeypatch, index):
    by_price = _cli(capsys, monkeypatch, index, "free_shipping")
    assert [o["shop"] for o in by_price["offers"]] == [
        "nebula",
        "cornerstore",
        "bluepeak",
        "northwind",
    ]
    total = _cli(
        capsys, monkeypatch, index, "free_shipping", "--rank-by", "total", "--ship-to", "DE"
    )
    assert [(o["shop"], o["shipping"], o["total_price"]) for o in total["offers"]] == [
        ("cornerstore", "0", "77.99"),  # free from 30
        ("bluepeak", "0", "78.99"),  # free from 50
        ("northwind", "5.95", "85.95"),  # free only from 100
        ("nebula", None, None),  # states no shipping: unknown, not free
    ]
    assert total["lowest_price_offer_id"] == total["offers"][0]["offer_id"]


def test_a_pack_shows_its_unit_price_and_leads_by_unit_price(capsys, monkeypatch, index):
    by_price = _cli(capsys, monkeypatch, index, "pack")
    assert [o["shop"] for o in by_price["offers"]] == [
        "nebula",
        "cornerstore",
        "bluepeak",
        "northwind",
    ]
    pack = by_price["offers"][1]
    assert pack["unit_price"] == {"amount": "25.64", "per": "piece"}  # 76.92 for 3
    by_unit = _cli(capsys, monkeypatch, index, "pack", "--rank-by", "unit")
    assert [(o["shop"], o["unit_price"]) for o in by_unit["offers"]] == [
        ("cornerstore", {"amount": "51.28", "per": "l"}),  # 3 x 500 ml
        ("nebula", None),  # no quantity stated
        ("bluepeak", {"amount": "56.98", "per": "l"}),
        ("northwind", {"amount": "60.98", "per": "l"}),
    ]


def test_a_placeholder_price_is_flagged_and_kept_out_of_the_lowest(capsys, monkeypatch, index):
    product = _cli(capsys, monkeypatch, index, "placeholder")
    assert _order(product) == [
        ("cornerstore", "in stock", "New", None),
        ("northwind", "in stock", "New", None),
        ("bluepeak", "in stock", "New", "implausible"),  # 0.01
    ]
    assert product["lowest_price"] == "21.00"


async def test_the_api_ranks_the_same_and_takes_the_ranking_options(aiohttp_client, index):
    with (
        ProductStore.open(index, readonly=True) as store,
        ProductGroups.open(index, readonly=True) as groups,
    ):
        service = SearchService(store, groups, encoder_loader=_no_models)
        ranking = RankingOptions(rates=load_rates(DEMO_RATES))
        client = await aiohttp_client(create_app(service, warm=False, ranking=ranking))
        params = {"gtin": _gtin("free_shipping"), "rank_by": "total", "ship_to": "DE"}
        total = await (await client.get("/search", params=params)).json()
        params = {"gtin": _gtin("other_currency")}
        converted = await (await client.get("/search", params=params)).json()
        bad = await client.get("/search", params={**params, "condition": "mint"})
        page = await (await client.get("/", params=params)).text()
    assert [o["shop"] for o in total["products"][0]["offers"]] == [
        "cornerstore",
        "bluepeak",
        "northwind",
        "nebula",
    ]
    assert [o["shop"] for o in converted["products"][0]["offers"]] == [
        "bluepeak",
        "cornerstore",
        "northwind",
    ]
    assert bad.status == 400
    assert "converted with the rates of 2026-11-30" in page


def test_alerts_ignore_the_placeholder_price(index, tmp_path):
    with WatchBook.open(tmp_path) as book:
        book.add(make_watch(_gtin("placeholder"), below=Decimal("1.00"), webhook="http://h.test/"))
        with (
            ProductStore.open(index, readonly=True) as store,
            ProductGroups.open(index, readonly=True) as groups,
        ):
            assert check_watches(book, store, groups) == 0  # 0.01 is no price to buy at


def _no_models():
    raise AssertionError("these queries must not load models")


def test_the_catalogs_shipping_table_is_what_the_shop_configs_state():
    configs = load_shop_configs()
    for shop in SHOPS:
        rules = [r for r in configs[shop].shipping if r["country"] is None]
        stated = [(Decimal(r["rate"]), Decimal(r["free_from"])) for r in rules]
        assert stated == ([SHIPPING[shop]] if shop in SHIPPING else []), shop
