"""Field values as the item stores them: prices, currencies, availability, GTINs and clean text.

Every reader (structured data, shop selectors, the visible-page fallback) goes through these, so
a price or an availability means the same whichever part of the page it came from. Nothing here
guesses: a value that does not parse becomes None and the reason goes to `problems`.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from price_parser import Price
from w3lib.html import remove_tags

from cumpair.identifiers import normalize_gtin

_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "US$": "USD", "£": "GBP", "¥": "JPY", "CHF": "CHF"}
_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AVAILABILITY_WORDS = {
    "instock": "InStock",
    "outofstock": "OutOfStock",
    "preorder": "PreOrder",
    "presale": "PreSale",
    "backorder": "BackOrder",
    "discontinued": "Discontinued",
    "soldout": "SoldOut",
    "limitedavailability": "LimitedAvailability",
    "onlineonly": "OnlineOnly",
    "instoreonly": "InStoreOnly",
    # OpenGraph's product:availability words
    "oos": "OutOfStock",
    "availablefororder": "InStock",
    "pending": "PreOrder",
}
# Best first: a product with several offers is as available as its most available offer.
AVAILABILITY_RANK = (
    "InStock",
    "LimitedAvailability",
    "OnlineOnly",
    "InStoreOnly",
    "PreSale",
    "PreOrder",
    "BackOrder",
    "OutOfStock",
    "SoldOut",
    "Discontinued",
)
GTIN_KEYS = ("gtin13", "gtin", "gtin14", "gtin12", "gtin8", "ean", "upc", "isbn")


def as_list(value: Any) -> list[Any]:
    """A schema.org value as a list: none, one, or the list it already is."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def first(value: Any) -> Any:
    """The first element of a list (schema.org allows a list wherever a value may be)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def text(value: Any) -> str | None:
    """A clean string from a schema.org value that may be a list, a dict with a name, or text.

    Entities are decoded (shops write `H&amp;M` inside JSON-LD) and tags removed (descriptions
    often carry HTML), then whitespace collapses to single spaces.
    """
    value = first(value)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
        value = first(value)
    if value is None or isinstance(value, dict | list):
        return None
    raw = str(value)
    if "<" in raw:
        raw = remove_tags(raw)
    if "&" in raw:
        raw = html.unescape(raw)
    cleaned = " ".join(raw.split())
    return cleaned or None


def parse_price(raw: str, problems: list[str]) -> tuple[Decimal | None, str | None]:
    """(amount, currency symbol or code) from a price text; None for text without a price."""
    price = Price.fromstring(raw)
    if price.amount is None:
        problems.append(f"price: no number in {raw!r}")
        return None, price.currency
    if price.amount < 0 or raw.lstrip().startswith("-"):  # price-parser drops the sign
        problems.append(f"price: negative amount in {raw!r}")
        return None, price.currency
    return price.amount, price.currency


def currency(value: str | None) -> str | None:
    """An ISO 4217 code from a code or a currency symbol; None when it is neither."""
    if not value:
        return None
    value = value.strip()
    if _ISO_CURRENCY.match(value.upper()):
        return value.upper()
    return _CURRENCY_SYMBOLS.get(value)


def availability(value: str | None, mapping: dict[str, str] | None = None) -> str | None:
    """A schema.org ItemAvailability name from a URL, a name, an OpenGraph word or shop text."""
    if not value:
        return None
    if mapping and value in mapping:
        return mapping[value]
    key = re.sub(r"[^a-z]", "", value.rsplit("/", 1)[-1].lower())
    return _AVAILABILITY_WORDS.get(key)


def best_availability(values: list[str | None]) -> str | None:
    """The most available of several offers' availabilities (in stock when any offer is)."""
    known = [v for v in values if v in AVAILABILITY_RANK]
    return min(known, key=AVAILABILITY_RANK.index) if known else None


def checked_gtin(value: str | None, problems: list[str]) -> str | None:
    """The canonical GTIN, or None (and a problem) when the digits fail their check."""
    gtin = normalize_gtin(value)
    if value and gtin is None:
        problems.append(f"gtin: {value!r} is not a valid GTIN (check digit or length)")
    return gtin
