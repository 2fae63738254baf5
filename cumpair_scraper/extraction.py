"""Read a product page into a ProductItem: schema.org data first, config selectors as fallback.

Structured data (JSON-LD, microdata, RDFa, OpenGraph) is read with extruct, prices with
price-parser and GTINs are checked with python-stdnum (through `cumpair.identifiers`). A broken
block of structured data is reported and skipped, never fatal: the selectors still get a chance.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import extruct
from price_parser import Price
from scrapy.http import TextResponse

from cumpair.identifiers import normalize_gtin
from cumpair_scraper.items import ProductItem
from cumpair_scraper.shopconfig import ShopConfig

logger = logging.getLogger(__name__)

SYNTAXES = ("json-ld", "microdata", "rdfa", "opengraph")
_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "US$": "USD", "£": "GBP", "¥": "JPY", "CHF": "CHF"}
_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AVAILABILITY_WORDS = {
    "instock": "InStock",
    "outofstock": "OutOfStock",
    "preorder": "PreOrder",
    "backorder": "BackOrder",
    "discontinued": "Discontinued",
    "soldout": "SoldOut",
    "limitedavailability": "LimitedAvailability",
    "onlineonly": "OnlineOnly",
    "instoreonly": "InStoreOnly",
}
_GTIN_KEYS = ("gtin13", "gtin", "gtin14", "gtin12", "gtin8", "ean", "upc")


@dataclass
class Extraction:
    """The item read from a page, plus what went wrong on the way (for logs and stats)."""

    item: ProductItem
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def extract_product(response: TextResponse, shop: ShopConfig) -> Extraction:
    """Build the item for one product page of `shop`."""
    problems: list[str] = []
    product, sources = _structured_product(response, problems)
    item = ProductItem(shop=shop.name, url=response.url)
    if product:
        _fill_from_schema(item, product, response, problems)
    fallback_used = _fill_from_selectors(item, response, shop, problems)
    if fallback_used:
        sources.append("selectors")
    if item.currency is None and item.price is not None:
        item.currency = shop.default_currency
    return Extraction(item=item, sources=sources, problems=problems)


def _structured_product(
    response: TextResponse, problems: list[str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The first schema.org Product found, trying each syntax on its own so one bad block
    (say, a JSON-LD syntax error) does not hide the others."""
    found: dict[str, list[dict[str, Any]]] = {}
    for syntax in SYNTAXES:
        try:
            data = extruct.extract(
                response.text, base_url=response.url, syntaxes=[syntax], uniform=True
            )
        except Exception as exc:  # extruct surfaces json/lxml/rdflib errors as they come
            problems.append(f"{syntax}: {type(exc).__name__}: {exc}")
            continue
        found[syntax] = data.get(syntax, [])
    for syntax in ("json-ld", "microdata", "rdfa"):
        for node in _walk(found.get(syntax, [])):
            if _is_type(node, "Product"):
                return node, [syntax]
    for node in found.get("opengraph", []):
        og = _opengraph_product(node)
        if og:
            return og, ["opengraph"]
    return None, []


def _walk(nodes: Iterable[Any]) -> Iterable[dict[str, Any]]:
    """Depth-first over JSON-LD/microdata nodes, entering @graph containers."""
    for node in nodes:
        if isinstance(node, dict):
            yield node
            graph = node.get("@graph")
            if isinstance(graph, list):
                yield from _walk(graph)
        elif isinstance(node, list):
            yield from _walk(node)


def _is_type(node: dict[str, Any], name: str) -> bool:
    types = node.get("@type", [])
    types = types if isinstance(types, list) else [types]
    return any(isinstance(t, str) and t.rsplit("/", 1)[-1] == name for t in types)


