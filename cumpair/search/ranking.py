"""Turn offer-level vector hits into a ranking of products, re-rank by facts read from a photo,
and order a product's offers the way a shopper compares them.

The index scores offers; users want products. A product scores as its best offer, so a product
sold by four shops is not ranked above a better match sold by one. Facts OCR'd from a query
photo (GTIN, model code, brand) then lift the products that carry them. A product's offers are
ranked by availability and condition, then price (item, total with shipping, or unit price, as
`RankingOptions` chooses), in one currency at a time unless a rate table converts, with
implausible prices flagged (`rank_offers`); its lowest price is the first offer of that order
that counts (`lowest_offer`).
Pure functions over records: nothing here reads a store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import median
from typing import Any, Generic, Protocol, TypeVar

from cumpair.search.ranking_options import RankingOptions
from cumpair.search.rates import RateTable
from cumpair.search.shipping import shipping_cost
from cumpair.search.unit_price import Quantity, UnitPrice, unit_price

# Re-ranking bonuses, added to a cosine score in [-1, 1]: an exact GTIN beats any image score,
# a model code nearly so, a brand only breaks near-ties.
GTIN_BONUS = 2.0
MODEL_BONUS = 1.0
BRAND_BONUS = 0.05


@dataclass
class ProductHit:
    """A product in a result list: its score, the offer that scored it, why it moved."""

    product_id: int
    score: float
    best_offer: int
    reasons: list[str] = field(default_factory=list)


def rank_products(
    hits: Iterable[tuple[int, float]], product_of: Mapping[int, int | None]
) -> list[ProductHit]:
    """Products of offer `hits` (offer id, score), best first; an ungrouped offer is its own.

    Ungrouped offers get the negative of their offer id as product id, so callers can tell them
    apart and still show them.
    """
    best: dict[int, ProductHit] = {}
    for offer_id, score in hits:
        product = product_of.get(offer_id)
        product = -offer_id if product is None else product
        current = best.get(product)
        if current is None or score > current.score:
            best[product] = ProductHit(product, float(score), offer_id)
    return sorted(best.values(), key=lambda h: (-h.score, h.product_id))


@dataclass(frozen=True)
class QueryFacts:
    """Identity facts read from the query photo (canonical forms, see `features`)."""

    gtin: str | None = None
    models: frozenset[str] = frozenset()
    brand: str | None = None

    def __bool__(self) -> bool:
        return bool(self.gtin or self.models or self.brand)


def rerank(
    ranked: list[ProductHit],
    facts: QueryFacts,
    product_facts: Mapping[int, tuple[set[str], set[str], set[str]]],
) -> list[ProductHit]:
    """Lift products whose (GTINs, model codes, brands) match `facts`, then re-sort."""
    if not facts:
        return ranked
    for hit in ranked:
        gtins, models, brands = product_facts.get(hit.product_id, (set(), set(), set()))
        if facts.gtin and facts.gtin in gtins:
            hit.score += GTIN_BONUS
            hit.reasons.append(f"GTIN {facts.gtin} read from the query")
        shared = sorted(facts.models & models)
        if shared:
            hit.score += MODEL_BONUS
            hit.reasons.append(f"model {shared[0]} read from the query")
        if facts.brand and facts.brand in brands:
            hit.score += BRAND_BONUS
            hit.reasons.append(f"brand {facts.brand} read from the query")
    return sorted(ranked, key=lambda h: (-h.score, h.product_id))


# ---------------------------------------------------------------------- a product's offers
# schema.org ItemAvailability names, as the store holds them (the short name, or the full
# "https://schema.org/InStock" URL some feeds keep), in three groups a shopper tells apart.
BUY_NOW = frozenset({"InStock", "InStoreOnly", "LimitedAvailability", "OnlineOnly"})
LATER = frozenset({"PreOrder", "PreSale", "BackOrder"})
UNAVAILABLE = frozenset({"OutOfStock", "SoldOut", "Discontinued"})
# The group names offers carry (`RankedOffer.group`, "rank_group" in the JSON), best first.
# Unknown availability sits between "buy now" and "later": most shops that state nothing sell
# what the page shows, but nothing promises it, so a stated "in stock" comes before it.
GROUPS = ("in stock", "availability unknown", "pre-order or back-order", "out of stock")
OTHER_CURRENCY = "other currency"
# Conditions (the store's schema.org short names), best first. An offer that states none counts
# as new: shops selling used goods say so, in markup or in the title (`extraction.condition`).
CONDITIONS = ("New", "Refurbished", "Used", "Damaged")
# A price under this share of the median of the same product's other offers in the same
# currency (at least IMPLAUSIBLE_MIN_OTHERS of them), or of the offer's own earlier prices (at
# least as many), is a placeholder, a deposit or a mis-read, not a price to buy at; so is a
# price of zero or less.
IMPLAUSIBLE_SHARE = Decimal("0.2")
IMPLAUSIBLE_MIN_OTHERS = 2
IMPLAUSIBLE = "implausible"


class PricedOffer(Protocol):
    """What ranking reads of an offer (an `OfferView` fits): its price and currency, stock,
    shop, condition, shipping rules (`shipping.py`) and quantities (`unit_price.py`: `quantity`
    from a stated pack, `net_quantity` also from a single quantity or the specs)."""

    @property
    def price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def availability(self) -> str | None: ...
    @property
    def shop(self) -> str: ...
    @property
    def condition(self) -> str | None: ...
    @property
    def shipping(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def quantity(self) -> Quantity | None: ...
    @property
    def net_quantity(self) -> Quantity | None: ...


class Priced(Protocol):
    """What a price check reads: a store record, a price-history row or an offer view."""

    @property
    def price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...


Offer = TypeVar("Offer", bound=PricedOffer)


def availability_group(value: str | None) -> str:
    """The group (one of `GROUPS`) of a schema.org availability, short name or full URL."""
    name = (value or "").rstrip("/").rsplit("/", 1)[-1].strip()
    if name in BUY_NOW:
        return GROUPS[0]
    if name in LATER:
        return GROUPS[2]
    if name in UNAVAILABLE:
        return GROUPS[3]
    return GROUPS[1]


def condition_of(value: str | None) -> str:
    """The condition (one of `CONDITIONS`) of a stored condition; unstated counts as new."""
    return value if value in CONDITIONS else CONDITIONS[0]


def price_flags(
    offers: Sequence[Priced], histories: Sequence[Sequence[Priced]] | None = None
) -> list[str | None]:
    """Per offer (same order): `IMPLAUSIBLE` for a price of zero or less, or one under
    `IMPLAUSIBLE_SHARE` of the median of the other offers' prices in its currency, or of the
    offer's own earlier prices (`histories`, oldest first, the last row being the current
    price, as the store keeps them); else None."""
    flags: list[str | None] = []
    for n, offer in enumerate(offers):
        price = offer.price
        if price is None:
            flags.append(None)
            continue
        others = [
            o.price
            for m, o in enumerate(offers)
            if m != n and o.price is not None and o.currency == offer.currency
        ]
        earlier = [
            p.price
            for p in (histories[n][:-1] if histories else ())
            if p.price is not None and p.currency == offer.currency
        ]
        far_below = any(
            len(prices) >= IMPLAUSIBLE_MIN_OTHERS
            and price < IMPLAUSIBLE_SHARE * Decimal(median(prices))
            for prices in (others, earlier)
        )
        flags.append(IMPLAUSIBLE if price <= 0 or far_below else None)
    return flags


@dataclass(frozen=True)
class RankedOffer(Generic[Offer]):
    """An offer in its place: its group (`GROUPS` or `OTHER_CURRENCY`), price flag, condition,
    shipping cost to the chosen country (None: unknown), unit price, and the amount it was
    ranked on (`compared`, in `compared_currency`: its price, total or unit price, converted
    with the rate table where its currency is not the one compared in; None: not known)."""

    offer: Offer
    group: str
    price_flag: str | None
    condition: str = CONDITIONS[0]
    shipping: Decimal | None = None
    unit_price: UnitPrice | None = None
    compared: Decimal | None = None
    compared_currency: str | None = None

    @property
    def counts(self) -> bool:
        """Whether its price may be the product's lowest (priced, plausible, not out of stock,
        comparable with the product's main currency)."""
        return self.offer.price is not None and self.price_flag is None and self.group in GROUPS[:3]


