"""Product-page extraction: structured data first, selectors as fallback, bad data reported."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from scrapy.http import HtmlResponse

from cumpair_scraper.extraction import extract_product
from cumpair_scraper.shopconfig import ShopConfigError, parse_shop_config

SHOP = parse_shop_config(
    """
name = "testshop"
start_urls = ["http://shop.test/"]
default_currency = "EUR"
[fields]
title = "h1.t::text"
price = "span.p::text"
gtin = "td.ean::text"
availability = "div.stock::text"
images = "img.g::attr(src)"
[availability]
"Sofort lieferbar" = "InStock"
""",
    "inline",
)


def page(body: str, url: str = "http://shop.test/p/1") -> HtmlResponse:
    return HtmlResponse(
        url, body=f"<html><head></head><body>{body}</body></html>", encoding="utf-8"
    )


def jsonld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


PRODUCT = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "ACME  XR-200 Cordless Drill",
    "sku": "NW-1",
    "mpn": "XR-200",
    "gtin13": "4006381333931",
    "brand": {"@type": "Brand", "name": "ACME"},
    "image": ["/img/1.jpg", "http://cdn.test/2.png"],
    "offers": {
        "@type": "Offer",
        "price": "129.99",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/InStock",
    },
}


def test_jsonld_product_fills_every_field():
    result = extract_product(page(jsonld(PRODUCT)), SHOP)
    item = result.item
    assert result.sources == ["json-ld"]
    assert item.title == "ACME XR-200 Cordless Drill"
    assert item.price == Decimal("129.99")
    assert item.currency == "EUR"
    assert item.availability == "InStock"
    assert (item.brand, item.model, item.sku, item.gtin) == (
        "ACME",
        "XR-200",
        "NW-1",
        "4006381333931",
    )
    assert item.image_urls == ["http://shop.test/img/1.jpg", "http://cdn.test/2.png"]
    assert result.problems == []


def test_jsonld_inside_graph_is_found():
    data = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage"}, PRODUCT]}
    assert extract_product(page(jsonld(data)), SHOP).item.gtin == "4006381333931"


def test_microdata_product_is_read():
    body = """
    <div itemscope itemtype="https://schema.org/Product">
      <h1 itemprop="name">Trail Lamp</h1>
      <span itemprop="brand" itemscope itemtype="https://schema.org/Brand">
        <span itemprop="name">Lumo</span></span>
      <meta itemprop="gtin12" content="036000291452">
      <img itemprop="image" src="/i/lamp.png">
      <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
        <meta itemprop="price" content="19.50"><meta itemprop="priceCurrency" content="EUR">
        <link itemprop="availability" href="https://schema.org/PreOrder"></div>
    </div>"""
    result = extract_product(page(body), SHOP)
    assert result.sources == ["microdata"]
    item = result.item
    assert (item.title, item.brand, item.price, item.availability) == (
        "Trail Lamp",
        "Lumo",
        Decimal("19.50"),
        "PreOrder",
    )
    assert item.gtin == "0036000291452"  # UPC-A in its canonical 13-digit form
    assert item.image_urls == ["http://shop.test/i/lamp.png"]


def test_broken_jsonld_falls_back_to_selectors_and_is_reported():
    body = (
        '<script type="application/ld+json">{"@type": "Product", "name": </script>'
        '<h1 class="t">Desk Lamp</h1><span class="p">1.299,00 €</span>'
    )
    result = extract_product(page(body), SHOP)
    assert result.item.title == "Desk Lamp"
    assert result.item.price == Decimal("1299.00")
    assert result.item.currency == "EUR"
    assert result.sources == ["selectors"]
    assert any(problem.startswith("json-ld") for problem in result.problems)


def test_bad_gtin_becomes_null_and_is_reported():
    bad = dict(PRODUCT, gtin13="4006381333932")
    result = extract_product(page(jsonld(bad)), SHOP)
    assert result.item.gtin is None
    assert any("not a valid GTIN" in problem for problem in result.problems)


@pytest.mark.parametrize("price", ["call us", "", "-5.00"])
def test_unusable_price_is_null(price):
    data = dict(PRODUCT, offers=dict(PRODUCT["offers"], price=price))
    assert extract_product(page(jsonld(data)), SHOP).item.price is None


def test_selectors_fill_only_what_structured_data_lacks():
    data = {k: v for k, v in PRODUCT.items() if k != "gtin13"}
    body = jsonld(data) + '<h1 class="t">Other title</h1><table><td class="ean">4006381333931</td>'
    item = extract_product(page(body), SHOP).item
    assert item.title == "ACME XR-200 Cordless Drill"  # structured data wins
    assert item.gtin == "4006381333931"  # the gap is filled from the selector


def test_plain_html_with_config_availability_words():
    body = (
        '<h1 class="t">Kettle</h1><span class="p">€ 39,90</span>'
        '<div class="stock">Sofort lieferbar</div><img class="g" src="k.jpg">'
    )
    item = extract_product(page(body), SHOP).item
    assert (item.price, item.currency, item.availability) == (Decimal("39.90"), "EUR", "InStock")
    assert item.image_urls == ["http://shop.test/p/k.jpg"]


def test_opengraph_only_page():
    head = (
        '<meta property="og:title" content="Mug"><meta property="og:image" content="/m.jpg">'
        '<meta property="product:price:amount" content="7.5">'
        '<meta property="product:price:currency" content="USD">'
    )
    response = HtmlResponse(
        "http://shop.test/p/2",
        encoding="utf-8",
        body=f"<html><head>{head}</head><body></body></html>",
    )
    result = extract_product(response, SHOP)
    assert result.sources == ["opengraph"]
    assert (result.item.title, result.item.price, result.item.currency) == (
        "Mug",
        Decimal("7.5"),
        "USD",
    )


def test_page_without_product_gives_empty_item():
    item = extract_product(page("<p>Nothing here</p>"), SHOP).item
    assert item.title is None and item.price is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'", "start_urls"),
        ("name = 'Bad Name'\nstart_urls=['http://a/']", "name"),
        ("name = 'x'\nstart_urls=['http://a/']\n[fields]\nprize='p'", "unknown"),
        ("name = ", "TOML"),
    ],
)
def test_malformed_shop_config_is_a_clear_error(text, message):
    with pytest.raises(ShopConfigError, match=message):
        parse_shop_config(text, "bad.toml")


def test_rebased_config_moves_every_url():
    moved = SHOP.rebased("http://127.0.0.1:9999")
    assert moved.start_urls == ("http://127.0.0.1:9999/",)
    assert moved.allowed_domains == ["127.0.0.1"]
