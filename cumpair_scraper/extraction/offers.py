"""The price, availability and identifiers of a schema.org Product's offers.

Handles what real shops publish: one Offer or a list of them (one per size), AggregateOffer
(lowPrice/highPrice/offerCount), a ProductGroup whose variants carry their own offers, and
priceSpecification lists in which a per-unit or instalment price is never the price and a
strikethrough/list price becomes `list_price`. With several offers the item is "in stock" when
any offer is, and its price is the lowest among the most available offers (the "from" price the
page shows); the range and the offers themselves travel with the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cumpair_scraper.extraction.condition import stated_condition
from cumpair_scraper.extraction.shipping import shipping_rules
from cumpair_scraper.extraction.values import (
    AVAILABILITY_RANK,
    GTIN_KEYS,
    as_list,
    availability,
    best_availability,
    checked_gtin,
    currency,
    first,
    parse_price,
    text,
)

_LIST_PRICE_TYPES = frozenset(
    {"listprice", "strikethroughprice", "srp", "msrp", "regularprice", "originalprice"}
)
_NOT_THE_PRICE_TYPES = frozenset({"invoiceprice", "minimumadvertisedprice", "installment"})
_CHARGE_TYPES = ("DeliveryChargeSpecification", "PaymentChargeSpecification")
_MIN_STEM = 6  # shorter common starts are too likely to be in a URL by chance


@dataclass
class OfferReading:
    """One offer as read: what an item or a variant entry needs."""

    price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    list_price: Decimal | None = None
    vat_included: bool | None = None
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    count: int | None = None
    condition: str | None = None
    shipping: list[dict[str, Any]] = field(default_factory=list)


def is_type(node: dict[str, Any], name: str) -> bool:
    """True when the node's @type (a name, a URL, or a list of them) includes `name`."""
    types = node.get("@type", [])
    types = types if isinstance(types, list) else [types]
    return any(isinstance(t, str) and t.rsplit("/", 1)[-1] == name for t in types)


def offer_nodes(product: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(offer, the variant it sells) for the product's own offers (no variant: the product's
    identifiers are read once, by the caller) and for its variants' offers."""
    pairs = [(o, {}) for o in as_list(product.get("offers")) if isinstance(o, dict)]
    for variant in as_list(product.get("hasVariant")):
        if isinstance(variant, dict):
            pairs += [(o, variant) for o in as_list(variant.get("offers")) if isinstance(o, dict)]
    expanded = []
    for offer, owner in pairs:
        inner = [o for o in as_list(offer.get("offers")) if isinstance(o, dict)]
        if is_type(offer, "AggregateOffer") and inner:
            expanded.append((_without(offer, "offers"), owner))
            expanded += [(o, owner) for o in inner]
        else:
            expanded.append((offer, owner))
    return expanded


def _without(node: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != key}


def read_offer(offer: dict[str, Any], owner: dict[str, Any], problems: list[str]) -> OfferReading:
    """One Offer (or AggregateOffer); identifiers missing on it come from the variant it sells."""
    reading = OfferReading()
    main_specs, list_specs = _price_specifications(offer)
    raw_price = text(offer.get("price"))
    symbol = None
    if raw_price is not None:
        reading.price, symbol = parse_price(raw_price, problems)
    if is_type(offer, "AggregateOffer"):
        reading.low = _amount(offer.get("lowPrice"), problems)
        reading.high = _amount(offer.get("highPrice"), problems)
        count = text(offer.get("offerCount"))
        reading.count = int(count) if count and count.isdigit() else None
        if reading.price is None:
            reading.price = reading.low
    spec_currency = None
    if main_specs:
        spec = main_specs[0]
        spec_price = _amount(spec.get("price"), problems)
        spec_currency = text(spec.get("priceCurrency"))
        if reading.price is None:
            reading.price = spec_price
        reading.vat_included = _boolean(spec.get("valueAddedTaxIncluded"))
    if list_specs:
        reading.list_price = _amount(list_specs[0].get("price"), problems)
        spec_currency = spec_currency or text(list_specs[0].get("priceCurrency"))
    if reading.list_price is not None and reading.list_price == reading.price and main_specs:
        # the Offer's price repeats its list price while a sale price is specified
        reading.price = _amount(main_specs[0].get("price"), problems) or reading.price
    if reading.vat_included is None:
        reading.vat_included = _boolean(offer.get("valueAddedTaxIncluded"))
    reading.currency = currency(text(offer.get("priceCurrency")) or spec_currency or symbol)
    reading.availability = availability(text(offer.get("availability")))
    reading.condition = stated_condition(text(offer.get("itemCondition")))
    reading.shipping = shipping_rules(offer, problems)
    reading.sku = text(offer.get("sku")) or text(owner.get("sku"))
    reading.mpn = text(offer.get("mpn")) or text(owner.get("mpn"))
    raw_gtin = _raw_gtin(offer) or _raw_gtin(owner)
    reading.gtin = checked_gtin(raw_gtin, problems) if raw_gtin else None
    return reading