def rank_offers(
    offers: Iterable[Offer],
    flags: Sequence[str | None] | None = None,
    options: RankingOptions | None = None,
) -> list[RankedOffer[Offer]]:
    """A product's offers in the order a shopper compares them.

    Offers comparable in the product's currency first (`options.currency`, else that of most
    offers; other currencies too where `options.rates` converts them), in sections: new offers
    that can be bought (in stock, then unknown availability, then pre-order), then refurbished,
    used and damaged ones the same way, then every out-of-stock offer. Within each, cheapest
    first by `options.by` (price, total with shipping to `options.ship_to`, or unit price),
    offers whose compared amount is unknown (shipping or quantity not stated) after those
    known, flagged prices (`price_flags`) after them and unpriced offers last. Then the offers
    in any currency nothing converts, apart, by currency: never ranked together. Ties by shop.

    `flags`: the offers' price flags when judged beforehand among more offers (all of a
    product's, before a query's shop or price filter left some out); else judged here.
    """
    options = options or RankingOptions()
    offers = list(offers)
    flags = price_flags(offers) if flags is None else list(flags)
    groups = [availability_group(o.availability) for o in offers]
    main = options.currency or _main_currency(offers, flags, groups)
    rates = options.rates

    def comparable(offer: PricedOffer) -> bool:
        if offer.currency == main:
            return True
        return rates is not None and rates.convert(Decimal(1), offer.currency, main) is not None

    ranked = []
    for n, offer in enumerate(offers):
        shipping = shipping_cost(offer.shipping, offer.price, offer.currency, options.ship_to)
        quantity = offer.net_quantity if options.by == "unit" else offer.quantity
        unit = unit_price(offer.price, quantity)
        group = groups[n] if comparable(offer) else OTHER_CURRENCY
        amount = _compared_amount(offer, shipping, quantity, options.by)
        compared = None
        if amount is not None and group != OTHER_CURRENCY:
            compared = amount if rates is None else rates.convert(amount, offer.currency, main)
        ranked.append(
            RankedOffer(
                offer,
                group,
                flags[n],
                condition_of(offer.condition),
                shipping,
                unit,
                compared,
                main if group != OTHER_CURRENCY else offer.currency,
            )
        )
    unit_kind = _main_unit(ranked) if options.by == "unit" else None

    def key(n: int) -> tuple:
        r = ranked[n]
        apart = r.group == OTHER_CURRENCY
        out = groups[n] == GROUPS[3]
        known = r.compared is not None and (
            unit_kind is None or _quantity_unit(r, options) == unit_kind
        )
        tier = 3 if r.offer.price is None else (2 if r.price_flag else (0 if known else 1))
        fallback = _converted(r.offer.price, r.offer.currency, main, rates) or Decimal(0)
        return (
            apart,
            (r.offer.currency or "") if apart else "",
            out,
            0 if out else CONDITIONS.index(r.condition),
            GROUPS.index(groups[n]),
            tier,
            r.compared if known and r.compared is not None else fallback,
            r.offer.shop,
        )

    return [ranked[n] for n in sorted(range(len(ranked)), key=key)]


