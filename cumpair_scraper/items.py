"""The product item every spider yields, handled everywhere through itemadapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def utc_now_iso() -> str:
    """Crawl timestamps are ISO 8601 in UTC so feeds from different hosts sort together."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ProductItem:
    """One shop's offer for one product, as read from its product page.

    `price` is a Decimal (never a float: prices are compared and summed exactly), `currency`
    an ISO 4217 code, `availability` a schema.org ItemAvailability name (`InStock`, ...), `gtin`
    the canonical form from `cumpair.identifiers.normalize_gtin` or None when absent/invalid.
    `images` is filled by the images pipeline, `specs`/`spec_conflicts` by the specs pipeline.

    From the page's offers: `list_price` (a strikethrough/list price, never the price to pay),
    `vat_included` (None when the page does not say), `price_low`/`price_high`/`offer_count`
    (an AggregateOffer or several offers) and `variants` (one entry per offer: sku, gtin, price,
    currency, availability). `condition` is a schema.org OfferItemCondition short name (`New`,
    `Used`, `Refurbished`, `Damaged`; None when nothing says), read from `itemCondition` and the
    title's words (`extraction.condition`); `shipping` its shipping rules (dicts, see
    `cumpair.search.shipping`) from schema.org `shippingDetails` or the shop config's
    `[shipping]`, empty when neither states any (unknown, not free). `field_sources` names
    the source of each field (`json-ld`, `microdata`, `rdfa`, `opengraph`, `selectors`,
    `visible`, `shop_default`, `shop_config`, `title`) and `field_conflicts` lists the fields on
    which structured sources disagreed.
    """

    shop: str
    url: str
    title: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    brand: str | None = None
    model: str | None = None
    sku: str | None = None
    gtin: str | None = None
    description: str | None = None
    category: str | None = None
    list_price: Decimal | None = None
    vat_included: bool | None = None
    price_low: Decimal | None = None
    price_high: Decimal | None = None
    offer_count: int | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)
    condition: str | None = None
    shipping: list[dict[str, Any]] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    crawled_at: str = field(default_factory=utc_now_iso)
    specs: dict[str, Any] | None = None
    spec_conflicts: list[dict[str, Any]] = field(default_factory=list)
    field_sources: dict[str, str] = field(default_factory=dict)
    field_conflicts: list[dict[str, Any]] = field(default_factory=list)