def _opengraph_product(node: dict[str, Any]) -> dict[str, Any] | None:
    """OpenGraph's product tags, recast as a minimal schema.org Product."""
    if "og:title" not in node:
        return None
    product: dict[str, Any] = {"name": node.get("og:title"), "image": node.get("og:image")}
    if node.get("og:description"):
        product["description"] = node["og:description"]
    amount = node.get("product:price:amount") or node.get("og:price:amount")
    if amount:
        product["offers"] = {
            "price": amount,
            "priceCurrency": node.get("product:price:currency") or node.get("og:price:currency"),
        }
    return product


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    """A clean string from a schema.org value that may be a list, a dict with a name, or text."""
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _fill_from_schema(
    item: ProductItem, product: dict[str, Any], response: TextResponse, problems: list[str]
) -> None:
    item.title = _text(product.get("name"))
    item.description = _text(product.get("description"))
    item.brand = _text(product.get("brand")) or _text(product.get("manufacturer"))
    item.model = _text(product.get("mpn")) or _text(product.get("model"))
    item.sku = _text(product.get("sku"))
    item.category = _text(product.get("category"))
    raw_gtin = next((product[k] for k in _GTIN_KEYS if product.get(k)), None)
    if raw_gtin is not None:
        item.gtin = _checked_gtin(_text(raw_gtin), problems)
    item.image_urls = _image_urls(product.get("image"), response)
    offer = _first(product.get("offers"))
    if isinstance(offer, dict):
        price_text = _text(offer.get("price") or offer.get("lowPrice"))
        spec = _first(offer.get("priceSpecification"))
        if price_text is None and isinstance(spec, dict):
            price_text = _text(spec.get("price"))
        if price_text is not None:
            item.price, symbol = _parse_price(price_text, problems)
            item.currency = _currency(_text(offer.get("priceCurrency")) or symbol)
        item.availability = _availability(_text(offer.get("availability")), {})


def _fill_from_selectors(
    item: ProductItem, response: TextResponse, shop: ShopConfig, problems: list[str]
) -> bool:
    """Fill the fields still empty from the shop's CSS selectors; True if any was used."""
    used = False
    for name, selector in shop.fields.items():
        if name == "images":
            if not item.image_urls:
                item.image_urls = [response.urljoin(u) for u in response.css(selector).getall()]
                used = used or bool(item.image_urls)
            continue
        if getattr(item, name) is not None:
            continue
        text = " ".join(" ".join(response.css(selector).getall()).split()) or None
        if text is None:
            continue
        used = True
        if name == "price":
            item.price, symbol = _parse_price(text, problems)
            item.currency = item.currency or _currency(symbol)
        elif name == "currency":
            item.currency = _currency(text)
        elif name == "availability":
            item.availability = _availability(text, shop.availability_map)
        elif name == "gtin":
            item.gtin = _checked_gtin(text, problems)
        else:
            setattr(item, name, text)
    return used


def _image_urls(value: Any, response: TextResponse) -> list[str]:
    values = value if isinstance(value, list) else [value]
    urls = []
    for entry in values:
        url = entry.get("url") or entry.get("contentUrl") if isinstance(entry, dict) else entry
        if isinstance(url, str) and url.strip():
            urls.append(response.urljoin(url.strip()))
    return list(dict.fromkeys(urls))


def _parse_price(text: str, problems: list[str]) -> tuple[Decimal | None, str | None]:
    price = Price.fromstring(text)
    if price.amount is None:
        problems.append(f"price: no number in {text!r}")
        return None, price.currency
    if price.amount < 0 or text.lstrip().startswith("-"):  # price-parser drops the sign
        problems.append(f"price: negative amount in {text!r}")
        return None, price.currency
    return price.amount, price.currency


def _currency(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if _ISO_CURRENCY.match(value.upper()):
        return value.upper()
    return _CURRENCY_SYMBOLS.get(value)


def _availability(value: str | None, mapping: dict[str, str]) -> str | None:
    if not value:
        return None
    if value in mapping:
        return mapping[value]
    key = re.sub(r"[^a-z]", "", value.rsplit("/", 1)[-1].lower())
    return _AVAILABILITY_WORDS.get(key)


def _checked_gtin(value: str | None, problems: list[str]) -> str | None:
    gtin = normalize_gtin(value)
    if value and gtin is None:
        problems.append(f"gtin: {value!r} is not a valid GTIN (check digit or length)")
    return gtin
