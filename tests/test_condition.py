"""An offer's condition from schema.org itemCondition and its title's words, without mistaking
a product's purpose ("for used cartridges", "Renewal Filter") for its condition."""

from __future__ import annotations

import json

import pytest
from scrapy.http import HtmlResponse

from cumpair_scraper.extraction import extract_product
from cumpair_scraper.extraction.condition import item_condition, stated_condition, title_condition
from cumpair_scraper.shopconfig import ShopConfig

GENERIC = ShopConfig(name="generic", display_name="generic")


@pytest.mark.parametrize(
    ("title", "condition"),
    [
        ("Apple iPhone 12, 64GB, Black - Unlocked (Renewed)", "Refurbished"),
        ("Refurbished Dell Latitude 7490", "Refurbished"),
        ("Dell Laptop (Generalüberholt)", "Refurbished"),
        ("Lenovo ThinkPad T480 reconditionné", "Refurbished"),
        ("Notebook HP ricondizionato", "Refurbished"),
        ("Drill [refurb]", "Refurbished"),
        ("Bosch GSR 18V \u2013 Used \u2013 Like New", "Used"),
        ("Bohrmaschine gebraucht", "Used"),
        ("Kamera B-Ware", "Used"),
        ("Sony WH-1000XM4 Open Box", "Used"),
        ("Smartphone d\u2019occasion", "Used"),
        ("iPhone 11 usado", "Used"),
        ("Monitor 27 - usato", "Used"),
        ("Samsung TV - damaged", "Damaged"),
        # after real listings (WDC product corpus titles)
        ("Used Canon EOS 70D DSLR Body Only D - Excellent", "Used"),
        ('D300S DIGITAL SLR CAMERA "Used Nikon 25464', "Used"),
        ("Fair Condition*: Apple iMac 27-inch 2.7GHz Quad-core i5 (Mid 2011)", "Used"),
        ("*Opened Box* Fujifilm X-T2 Mirrorless Digital Camera Body Only - Black", "Used"),
        ("Seagate Barracuda 7200.14 2TB SATA3 64MB Recertified", "Refurbished"),
    ],
)
def test_title_words_in_several_languages_give_the_condition(title, condition):
    assert title_condition(title) == condition


@pytest.mark.parametrize(
    "title",
    [
        "Renewal Filter for AC-200",
        "Brother Waste Toner Box for used cartridges",
        "Sammelbox für gebrauchte Batterien",
        "Most Used Kitchen Knife",
        "Garden Hose, Can Be Used Outdoors",
        "Gift Box Special Occasion",
        "Carte pour toute occasion",
        "Open Boxing Gloves",
        "Refill kit for refurbished cartridges",
        "Repair Shampoo Damaged Hair",
        "New Balance 574 Sneaker",
    ],
)
def test_words_that_describe_the_product_not_its_condition_do_not_count(title):
    assert title_condition(title) is None


def test_stated_conditions_read_urls_and_short_forms():
    assert stated_condition("https://schema.org/RefurbishedCondition") == "Refurbished"
    assert stated_condition("http://schema.org/UsedCondition") == "Used"
    assert stated_condition("NewCondition") == "New"
    assert stated_condition("used") == "Used"  # OpenGraph's product:condition
    assert stated_condition("mint") is None


def test_title_words_override_a_template_new_but_not_a_stated_used():
    assert item_condition("https://schema.org/NewCondition", "Drill (Renewed)") == "Refurbished"
    assert item_condition("UsedCondition", "Refurbished drill") == "Used"
    assert item_condition("NewCondition", "Drill") == "New"
    assert item_condition(None, "Drill") is None


def _page(head: str) -> HtmlResponse:
    html = f"<html><head>{head}</head><body></body></html>"
    return HtmlResponse("https://shop.test/p/1", body=html, encoding="utf-8")


def _jsonld(data: dict) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def test_the_offer_item_condition_reaches_the_item():
    offer = {
        "@type": "Offer",
        "price": "79.00",
        "priceCurrency": "EUR",
        "itemCondition": "https://schema.org/RefurbishedCondition",
    }
    data = {"@context": "https://schema.org", "@type": "Product", "name": "Saw", "offers": offer}
    item = extract_product(_page(_jsonld(data)), GENERIC).item
    assert item.condition == "Refurbished"
    assert item.field_sources["condition"] == "json-ld"


def test_a_product_level_condition_and_opengraph_condition_count():
    offer = {"@type": "Offer", "price": "79.00", "priceCurrency": "EUR"}
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": "Saw",
        "itemCondition": "UsedCondition",
        "offers": offer,
    }
    assert extract_product(_page(_jsonld(data)), GENERIC).item.condition == "Used"
    og = (
        '<meta property="og:title" content="Saw"><meta property="product:price:amount" '
        'content="5"><meta property="product:condition" content="refurbished">'
    )
    assert extract_product(_page(og), GENERIC).item.condition == "Refurbished"


def test_a_title_saying_renewed_overrides_a_stated_new_condition():
    offer = {"@type": "Offer", "price": "79.00", "itemCondition": "NewCondition"}
    data = {"@context": "https://schema.org", "@type": "Product", "name": "Saw (Renewed)"}
    item = extract_product(_page(_jsonld({**data, "offers": offer})), GENERIC).item
    assert (item.condition, item.field_sources["condition"]) == ("Refurbished", "title")
    plain = {**data, "name": "Saw", "offers": offer}
    assert extract_product(_page(_jsonld(plain)), GENERIC).item.condition == "New"
