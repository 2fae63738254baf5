"""An offer's shipping rules from schema.org: `shippingDetails` and delivery charge specifications.

`OfferShippingDetails` gives a `shippingRate` (a MonetaryAmount: `value`, or `maxValue` as the
worst case) to a `shippingDestination` (DefinedRegion `addressCountry`: one code, a list, a
Country node), sometimes with a `freeShippingThreshold`; `doesNotShip` excludes a destination.
The older `DeliveryChargeSpecification` (in `priceSpecification`) gives a `price` to an
`eligibleRegion`, free from `eligibleTransactionVolume.minPrice` when its price is 0. Each
becomes a rule dict (`cumpair.search.shipping.ShippingRule.to_dict`); unreadable parts are
reported to `problems` and left out, never guessed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cumpair.search.shipping import ShippingRule
from cumpair_scraper.extraction.values import as_list, currency, first, parse_price, text


def _type(node: dict[str, Any]) -> str:
    return str(first(node.get("@type")) or "").rsplit("/", 1)[-1]


def _amount(node: Any, problems: list[str], *keys: str) -> tuple[Decimal | None, str | None]:
    """(amount, currency) of a MonetaryAmount-like node (or a bare number) by the first of
    `keys` it has."""
    if not isinstance(node, dict):
        raw = text(node)
        return (parse_price(raw, problems)[0], None) if raw else (None, None)
    code = currency(text(node.get("currency")) or text(node.get("priceCurrency")))
    for key in keys:
        raw = text(node.get(key))
        if raw is not None:
            amount, symbol = parse_price(raw, problems)
            return amount, code or currency(symbol)
    return None, code


def _countries(region: Any) -> list[str | None]:
    """The ISO country codes a destination names; [None] (everywhere) when it names none."""
    codes: list[str | None] = []
    for node in as_list(region):
        if isinstance(node, dict):
            named = as_list(node.get("addressCountry") or node.get("name"))
        else:
            named = [node]
        for country in named:
            code = text(country)
            if code and len(code) == 2 and code.isalpha():
                codes.append(code.upper())
    return codes or [None]


def shipping_rules(offer: dict[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """The offer's shipping rules (see the module docstring), as stored rule dicts."""
    rules: list[ShippingRule] = []
    offer_currency = currency(text(offer.get("priceCurrency")))
    for details in as_list(offer.get("shippingDetails")):
        if not isinstance(details, dict):
            continue
        if text(details.get("doesNotShip")) in ("true", "True", "1"):
            continue
        rate, code = _amount(details.get("shippingRate"), problems, "value", "maxValue", "price")
        free, free_code = _amount(
            details.get("freeShippingThreshold"), problems, "value", "price", "minPrice"
        )
        if rate is None and free is None:
            continue
        for country in _countries(details.get("shippingDestination")):
            rules.append(
                ShippingRule(country, rate, code or free_code or offer_currency, free, "json-ld")
            )
    for spec in as_list(offer.get("priceSpecification")):
        if not isinstance(spec, dict) or _type(spec) != "DeliveryChargeSpecification":
            continue
        price, code = _amount(spec, problems, "price", "maxPrice")
        volume = first(spec.get("eligibleTransactionVolume"))
        threshold = _amount(volume, problems, "minPrice", "price")[0] if volume else None
        if price is None:
            continue
        free = threshold if price == 0 and threshold is not None else None
        rate = None if free is not None else price
        for country in _countries(spec.get("eligibleRegion")):
            rules.append(ShippingRule(country, rate, code or offer_currency, free, "json-ld"))
    return [rule.to_dict() for rule in rules]
