"""Real shop pages (fragments in tests/fixtures/pages, provenance on their first line).

Each test is one trap of issue 15 as a real page shows it: a broken JSON-LD block beside the
valid Product, JSON-LD and microdata that disagree, one offer per size, sizes priced apart, and
pages without structured data whose buy box sits above or below the title.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from cumpair_scraper.extraction import extract_product
from cumpair_scraper.shopconfig import ShopConfig
from cumpair_scraper.spiders.shop import ShopSpider

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
GENERIC = ShopConfig(name="generic", display_name="generic")


def real_page(name: str) -> HtmlResponse:
    """A fixture page at the URL its provenance line names."""
    body = (FIXTURES / name).read_bytes()
    url = re.search(rb"\((?:[^,]+), (https?://[^)]+)\)", body.split(b"\n", 1)[0]).group(1)
    return HtmlResponse(url.decode(), body=body)


def test_invalid_first_jsonld_block_keeps_the_product_of_the_next():
    result = extract_product(real_page("hm_broken_first_jsonld.html"), GENERIC)
    item = result.item
    assert (item.title, item.price, item.currency) == (
        "Short en jean Hybrid Regular",
        Decimal("29.99"),
        "EUR",
    )
    assert item.sku == "1045436003" and item.availability == "InStock"
    assert item.brand == "H&M"
    assert any(p.startswith("json-ld: block 1") for p in result.problems)


def test_bad_jsonld_block_is_counted_in_the_crawl_stats():
    spider_cls = ShopSpider.for_shop(GENERIC)
    crawler = get_crawler(spider_cls)
    spider = spider_cls.from_crawler(crawler)
    items = list(spider.parse_product(real_page("hm_broken_first_jsonld.html")))
    assert items[0].price == Decimal("29.99")
    assert crawler.stats.get_value("cumpair/page_problems/json-ld") == 1
    assert crawler.stats.get_value("cumpair/extracted_from/json-ld") == 1


def test_jsonld_and_microdata_disagreeing_on_sku_is_flagged():
    item = extract_product(real_page("otto_jsonld_and_microdata.html"), GENERIC).item
    assert item.sku == "64649515"  # JSON-LD first; the disagreement is on the item
    assert item.field_conflicts == [
        {"field": "sku", "values": {"json-ld": "64649515", "microdata": "6464951530"}}
    ]
    assert item.price == Decimal("333.00")
    assert item.field_sources["price"] == "json-ld"


def test_offer_per_size_gives_variants_and_the_parent_sku_named_in_the_url():
    item = extract_product(real_page("zalando_offer_per_size.html"), GENERIC).item
    assert item.price == Decimal("179.95") and item.availability == "InStock"
    assert item.offer_count == len(item.variants) == 6
    assert {v["sku"][:13] for v in item.variants} == {"H0721A01M-K11"}
    assert item.sku == "H0721A01M-K11"  # the article number, not one size's SKU


def test_sizes_priced_apart_give_the_from_price_and_the_range():
    item = extract_product(real_page("zalando_sizes_priced_apart.html"), GENERIC).item
    assert item.price == Decimal("14.9")  # the page shows "ab 14,90 €"
    assert (item.price_low, item.price_high) == (Decimal("14.9"), Decimal("34.99"))
    assert item.availability == "OutOfStock"  # every size sold out


def test_page_without_structured_data_buy_box_above_the_title():
    item = extract_product(real_page("amazon_buybox_above_title.html"), GENERIC).item
    assert item.title.startswith("HP Chromebook x360 12b-ca0000sf Ordinateur")
    assert (item.price, item.currency) == (Decimal("209.00"), "EUR")  # not the struck 318,46
    assert item.availability == "InStock" and item.brand == "HP"
    assert item.image_urls[0].startswith("https://m.media-amazon.com/images/")
    assert set(item.field_sources.values()) == {"visible"}


def test_page_without_structured_data_title_then_price_then_struck_list_price():
    item = extract_product(real_page("amazon_title_then_struck_price.html"), GENERIC).item
    assert item.title == "Amazon Aware Women's 100% Recycled Polyester Sherpa Jacket"
    assert (item.price, item.currency) == (Decimal("28.07"), "EUR")  # not "was €53.99"
    assert item.brand == "Amazon Aware"
    assert item.availability is None  # no size chosen: the page says nothing


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.html")))
def test_every_fixture_names_its_source(name):
    first_line = (FIXTURES / name).read_text(encoding="utf-8").split("\n", 1)[0]
    assert first_line.startswith("<!-- provenance: calgo-lab/green-db/")
