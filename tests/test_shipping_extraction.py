"""Shipping rules read from schema.org shippingDetails and delivery charges, or from the shop
config's [shipping] table where a page states none."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from scrapy.http import HtmlResponse

from cumpair.search.shipping import shipping_cost
from cumpair_scraper.extraction import extract_product
from cumpair_scraper.shopconfig import ShopConfig, ShopConfigError, parse_shop_config

GENERIC = ShopConfig(name="generic", display_name="generic")
SHOP_TOML = """
name = "demo"
start_urls = ["http://shop.test/"]
default_currency = "EUR"
[shipping]
rate = "4.95"
free_from = "50"
[shipping.countries.CH]
rate = "14.90"
"""


def _page(offer: dict) -> HtmlResponse:
    data = {"@context": "https://schema.org", "@type": "Product", "name": "Saw", "offers": offer}
    html = f'<html><head><script type="application/ld+json">{json.dumps(data)}</script></head>'
    return HtmlResponse("https://shop.test/p/1", body=html + "</html>", encoding="utf-8")


def test_offer_shipping_details_per_destination_with_a_free_threshold():
    offer = {
        "@type": "Offer",
        "price": "39.00",
        "priceCurrency": "EUR",
        "shippingDetails": [
            {
                "@type": "OfferShippingDetails",
                "shippingRate": {"@type": "MonetaryAmount", "value": "3.90", "currency": "EUR"},
                "shippingDestination": {"@type": "DefinedRegion", "addressCountry": ["DE", "AT"]},
                "freeShippingThreshold": {"@type": "MonetaryAmount", "value": "29.00"},
            },
            {
                "@type": "OfferShippingDetails",
                "shippingRate": {"@type": "MonetaryAmount", "value": 12, "currency": "EUR"},
                "shippingDestination": {"@type": "DefinedRegion", "addressCountry": "FR"},
            },
            {"@type": "OfferShippingDetails", "doesNotShip": True, "shippingRate": {"value": 0}},
        ],
    }
    item = extract_product(_page(offer), GENERIC).item
    assert [(r["country"], r["rate"], r["free_from"]) for r in item.shipping] == [
        ("DE", "3.90", "29.00"),
        ("AT", "3.90", "29.00"),
        ("FR", "12", None),
    ]
    assert shipping_cost(item.shipping, item.price, "EUR", "DE") == 0  # 39 >= 29
    assert shipping_cost(item.shipping, item.price, "EUR", "FR") == Decimal("12")
    assert shipping_cost(item.shipping, item.price, "EUR", "CH") is None


def test_delivery_charge_specifications_are_shipping_never_the_price():
    offer = {
        "@type": "Offer",
        "priceCurrency": "EUR",
        "priceSpecification": [
            {"@type": "DeliveryChargeSpecification", "price": "5.90", "priceCurrency": "EUR"},
            {
                "@type": "DeliveryChargeSpecification",
                "price": "0",
                "priceCurrency": "EUR",
                "eligibleTransactionVolume": {"@type": "PriceSpecification", "minPrice": "100"},
            },
            {"@type": "UnitPriceSpecification", "price": "79.00", "priceCurrency": "EUR"},
        ],
    }
    item = extract_product(_page(offer), GENERIC).item
    assert item.price == Decimal("79.00")
    assert shipping_cost(item.shipping, item.price, "EUR", None) == Decimal("5.90")
    assert shipping_cost(item.shipping, Decimal("120"), "EUR", "DE") == 0


def test_the_shop_config_rule_applies_where_the_page_states_no_shipping():
    shop = parse_shop_config(SHOP_TOML, "demo.toml")
    offer = {"@type": "Offer", "price": "20.00", "priceCurrency": "EUR"}
    item = extract_product(_page(offer), shop).item
    assert item.field_sources["shipping"] == "shop_config"
    assert shipping_cost(item.shipping, Decimal("20"), "EUR", "DE") == Decimal("4.95")
    assert shipping_cost(item.shipping, Decimal("60"), "EUR", "DE") == 0
    assert shipping_cost(item.shipping, Decimal("60"), "EUR", "CH") == Decimal("14.90")
    assert extract_product(_page(offer), GENERIC).item.shipping == []  # unknown, not free


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[shipping]\nrate = "free"', "rate must be a number"),
        ("[shipping]\nrate = -1", "non-negative"),
        ('[shipping.countries.Germany]\nrate = "3"', "not a country code"),
        ("[shipping.countries.DE]\nnote = 1", "neither rate nor free_from"),
        ('[shipping]\ncurrency = "euro"\nrate = 1', "ISO 4217"),
    ],
)
def test_a_bad_shipping_table_is_a_clear_config_error(table, message):
    text = 'name = "demo"\nstart_urls = ["http://shop.test/"]\n' + table
    with pytest.raises(ShopConfigError, match=message):
        parse_shop_config(text, "demo.toml")
