"""Shipping rules as offers carry them, and what shipping to a country costs under them.

An offer's `shipping` is a list of rule dicts (stored verbatim by the store), written by the
extraction from schema.org `shippingDetails` or from the shop config's `[shipping]` table:
``{"country": "DE" | null, "rate": "4.95" | null, "currency": "EUR", "free_from": "50.00" |
null, "source": "json-ld" | "shop"}``: a flat `rate` to `country` (null: every country), free
from an order of `free_from`. A cost nobody states is unknown (None), never zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class ShippingRule:
    """One way an offer ships: a flat `rate` (None: not stated) in `currency` to `country`
    (ISO 3166 alpha-2; None: anywhere), free from an order of `free_from`."""

    country: str | None
    rate: Decimal | None
    currency: str | None
    free_from: Decimal | None = None
    source: str = "json-ld"

    def to_dict(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "rate": None if self.rate is None else str(self.rate),
            "currency": self.currency,
            "free_from": None if self.free_from is None else str(self.free_from),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShippingRule | None:
        """The rule a stored dict describes; None for one that states neither a rate nor a
        threshold (nothing to compute with)."""
        rate, free_from = _decimal(data.get("rate")), _decimal(data.get("free_from"))
        if rate is None and free_from is None:
            return None
        country = data.get("country")
        country = country.strip().upper() if isinstance(country, str) and country.strip() else None
        currency = data.get("currency") if isinstance(data.get("currency"), str) else None
        return cls(country, rate, currency, free_from, str(data.get("source") or "json-ld"))


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def shipping_cost(
    rules: Iterable[Mapping[str, Any]],
    price: Decimal | None,
    currency: str | None,
    country: str | None,
) -> Decimal | None:
    """What shipping an item of `price` (`currency`) costs to `country` (None: no destination
    chosen, only rules for anywhere apply): the cheapest rule for that country, else for
    anywhere; free when the price reaches a rule's threshold. None when no rule applies or the
    rules are in another currency (unknown, not free)."""
    parsed = [r for r in (ShippingRule.from_dict(d) for d in rules) if r is not None]
    wanted = country.upper() if country else None
    exact = [r for r in parsed if wanted is not None and r.country == wanted]
    pool = exact or [r for r in parsed if r.country is None]
    costs = []
    for rule in pool:
        if rule.currency is not None and currency is not None and rule.currency != currency:
            continue
        if rule.free_from is not None and price is not None and price >= rule.free_from:
            costs.append(Decimal(0))
        elif rule.rate is not None:
            costs.append(rule.rate)
    return min(costs, default=None)
