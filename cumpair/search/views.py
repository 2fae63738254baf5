"""What a user sees about offers and products: prices cheapest first, lowest seen, last change.

Built from store records and their price history; no formatting here (see `formatting`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

# Spec keys worth a column in a comparison table, in the order shown.
KEY_SPECS = ("storage_gb", "volume_ml", "power_w", "voltage_v", "weight_g", "dimensions_mm")


@dataclass(frozen=True)
class PriceChange:
    """The offer's price now against the previous crawl (None when crawled once)."""

    previous: Decimal | None
    delta: Decimal | None


@dataclass(frozen=True)
class OfferView:
    offer_id: int
    shop: str
    title: str
    url: str
    price: Decimal | None
    currency: str | None
    availability: str | None
    last_seen: datetime | None
    lowest_price: Decimal | None
    lowest_seen_at: datetime | None
    change: PriceChange
    crawls: int
    explanation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        def money(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "offer_id": self.offer_id,
            "shop": self.shop,
            "title": self.title,
            "url": self.url,
            "price": money(self.price),
            "currency": self.currency,
            "availability": self.availability,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "lowest_price": money(self.lowest_price),
            "lowest_seen_at": self.lowest_seen_at.isoformat() if self.lowest_seen_at else None,
            "previous_price": money(self.change.previous),
            "change": money(self.change.delta),
            "crawls": self.crawls,
            **({"explanation": self.explanation} if self.explanation is not None else {}),
        }


def offer_view(record: Any, history: Sequence[Any], explanation: dict | None = None) -> OfferView:
    """An offer with its price history summarised (history oldest first, as the store gives it).

    Lowest price counts only rows in the offer's current currency; the change compares the
    last two crawls that had a price.
    """
    priced = [p for p in history if p.price is not None and p.currency == record.currency]
    lowest = min(priced, key=lambda p: (p.price, p.seen_at), default=None)
    change = PriceChange(None, None)
    if len(priced) >= 2 and record.price is not None:
        previous = priced[-2].price
        change = PriceChange(previous, record.price - previous)
    return OfferView(
        offer_id=record.id,
        shop=record.shop,
        title=record.title,
        url=record.url,
        price=record.price,
        currency=record.currency,
        availability=record.availability,
        last_seen=record.last_seen,
        lowest_price=lowest.price if lowest else record.price,
        lowest_seen_at=lowest.seen_at if lowest else record.last_seen,
        change=change,
        crawls=len(history),
        explanation=explanation,
    )


def cheapest_first(offers: Iterable[OfferView]) -> list[OfferView]:
    """Priced offers by (currency, price), then offers without a price; ties by shop."""
    return sorted(
        offers,
        key=lambda o: (o.price is None, o.currency or "", o.price or Decimal(0), o.shop),
    )


@dataclass
class ProductView:
    """A product and its offers across shops: one row of search results."""

    product_id: int
    title: str
    brand: str | None
    model: str | None
    gtin: str | None
    specs: dict[str, Any]
    offers: list[OfferView]
    score: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def lowest_price(self) -> Decimal | None:
        prices = [o.lowest_price for o in self.offers if o.lowest_price is not None]
        return min(prices, default=None)

    def to_dict(self) -> dict[str, Any]:
        lowest = self.lowest_price
        return {
            "product_id": self.product_id,
            "title": self.title,
            "brand": self.brand,
            "model": self.model,
            "gtin": self.gtin,
            "specs": self.specs,
            "score": None if self.score is None else round(self.score, 4),
            "reasons": self.reasons,
            "lowest_price_seen": None if lowest is None else str(lowest),
            "offers": [o.to_dict() for o in self.offers],
        }


def key_specs(records: Iterable[Any]) -> dict[str, Any]:
    """The key specs of a product: for each key, the value its offers state first."""
    out: dict[str, Any] = {}
    for record in records:
        for name in KEY_SPECS:
            value = (record.specs or {}).get(name)
            if value not in (None, [], "") and name not in out:
                out[name] = value
    return out
