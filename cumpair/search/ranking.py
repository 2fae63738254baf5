"""Turn offer-level vector hits into a ranking of products, re-rank by facts read from a photo,
and order a product's offers the way a shopper compares them.

The index scores offers; users want products. A product scores as its best offer, so a product
sold by four shops is not ranked above a better match sold by one. Facts OCR'd from a query
photo (GTIN, model code, brand) then lift the products that carry them. A product's offers are
ranked by availability, then price, in one currency at a time, with implausible prices flagged
(`rank_offers`); its lowest price is the first offer of that order that counts (`lowest_offer`).
Pure functions over records: nothing here reads a store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import median
from typing import Generic, Protocol, TypeVar

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
# A price under this share of the median of the same product's other offers in the same
# currency (at least IMPLAUSIBLE_MIN_OTHERS of them) is a placeholder, a deposit or a
# mis-read, not a price to buy at; so is a price of zero or less.
IMPLAUSIBLE_SHARE = Decimal("0.2")
IMPLAUSIBLE_MIN_OTHERS = 2
IMPLAUSIBLE = "implausible"


class PricedOffer(Protocol):
    """What ranking reads of an offer: a store record or an `OfferView` both fit."""

    @property
    def price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def availability(self) -> str | None: ...
    @property
    def shop(self) -> str: ...


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


def price_flags(offers: Sequence[PricedOffer]) -> list[str | None]:
    """Per offer (same order): `IMPLAUSIBLE` for a price of zero or less, or one under
    `IMPLAUSIBLE_SHARE` of the median of the other offers' prices in its currency; else None."""
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
        far_below = len(others) >= IMPLAUSIBLE_MIN_OTHERS and price < IMPLAUSIBLE_SHARE * Decimal(
            median(others)
        )
        flags.append(IMPLAUSIBLE if price <= 0 or far_below else None)
    return flags


@dataclass(frozen=True)
class RankedOffer(Generic[Offer]):
    """An offer in its place: its group (`GROUPS` or `OTHER_CURRENCY`) and its price flag."""

    offer: Offer
    group: str
    price_flag: str | None

    @property
    def counts(self) -> bool:
        """Whether its price may be the product's lowest (priced, plausible, not out of stock,
        in the product's main currency)."""
        return self.offer.price is not None and self.price_flag is None and self.group in GROUPS[:3]


def rank_offers(
    offers: Iterable[Offer], flags: Sequence[str | None] | None = None
) -> list[RankedOffer[Offer]]:
    """A product's offers in the order a shopper compares them.

    Offers in the product's main currency (that of most offers, `_main_currency`) first,
    grouped by availability (`GROUPS`: buy now, unknown, later, out of stock), each group
    cheapest first with flagged prices (`price_flags`) after the plausible ones and unpriced
    offers last; then the offers in any other currency, apart, by currency and the same
    order: without a rate table no two currencies are ranked together. Ties by shop.

    `flags`: the offers' price flags when judged beforehand among more offers (all of a
    product's, before a query's shop or price filter left some out); else judged here.
    """
    offers = list(offers)
    flags = price_flags(offers) if flags is None else list(flags)
    groups = [availability_group(o.availability) for o in offers]
    main = _main_currency(offers, flags, groups)

    def key(n: int) -> tuple:
        offer = offers[n]
        apart = offer.currency != main
        tier = 2 if offer.price is None else (1 if flags[n] else 0)
        return (
            apart,
            (offer.currency or "") if apart else "",
            GROUPS.index(groups[n]),
            tier,
            offer.price or Decimal(0),
            offer.shop,
        )

    return [
        RankedOffer(
            offers[n], OTHER_CURRENCY if offers[n].currency != main else groups[n], flags[n]
        )
        for n in sorted(range(len(offers)), key=key)
    ]


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
    price counts (`RankedOffer.counts`); its `group` says on what basis ("in stock", or
    unknown availability or pre-order when no offer is in stock). None when none counts."""
    return next((r for r in ranked if r.counts), None)