def _raw_gtin(node: dict[str, Any]) -> str | None:
    return next((text(node[k]) for k in GTIN_KEYS if text(node.get(k))), None)


def _amount(value: Any, problems: list[str]) -> Decimal | None:
    raw = text(value)
    return parse_price(raw, problems)[0] if raw is not None else None


def _boolean(value: Any) -> bool | None:
    raw = text(value)
    if raw is None:
        return None
    return raw.rsplit("/", 1)[-1].lower() in ("true", "1", "yes")


def _price_specifications(
    offer: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(specifications that may be the price, strikethrough/list ones). Per-unit prices
    (a referenceQuantity), instalments (a billing duration) and other price types are neither."""
    main, listed = [], []
    for spec in as_list(offer.get("priceSpecification")):
        if not isinstance(spec, dict) or text(spec.get("price")) is None:
            continue
        if any(is_type(spec, name) for name in _CHARGE_TYPES):
            continue  # what delivery or payment costs (`shipping.py`), not the item's price
        kind = (text(spec.get("priceType")) or "").rsplit("/", 1)[-1].lower()
        if kind in _LIST_PRICE_TYPES:
            listed.append(spec)
        elif _not_the_price(spec, kind):
            continue
        elif not kind or kind in ("saleprice", "price"):
            main.append(spec)
    return main, listed


def _not_the_price(spec: dict[str, Any], kind: str) -> bool:
    """An instalment, a per-unit price or a price type that is not what the buyer pays now."""
    if kind in _NOT_THE_PRICE_TYPES or kind.endswith("installment"):
        return True
    return _is_unit_price(spec) or bool(spec.get("billingDuration") or spec.get("billingIncrement"))


def _is_unit_price(spec: dict[str, Any]) -> bool:
    quantity = first(spec.get("referenceQuantity"))
    if quantity is None:
        return False
    value = text(quantity.get("value")) if isinstance(quantity, dict) else text(quantity)
    unit = text(quantity.get("unitCode")) if isinstance(quantity, dict) else None
    return not (value in (None, "1") and unit in (None, "C62", "H87"))  # 1 piece is the item


def combine(readings: list[OfferReading], url: str) -> dict[str, Any]:
    """The item's offer fields from all its offers (see the module docstring for the rules)."""
    if not readings:
        return {}
    priced = [r for r in readings if r.price is not None]
    chosen = readings[0]
    if priced:
        tiers = [r for r in priced if r.availability in AVAILABILITY_RANK]
        best = best_availability([r.availability for r in tiers]) if tiers else None
        pool = [r for r in priced if r.availability == best] if best else priced
        chosen = min(pool, key=lambda r: r.price)  # type: ignore[arg-type, return-value]
    fields: dict[str, Any] = {
        "price": chosen.price,
        "currency": chosen.currency or next((r.currency for r in readings if r.currency), None),
        "availability": best_availability([r.availability for r in readings]),
        "list_price": chosen.list_price,
        "vat_included": chosen.vat_included,
        "condition": chosen.condition,
        "shipping": chosen.shipping,
    }
    for name in ("sku", "gtin", "mpn"):  # only what every offer says
        values = {getattr(r, name) for r in readings}
        fields[name] = values.pop() if len(values) == 1 else None
    if len(readings) == 1 and chosen.low is None:
        return fields
    amounts = [r.price for r in priced] + [a for r in readings for a in (r.low, r.high) if a]
    if amounts:
        fields["price_low"], fields["price_high"] = min(amounts), max(amounts)
    fields["offer_count"] = chosen.count if len(readings) == 1 else len(readings)
    if len(readings) > 1:
        fields["variants"] = [_variant(r) for r in readings]
        skus = [r.sku for r in readings if r.sku]
        if fields["sku"] is None and len(skus) > 1:
            fields["sku"] = _stem_named_in_url(skus, url)
    return fields


def _variant(reading: OfferReading) -> dict[str, Any]:
    return {
        "sku": reading.sku,
        "gtin": reading.gtin,
        "price": reading.price,
        "currency": reading.currency,
        "availability": reading.availability,
    }


def _stem_named_in_url(skus: list[str], url: str) -> str | None:
    """The parent article number of per-size SKUs: their common start, as far as the page's
    URL names it (`AB12-C11` for `AB12-C110034000`, `AB12-C110036000` on `.../ab12-c11.html`)."""
    stem = skus[0]
    for sku in skus[1:]:
        while not sku.startswith(stem):
            stem = stem[:-1]
    lowered = url.lower()
    while len(stem) >= _MIN_STEM and not _named_in(stem.lower(), lowered):
        stem = stem[:-1]
    return stem if len(stem) >= _MIN_STEM else None


def _named_in(stem: str, url: str) -> bool:
    """The stem appears in the URL as a whole token, not as the start of a longer one."""
    return re.search(rf"(?<![a-z0-9]){re.escape(stem)}(?![a-z0-9])", url) is not None
