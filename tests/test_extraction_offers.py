"""Offers and the merge across syntaxes, on small pages written after real shops' markup."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from scrapy.http import HtmlResponse

from cumpair_scraper.extraction import extract_product
from cumpair_scraper.shopconfig import ShopConfig

GENERIC = ShopConfig(name="generic", display_name="generic")


def page(body: str = "", head: str = "") -> HtmlResponse:
    html = f"<html><head>{head}</head><body>{body}</body></html>"
    return HtmlResponse("https://shop.test/p/ab12-c11.html", body=html, encoding="utf-8")


def jsonld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def og(**tags: str) -> str:
    return "".join(
        f'<meta property="{name if ":" in name else name.replace("_", ":")}" content="{value}">'
        for name, value in tags.items()
    )


def product(**fields: object) -> dict:
    return {"@context": "https://schema.org", "@type": "Product", "name": "Kettle", **fields}


def test_opengraph_price_and_availability_fill_a_microdata_product_without_offers():
    body = (
        '<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Lamp</h1></div>'
    )
    head = og(
        og_title="Lamp | Shop",
        product_price_amount="19.90",
        product_price_currency="EUR",
        og_availability="instock",
    )
    item = extract_product(page(body, head), GENERIC).item
    assert (item.title, item.price, item.currency, item.availability) == (
        "Lamp",
        Decimal("19.90"),
        "EUR",
        "InStock",
    )
    assert item.field_sources["title"] == "microdata"
    assert item.field_sources["price"] == item.field_sources["availability"] == "opengraph"


def test_disagreeing_prices_leave_the_price_empty_and_are_flagged():
    offers = {"@type": "Offer", "price": "20.00", "priceCurrency": "EUR"}
    head = og(og_title="Kettle", og_price_amount="15.00", og_price_currency="EUR")
    result = extract_product(page(jsonld(product(offers=offers)), head), GENERIC)
    assert result.item.price is None
    assert result.item.field_sources["price"] == "conflict"
    assert result.item.field_conflicts[0] == {
        "field": "price",
        "values": {"json-ld": "20.00", "opengraph": "15.00"},
    }
    assert any(p.startswith("conflict: price") for p in result.problems)


def test_list_price_in_jsonld_loses_to_the_sale_price_when_the_page_strikes_it():
    offers = {"@type": "Offer", "price": "34.90", "priceCurrency": "EUR"}
    head = og(og_title="Kettle", product_price_amount="14.90", product_price_currency="EUR")
    body = jsonld(product(offers=offers)) + '<p><del>34,90 €</del> <b class="price">14,90 €</b></p>'
    item = extract_product(page(body, head), GENERIC).item
    assert (item.price, item.list_price) == (Decimal("14.90"), Decimal("34.90"))
    assert item.field_sources["price"] == "opengraph"
    assert item.field_conflicts[0]["settled"].startswith("opengraph")


def test_offer_level_identifiers_fill_what_the_product_lacks():
    offers = {
        "@type": "Offer",
        "price": "9.99",
        "priceCurrency": "EUR",
        "sku": "K-1",
        "gtin13": "4006381333931",
        "mpn": "KX-9",
        "availability": "https://schema.org/InStock",
    }
    item = extract_product(page(jsonld(product(offers=offers))), GENERIC).item
    assert (item.sku, item.gtin, item.model, item.availability) == (
        "K-1",
        "4006381333931",
        "KX-9",
        "InStock",
    )


def test_any_offer_in_stock_makes_the_item_in_stock_at_that_offers_price():
    offers = [
        {"@type": "Offer", "price": "10.00", "priceCurrency": "EUR", "sku": "K-S",
         "availability": "https://schema.org/OutOfStock"},
        {"@type": "Offer", "price": "12.00", "priceCurrency": "EUR", "sku": "K-M",
         "availability": "https://schema.org/InStock"},
    ]  # fmt: skip
    item = extract_product(page(jsonld(product(offers=offers))), GENERIC).item
    assert (item.availability, item.price) == ("InStock", Decimal("12.00"))
    assert (item.price_low, item.price_high, item.offer_count) == (
        Decimal("10.00"),
        Decimal("12.00"),
        2,
    )
    assert [v["sku"] for v in item.variants] == ["K-S", "K-M"]
    assert item.sku is None  # two sizes, and the URL names neither stem


def test_aggregate_offer_gives_the_low_price_the_range_and_the_count():
    offers = {
        "@type": "AggregateOffer",
        "lowPrice": "99.00",
        "highPrice": "149.50",
        "offerCount": "7",
        "priceCurrency": "EUR",
    }
    item = extract_product(page(jsonld(product(offers=offers))), GENERIC).item
    assert (item.price, item.price_low, item.price_high, item.offer_count) == (
        Decimal("99.00"),
        Decimal("99.00"),
        Decimal("149.50"),
        7,
    )


def test_product_group_variants_carry_their_offers():
    group = {
        "@context": "https://schema.org",
        "@type": "ProductGroup",
        "name": "Shirt",
        "productGroupID": "SH-1",
        "brand": {"@type": "Brand", "name": "Acme"},
        "hasVariant": [
            {"@type": "Product", "sku": "SH-1-S", "gtin13": "4006381333931",
             "offers": {"@type": "Offer", "price": "20.00", "priceCurrency": "EUR",
                        "availability": "https://schema.org/OutOfStock"}},
            {"@type": "Product", "sku": "SH-1-M",
             "offers": {"@type": "Offer", "price": "22.00", "priceCurrency": "EUR",
                        "availability": "https://schema.org/InStock"}},
        ],
    }  # fmt: skip
    item = extract_product(page(jsonld(group)), GENERIC).item
    assert (item.title, item.brand, item.sku) == ("Shirt", "Acme", "SH-1")
    assert (item.price, item.availability) == (Decimal("22.00"), "InStock")
    assert item.variants[0] == {
        "sku": "SH-1-S",
        "gtin": "4006381333931",
        "price": Decimal("20.00"),
        "currency": "EUR",
        "availability": "OutOfStock",
    }
    assert item.gtin is None  # one variant's GTIN is not the group's


def test_unit_and_instalment_prices_are_never_the_price_and_list_prices_are_kept():
    offers = {
        "@type": "Offer",
        "priceCurrency": "EUR",
        "priceSpecification": [
            {"@type": "UnitPriceSpecification", "price": "4.99", "priceCurrency": "EUR",
             "referenceQuantity": {"@type": "QuantitativeValue", "value": "1", "unitCode": "KGM"}},
            {"@type": "UnitPriceSpecification", "price": "1.17", "billingDuration": "P1M"},
            {"@type": "UnitPriceSpecification", "price": "45.99",
             "priceType": "https://schema.org/StrikethroughPrice"},
            {"@type": "UnitPriceSpecification", "price": "32.19", "valueAddedTaxIncluded": True},
        ],
    }  # fmt: skip
    item = extract_product(page(jsonld(product(offers=offers))), GENERIC).item
    assert (item.price, item.list_price, item.vat_included) == (
        Decimal("32.19"),
        Decimal("45.99"),
        True,
    )


def test_currency_from_the_page_when_the_offer_lacks_it():
    offers = {"@type": "Offer", "price": "5.00"}
    head = og(og_title="Kettle", product_price_currency="CHF")
    item = extract_product(page(jsonld(product(offers=offers)), head), GENERIC).item
    assert (item.price, item.currency) == (Decimal("5.00"), "CHF")
    assert item.field_sources["currency"] == "opengraph"


def test_visible_fallback_only_fills_what_structured_data_lacks():
    offers = {"@type": "Offer", "price": "5.00", "priceCurrency": "EUR"}
    body = (
        jsonld(product(offers=offers)) + '<h1>Other heading</h1><span class="price">7,00 €</span>'
    )
    body += '<div id="availability">Auf Lager</div>'
    item = extract_product(page(body), GENERIC).item
    assert (item.title, item.price) == ("Kettle", Decimal("5.00"))
    assert (item.availability, item.field_sources["availability"]) == ("InStock", "visible")


def test_visible_prices_beside_list_unit_or_instalment_words_are_skipped():
    body = (
        "<h1>Kettle</h1>"
        '<div class="price"><span>UVP 45,99 €</span></div>'
        '<div class="price"><span>10,00 € / 1 Stück</span></div>'
        '<div class="price"><span>monatlich 1,17 €</span></div>'
        '<div class="price-box"><span class="sale">29,99 €</span></div>'
    )
    item = extract_product(page(body), GENERIC).item
    assert (item.price, item.currency, item.field_sources["price"]) == (
        Decimal("29.99"),
        "EUR",
        "visible",
    )


def test_visible_price_without_a_currency_is_not_taken():
    item = extract_product(page('<h1>Kettle</h1><span class="price">29.99</span>'), GENERIC).item
    assert item.title == "Kettle" and item.price is None


def test_visible_prices_that_disagree_around_the_buy_button_give_no_price():
    body = (
        '<h1>Kettle</h1><span class="price">29,99 €</span>'
        '<span class="price">19,99 €</span><button id="add-to-cart">Add to cart</button>'
    )
    assert extract_product(page(body), GENERIC).item.price is None


def test_structured_price_the_page_strikes_through_gives_way_to_the_shown_price():
    offers = {"@type": "Offer", "price": "34.90", "priceCurrency": "EUR"}
    body = jsonld(product(offers=offers)) + (
        '<h1>Kettle</h1><div class="price"><s>34,90 €</s></div>'
        '<div class="price"><span>14,90 €</span></div>'
    )
    item = extract_product(page(body), GENERIC).item
    assert (item.price, item.list_price) == (Decimal("14.90"), Decimal("34.90"))
    assert item.field_sources["price"] == "visible"
    assert item.field_conflicts[0]["settled"].startswith("visible")


def test_struck_structured_price_without_a_shown_price_is_left_empty():
    offers = {"@type": "Offer", "price": "34.90", "priceCurrency": "EUR"}
    body = jsonld(product(offers=offers)) + "<h1>Kettle</h1><p><del>34,90 €</del></p>"
    item = extract_product(page(body), GENERIC).item
    assert item.price is None and item.field_sources["price"] == "conflict"


def test_hidden_price_templates_are_neither_prices_nor_struck_prices():
    # Otto keeps other variants' prices in hidden blocks (class "pl_hidden")
    offers = {"@type": "Offer", "price": "12.99", "priceCurrency": "EUR"}
    body = jsonld(product(offers=offers)) + (
        '<h1>Shirt</h1><span class="pl_hidden"><span class="price__strike-through">12,99 €</span>'
        '</span><span class="price__strike-through">16,99 €</span>'
    )
    item = extract_product(page(body), GENERIC).item
    assert (item.price, item.list_price) == (Decimal("12.99"), Decimal("16.99"))
    assert item.field_sources["list_price"] == "visible"
    hidden = '<h1>Shirt</h1><div hidden><span class="price">9,09 €</span></div>'
    assert extract_product(page(hidden), GENERIC).item.price is None


def test_the_pages_own_product_is_chosen_over_related_ones():
    related = product(name="Toaster", url="https://shop.test/p/toaster.html")
    own = product(name="Kettle", url="/p/ab12-c11.html?ref=x")
    item = extract_product(page(jsonld(related) + jsonld(own)), GENERIC).item
    assert item.title == "Kettle"


def test_opengraph_title_loses_the_shop_name():
    head = og(og_title="Lamp | Lumo Shop", **{"og:site_name": "Lumo Shop"})
    assert extract_product(page("", head), GENERIC).item.title == "Lamp"


def test_stray_itemprop_tags_outside_any_itemscope_fill_the_fallback():
    body = (
        '<h1>Kettle</h1><meta itemprop="price" content="39.90">'
        '<meta itemprop="priceCurrency" content="EUR">'
        '<link itemprop="availability" href="https://schema.org/InStock">'
    )
    item = extract_product(page(body), GENERIC).item
    assert (item.price, item.currency, item.availability) == (Decimal("39.90"), "EUR", "InStock")
    assert item.field_sources["price"] == "visible"


def test_rdfa_product_is_read():
    body = (
        '<div vocab="https://schema.org/" typeof="Product"><h1 property="name">Drill</h1>'
        '<div property="offers" typeof="Offer"><meta property="price" content="59.00">'
        '<meta property="priceCurrency" content="EUR"></div></div>'
    )
    result = extract_product(page(body), GENERIC)
    assert (result.item.title, result.item.price, result.item.currency) == (
        "Drill",
        Decimal("59.00"),
        "EUR",
    )
    assert result.item.field_sources["price"] == "rdfa"


def test_graph_references_to_offers_and_brand_are_followed():
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "Product", "@id": "#product", "name": "Kettle",
             "brand": {"@id": "#brand"}, "offers": [{"@id": "#offer"}]},
            {"@type": "Brand", "@id": "#brand", "name": "Acme"},
            {"@type": "Offer", "@id": "#offer", "price": "24.50", "priceCurrency": "EUR",
             "availability": "https://schema.org/InStock"},
        ],
    }  # fmt: skip
    item = extract_product(page(jsonld(graph)), GENERIC).item
    assert (item.brand, item.price, item.availability) == ("Acme", Decimal("24.50"), "InStock")


def test_brand_from_a_details_table_row():
    body = "<h1>Kettle</h1><table><tr><th>Marke</th><td>Acme</td></tr></table>"
    item = extract_product(page(body), GENERIC).item
    assert (item.brand, item.field_sources["brand"]) == ("Acme", "visible")


def test_opengraph_price_of_one_size_agrees_with_the_from_price():
    offers = [
        {"@type": "Offer", "price": "20.00", "priceCurrency": "EUR", "sku": "S"},
        {"@type": "Offer", "price": "25.00", "priceCurrency": "EUR", "sku": "L"},
    ]
    head = og(og_title="Shirt", product_price_amount="25.00", product_price_currency="EUR")
    item = extract_product(page(jsonld(product(offers=offers)), head), GENERIC).item
    assert item.price == Decimal("20.00") and item.field_conflicts == []


@pytest.mark.parametrize(
    ("title", "brand"),
    [("Acme Kettle 1.7 l", "Acme"), ("Kettle 1.7 l, steel", None)],
)
def test_a_brand_store_link_is_the_brand_only_when_the_title_names_it(title, brand):
    body = f'<h1>{title}</h1><a id="bylineInfo">Visit the Acme Store</a>'
    assert extract_product(page(body), GENERIC).item.brand == brand
