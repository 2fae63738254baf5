"""Turn a feed row into an offer the crawl's stages accept: typed values, or a reason to drop it.

A feed states values as text ("12.99 USD", "in_stock", "4006381333931"); the stages expect what
a spider yields (a Decimal price, an ISO 4217 currency, a schema.org availability name, a
canonical GTIN). A value that cannot be read drops the offer with a reason (`OfferRejected`),
except a GTIN: an invalid one is left out and noted, as the spiders do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from price_parser import Price

from cumpair.identifiers import normalize_gtin

#: Text fields of an offer, as `ProductItem` names them.
TEXT_FIELDS = ("title", "brand", "model", "sku", "description", "category")
# schema.org ItemAvailability names; feeds write them as URLs, names or Merchant's snake_case.
_AVAILABILITY = {
    re.sub(r"[^a-z]", "", name.lower()): name
    for name in (
        "InStock",
        "OutOfStock",
        "PreOrder",
        "BackOrder",
        "Discontinued",
        "SoldOut",
        "LimitedAvailability",
        "OnlineOnly",
        "InStoreOnly",
    )
}
_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")


class OfferRejected(ValueError):
    """A feed row that cannot become an offer; `reason` is the report's counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def offer_from_fields(
    fields: Mapping[str, Any], *, shop: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The offer (a dict with `ProductItem`'s fields) of one feed row, and notes on values left
    out (``invalid_gtin``). `shop` overrides the row's shop; without either, the shop is the
    host of the offer's URL. Raises `OfferRejected` (missing_url, missing_shop, invalid_price,
    invalid_currency). Required fields are checked later, by `stages.missing_fields`."""
    notes: list[str] = []
    url = _text(fields.get("url"))
    if not url:
        raise OfferRejected("missing_url", "no url (the offer's identity in its shop)")
    shop = _text(shop) or _text(fields.get("shop")) or _host(url)
    if not shop:
        raise OfferRejected("missing_shop", f"no shop, and {url!r} names no host (use --shop)")
    price, price_currency = _price(fields.get("price"))
    # A currency stated with the price ("12.99 USD") counts only where no column gives one.
    currency = _currency(fields.get("currency")) or _currency(price_currency)
    gtin_text = _text(fields.get("gtin"))
    gtin = normalize_gtin(gtin_text) if gtin_text else None
    if gtin_text and gtin is None:
        notes.append("invalid_gtin")
    offer: dict[str, Any] = {
        "shop": shop,
        "url": url,
        "price": price,
        "currency": currency,
        "availability": _availability(fields.get("availability")),
        "gtin": gtin,
        "image_urls": _image_urls(fields.get("image_urls")),
    }
    offer.update({name: _text(fields.get(name)) for name in TEXT_FIELDS})
    return offer, notes


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = " ".join(str(value).split())
    return text or None


def _host(url: str) -> str | None:
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


def _price(value: Any) -> tuple[Decimal | None, str | None]:
    """(amount, the currency text stated with it): "12.99 USD", "12,99 €", 12.99 or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise OfferRejected("invalid_price", f"price {value!r} is not a number")
    currency = None
    if isinstance(value, str):
        parsed = Price.fromstring(value)
        if parsed.amount is None:
            raise OfferRejected("invalid_price", f"no number in price {value!r}")
        if value.strip().startswith("-"):  # price-parser drops the sign
            raise OfferRejected("invalid_price", f"negative price {value!r}")
        amount, currency = parsed.amount, parsed.currency
    else:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise OfferRejected("invalid_price", f"price {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise OfferRejected("invalid_price", f"price {value!r} is not a price")
    return amount, currency


def _currency(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if not _ISO_CURRENCY.match(text.upper()):
        raise OfferRejected("invalid_currency", f"currency {text!r} is not an ISO 4217 code")
    return text.upper()


def _availability(value: Any) -> str | None:
    """A schema.org ItemAvailability name; an unknown wording is left out (not a drop)."""
    text = _text(value)
    if text is None:
        return None
    return _AVAILABILITY.get(re.sub(r"[^a-z]", "", text.rsplit("/", 1)[-1].lower()))


def _image_urls(value: Any) -> list[str]:
    if value is None:
        return []
    parts = value if isinstance(value, list) else str(value).split(",")
    return list(dict.fromkeys(str(p).strip() for p in parts if str(p).strip()))


__all__ = ["TEXT_FIELDS", "OfferRejected", "offer_from_fields"]
