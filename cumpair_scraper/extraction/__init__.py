"""Read a product page into a ProductItem: structured data merged, selectors and the page after.

Every source is read and then merged field by field, best first: schema.org JSON-LD (block by
block: a broken block is reported and skipped, never fatal), microdata, RDFa, OpenGraph, then
the shop config's CSS selectors, then the generic visible-page fallback (`visible.py`). The item
records which source gave each field (`field_sources`) and where structured sources disagreed
(`field_conflicts`). Prices are read with price-parser and GTINs checked with python-stdnum
(through `cumpair.identifiers`); what could not be read goes to `Extraction.problems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from extruct.utils import parse_xmldom_html
from scrapy.http import TextResponse

from cumpair_scraper.extraction.condition import (
    item_condition,
    stated_condition,
    title_condition,
)
from cumpair_scraper.extraction.merge import Merged, merge_structured, settle_struck_price
from cumpair_scraper.extraction.structured import SYNTAXES, Candidate, structured_candidates
from cumpair_scraper.extraction.values import (
    availability,
    checked_gtin,
    currency,
    parse_price,
)
from cumpair_scraper.extraction.visible import struck_prices, visible_fields
from cumpair_scraper.items import ProductItem
from cumpair_scraper.shopconfig import ShopConfig

__all__ = ["SYNTAXES", "Extraction", "extract_product"]

_ITEM_FIELDS = (
    "title",
    "description",
    "brand",
    "model",
    "sku",
    "gtin",
    "category",
    "image_urls",
    "price",
    "currency",
    "availability",
    "list_price",
    "vat_included",
    "price_low",
    "price_high",
    "offer_count",
    "variants",
    "condition",
    "shipping",
)
_VISIBLE_FIELDS = ("title", "price", "currency", "availability", "brand", "image_urls")
# Sources counted in the crawl's `cumpair/extracted_from/<source>` stats.
_COUNTED_SOURCES = (*SYNTAXES, "selectors", "visible")


@dataclass
class Extraction:
    """The item read from a page, plus what went wrong on the way (for logs and stats)."""

    item: ProductItem
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def extract_product(response: TextResponse, shop: ShopConfig) -> Extraction:
    """Build the item for one product page of `shop`."""
    problems: list[str] = []
    tree = parse_xmldom_html(response.body, encoding=response.encoding)
    candidates = structured_candidates(tree, response.url, problems)
    root = response.selector.root
    priced = any(c.fields.get("price") is not None for c in candidates)
    struck = struck_prices(root) if priced else set()
    merged = merge_structured(candidates, struck, problems)
    visible: dict[str, Any] | None = None
    if merged.fields.get("price") in struck:
        visible = visible_fields(root, response.url)
        settle_struck_price(merged, struck, visible.get("price"), problems)
    wanted = merged.missing([name for name in shop.fields if name != "images"] + ["image_urls"])
    if wanted:
        merged.fill(Candidate("selectors", _selector_fields(response, shop, wanted, problems)))
    if merged.missing(_VISIBLE_FIELDS):
        visible = visible if visible is not None else visible_fields(root, response.url)
        merged.fill(Candidate("visible", visible))
    price = merged.fields.get("price")
    if price is not None and merged.fields.get("list_price") is None:
        _list_price_from_page(merged, struck if priced else struck_prices(root), price)
    if price is not None and not merged.fields.get("currency") and shop.default_currency:
        merged.fields["currency"] = shop.default_currency
        merged.sources["currency"] = "shop_default"
    stated = merged.fields.get("condition")
    merged.fields["condition"] = item_condition(stated, merged.fields.get("title"))
    if merged.fields["condition"] is not None and merged.fields["condition"] != stated:
        merged.sources["condition"] = "title"
    if not merged.fields.get("shipping") and shop.shipping:
        merged.fields["shipping"] = [dict(rule) for rule in shop.shipping]
        merged.sources["shipping"] = "shop_config"
    item = _item(response, shop, merged)
    sources = list(dict.fromkeys(s for s in merged.sources.values() if s in _COUNTED_SOURCES))
    return Extraction(item=item, sources=sources, problems=problems)


def _list_price_from_page(merged: Merged, struck: set[Decimal], price: Decimal) -> None:
    """The page's struck-through price as `list_price`, when it shows exactly one above the
    price (more than one is ambiguous: accessories and other offers strike theirs too)."""
    above = {amount for amount in struck if amount > price}
    if len(above) == 1:
        merged.fields["list_price"] = above.pop()
        merged.sources["list_price"] = "visible"


def _item(response: TextResponse, shop: ShopConfig, merged: Merged) -> ProductItem:
    item = ProductItem(shop=shop.name, url=response.url)
    for name in _ITEM_FIELDS:
        value = merged.fields.get(name)
        if value is not None:
            setattr(item, name, value)
    item.field_sources = {n: s for n, s in merged.sources.items() if n in _ITEM_FIELDS}
    item.field_conflicts = merged.conflicts
    return item


def _selector_fields(
    response: TextResponse, shop: ShopConfig, wanted: list[str], problems: list[str]
) -> dict[str, Any]:
    """The shop's CSS selectors, run only for the fields nothing before them gave."""
    fields: dict[str, Any] = {}
    for name, selector in shop.fields.items():
        target = "image_urls" if name == "images" else name
        if target not in wanted:
            continue
        if name == "images":
            fields["image_urls"] = [response.urljoin(u) for u in response.css(selector).getall()]
            continue
        raw = " ".join(" ".join(response.css(selector).getall()).split()) or None
        if raw is None:
            continue
        if name == "price":
            fields["price"], symbol = parse_price(raw, problems)
            fields.setdefault("currency", currency(symbol))
        elif name == "currency":
            fields["currency"] = currency(raw)
        elif name == "availability":
            fields["availability"] = availability(raw, shop.availability_map)
        elif name == "condition":  # a shop's own words ("Zustand: gebraucht - wie neu")
            fields["condition"] = stated_condition(raw) or title_condition(raw)
        elif name == "gtin":
            fields["gtin"] = checked_gtin(raw, problems)
        else:
            fields[name] = raw
    return fields