def _compared_amount(
    offer: PricedOffer, shipping: Decimal | None, quantity: Quantity | None, by: str
) -> Decimal | None:
    """The amount ranked on, in the offer's currency (per base unit for unit prices)."""
    if offer.price is None:
        return None
    if by == "total":
        return None if shipping is None else offer.price + shipping
    if by == "unit":
        return None if quantity is None else offer.price / quantity.amount
    return offer.price


def _quantity_unit(ranked: RankedOffer, options: RankingOptions) -> str | None:
    offer = ranked.offer
    quantity = offer.net_quantity if options.by == "unit" else offer.quantity
    return None if quantity is None else quantity.unit


def _main_unit(ranked: Sequence[RankedOffer]) -> str | None:
    """The unit most offers' quantities are in: unit prices in another unit are not comparable."""
    units = Counter(r.offer.net_quantity.unit for r in ranked if r.offer.net_quantity is not None)
    return units.most_common(1)[0][0] if units else None


def _converted(
    amount: Decimal | None, currency: str | None, main: str | None, rates: RateTable | None
) -> Decimal | None:
    if amount is None or currency == main:
        return amount
    return None if rates is None else rates.convert(amount, currency, main)


def _main_currency(
    offers: Sequence[PricedOffer], flags: Sequence[str | None], groups: Sequence[str]
) -> str | None:
    """The currency most of `offers` are in; on a tie, that of the best-ranked offer among
    the tied currencies (buyable now before later, priced and plausible first, cheapest)."""
    counts = Counter(o.currency for o in offers)
    if not counts:
        return None
    most = max(counts.values())
    tied = [n for n, o in enumerate(offers) if counts[o.currency] == most]
    best = min(
        tied,
        key=lambda n: (
            GROUPS.index(groups[n]),
            offers[n].price is None,
            flags[n] is not None,
            offers[n].price or Decimal(0),
            offers[n].shop,
        ),
    )
    return offers[best].currency


def lowest_offer(ranked: Sequence[RankedOffer[Offer]]) -> RankedOffer[Offer] | None:
    """The offer whose price is the product's lowest: the first of `rank_offers`' order whose
    price counts (`RankedOffer.counts`), so a new one wherever one can be bought; its `group`
    and `condition` say on what basis ("in stock", or unknown availability or pre-order when
    no offer is in stock; "Refurbished" when no new offer can be bought). None when none counts."""
    return next((r for r in ranked if r.counts), None)
