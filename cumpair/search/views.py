"""What a user sees about offers and products: prices cheapest first, lowest seen, last change,
and for the product page its photos, its specs shop by shop and each shop's price trend.

Built from store records and their price history; no formatting here (see `formatting`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cumpair.search.ranking import RankedOffer, condition_of, lowest_offer, rank_offers
from cumpair.search.ranking_options import RankingOptions
from cumpair.search.unit_price import Quantity, UnitPrice, offer_quantity

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
    condition: str | None = None  # the store's schema.org short name; None: not stated
    shipping: tuple[dict[str, Any], ...] = ()  # the offer's shipping rules (`shipping.py`)
    quantity: Quantity | None = None  # a stated pack (`unit_price.offer_quantity`)
    net_quantity: Quantity | None = None  # also a single quantity or the specs' (consumables)
    # Set by `cheapest_first`: the offer's place in the ranking (`ranking.RankedOffer`).
    rank_group: str | None = None
    price_flag: str | None = None
    shipping_cost: Decimal | None = None
    unit_price: UnitPrice | None = None
    compared: Decimal | None = None
    compared_currency: str | None = None

    @property
    def total_price(self) -> Decimal | None:
        """Price plus shipping to the chosen country; None when either is unknown."""
        if self.price is None or self.shipping_cost is None:
            return None
        return self.price + self.shipping_cost

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
            "rank_group": self.rank_group,
            "price_flag": self.price_flag,
            "condition": condition_of(self.condition),
            "condition_stated": self.condition is not None,
            "shipping": money(self.shipping_cost),  # to the chosen country; null: unknown
            "total_price": money(self.total_price),
            "unit_price": None if self.unit_price is None else self.unit_price.to_dict(),
            "compared_price": money(self.compared),
            "compared_currency": self.compared_currency,
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
        condition=record.condition,
        shipping=tuple(record.shipping or ()),
        quantity=offer_quantity(record.title, record.specs),
        net_quantity=offer_quantity(record.title, record.specs, consumables=True),
    )


def cheapest_first(
    offers: Iterable[OfferView],
    flags: Sequence[str | None] | None = None,
    options: RankingOptions | None = None,
) -> list[OfferView]:
    """Offers in `ranking.rank_offers`' order under `options` (buyable now and new first,
    cheapest first by price, total or unit price, other currencies apart unless converted),
    each with its place in that ranking (`flags` as judged beforehand, see `rank_offers`)."""
    ranked = rank_offers(offers, flags, options)
    return [
        replace(
            r.offer,
            rank_group=r.group,
            price_flag=r.price_flag,
            shipping_cost=r.shipping,
            unit_price=r.unit_price,
            compared=r.compared,
            compared_currency=r.compared_currency,
        )
        for r in ranked
    ]


def ranking_text(options: RankingOptions, best: RankedOffer | None) -> str:
    """How the offers were ranked and the lowest price chosen, in a sentence (CLI and page)."""
    by = {
        "price": "by item price",
        "total": "by total price with shipping"
        + (f" to {options.ship_to}" if options.ship_to else " (rules for every country)"),
        "unit": "by unit price",
    }[options.by]
    money = (
        f"currencies converted with the rates of {options.rates.date.isoformat()} "
        f"({options.rates.source})"
        if options.rates is not None
        else "other currencies shown apart"
    )
    basis = ""
    if best is not None:
        basis = f"; lowest price: {best.condition.lower()}, {best.group}"
    return (
        f"in stock, new first; {by}; {money}; out of stock and implausible prices "
        f"never the lowest{basis}"
    )


def _lowest_seen(
    ranked: Sequence[RankedOffer[OfferView]], best: RankedOffer[OfferView] | None
) -> Decimal | None:
    """`ProductView.lowest_price_seen` of the offers `ranked`, whose lowest price is `best`."""
    if best is None:
        return None
    counted = [
        r.offer.lowest_price
        for r in ranked
        if r.counts and r.condition == best.condition and r.offer.currency == best.offer.currency
    ]
    return min((p for p in counted if p is not None), default=None)


@dataclass
class ProductView:
    """A product and its offers across shops: one row of search results; `offers` as
    `cheapest_first` ranked and flagged them."""

    product_id: int
    title: str
    brand: str | None
    model: str | None
    gtin: str | None
    specs: dict[str, Any]
    offers: list[OfferView]
    score: float | None = None
    reasons: list[str] = field(default_factory=list)
    ranking: RankingOptions = field(default_factory=RankingOptions)

    @property
    def best(self) -> RankedOffer[OfferView] | None:
        """The offer at the product's lowest price and its basis (`ranking.lowest_offer`)."""
        return lowest_offer(self._ranked())

    @property
    def lowest_price(self) -> Decimal | None:
        """The lowest price the product can be bought at now (see `best` for on what basis)."""
        best = self.best
        return None if best is None else best.offer.price

    @property
    def lowest_price_seen(self) -> Decimal | None:
        """The lowest price ever crawled of the offers whose price counts for the lowest price
        now (`RankedOffer.counts`) in the lowest price's currency and condition, so no other
        currency, condition or implausible price."""
        ranked = self._ranked()
        return _lowest_seen(ranked, lowest_offer(ranked))

    def _ranked(self) -> list[RankedOffer[OfferView]]:
        # The offers' own flags: judged among all the product's offers, not only those shown.
        return rank_offers(self.offers, [o.price_flag for o in self.offers], self.ranking)

    def to_dict(self) -> dict[str, Any]:
        ranked = self._ranked()  # once: `best` and `lowest_price_seen` would each rank again
        best = lowest_offer(ranked)
        lowest = _lowest_seen(ranked, best)
        return {
            "product_id": self.product_id,
            "title": self.title,
            "brand": self.brand,
            "model": self.model,
            "gtin": self.gtin,
            "specs": self.specs,
            "score": None if self.score is None else round(self.score, 4),
            "reasons": self.reasons,
            "lowest_price": None if best is None else str(best.offer.price),
            "lowest_price_currency": None if best is None else best.offer.currency,
            "lowest_price_basis": None if best is None else best.group,
            "lowest_price_condition": None if best is None else best.condition,
            "lowest_price_offer_id": None if best is None else best.offer.offer_id,
            "lowest_price_shipping": None
            if best is None or best.shipping is None
            else str(best.shipping),
            "lowest_compared_price": None
            if best is None or best.compared is None
            else str(best.compared),
            "lowest_compared_currency": None if best is None else best.compared_currency,
            "ranking": {**self.ranking.to_dict(), "said": ranking_text(self.ranking, best)},
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


# ---------------------------------------------------------------------- the product page
# The "recent trend" of a shop's price: the median of the offer's own earlier prices (same
# currency) seen within TREND_DAYS before its latest crawl, the latest crawl itself left out.
# A median, not a mean, so one flash sale or one mis-scraped price does not move it; at least
# TREND_MIN_POINTS earlier prices, so one earlier crawl is no trend. A price below it is a deal.
TREND_DAYS = 30
TREND_MIN_POINTS = 2


def recent_trend(
    history: Sequence[Any], currency: str | None, days: int = TREND_DAYS
) -> Decimal | None:
    """The median earlier price within `days` before the latest point, or None (too few)."""
    priced = [p for p in history if p.price is not None and p.currency == currency]
    if len(priced) < TREND_MIN_POINTS + 1:
        return None
    latest = priced[-1].seen_at
    window = sorted(
        p.price for p in priced[:-1] if (latest - p.seen_at).total_seconds() <= days * 86400
    )
    if len(window) < TREND_MIN_POINTS:
        return None
    middle = len(window) // 2
    if len(window) % 2:
        return window[middle]
    return (window[middle - 1] + window[middle]) / 2


@dataclass(frozen=True)
class PriceSeries:
    """One offer's price history as drawn and served: its points, recent trend, deal or not."""

    offer_id: int
    shop: str
    currency: str | None
    points: list[tuple[datetime, Decimal]]
    trend: Decimal | None
    deal: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "shop": self.shop,
            "currency": self.currency,
            "points": [{"seen_at": t.isoformat(), "price": str(p)} for t, p in self.points],
            "trend": None if self.trend is None else str(self.trend),
            "deal": self.deal,
        }


def price_series(record: Any, history: Sequence[Any]) -> PriceSeries:
    """`record`'s priced history in its current currency, with its trend and deal flag."""
    points = [
        (p.seen_at, p.price)
        for p in history
        if p.price is not None and p.currency == record.currency
    ]
    trend = recent_trend(history, record.currency)
    deal = trend is not None and record.price is not None and record.price < trend
    return PriceSeries(record.id, record.shop, record.currency, points, trend, deal)


@dataclass(frozen=True)
class SpecRow:
    """One spec across a product's offers: each shop's value, and whether they disagree."""

    name: str
    values: dict[str, Any]  # shop -> value as that shop's offer states it

    @property
    def conflict(self) -> bool:
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in self.values.values()}
        return len(distinct) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": self.values, "conflict": self.conflict}


# Spec fields that are bookkeeping or identity (shown elsewhere on the page), not specs.
_NOT_SPECS = frozenset({"raw", "brand", "model", "sku", "gtin"})


def spec_rows(records: Iterable[Any]) -> list[SpecRow]:
    """Every spec any offer states (key specs first), with each shop's value."""
    by_name: dict[str, dict[str, Any]] = {}
    for record in records:
        for name, value in (record.specs or {}).items():
            if name in _NOT_SPECS or value in (None, [], "", {}):
                continue
            by_name.setdefault(name, {}).setdefault(record.shop, value)
    order = {name: n for n, name in enumerate(KEY_SPECS)}
    names = sorted(by_name, key=lambda n: (order.get(n, len(order)), n))
    return [SpecRow(name, by_name[name]) for name in names]


@dataclass(frozen=True)
class PhotoConflict:
    """Where one shop's page and its product photo state different values of a spec (read by
    the specs pipeline: the page's value is kept, the photo's is shown beside it)."""

    offer_id: int
    shop: str
    field: str
    page: Any
    image: Any
    image_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "shop": self.shop,
            "field": self.field,
            "page": self.page,
            "image": self.image,
            "image_url": self.image_url,
        }


def photo_conflicts(records: Iterable[Any]) -> list[PhotoConflict]:
    """The page-versus-photo conflicts of `records` (their `spec_conflicts`), by shop, field."""
    out = [
        PhotoConflict(
            record.id,
            record.shop,
            str(c.get("field")),
            c.get("page"),
            c.get("image"),
            c.get("image_url"),
        )
        for record in records
        for c in record.spec_conflicts or ()
        if isinstance(c, dict) and c.get("field")
    ]
    return sorted(out, key=lambda c: (c.shop, c.field, c.offer_id))


@dataclass
class ProductDetail:
    """Everything the product page shows: the product, its photos, spec table and histories.

    `photos` are (offer id, ordinal) pairs of photos present on disk (served at
    ``/images/{offer_id}/{ordinal}``); `series` is keyed by offer id; `conflicts` where a
    shop's page and its photos disagree on a spec.
    """

    view: ProductView
    photos: list[tuple[int, int]]
    specs: list[SpecRow]
    series: dict[int, PriceSeries]
    conflicts: list[PhotoConflict] = field(default_factory=list)

    @property
    def cheapest(self) -> OfferView | None:
        """The offer at the product's lowest price (`ProductView.best`)."""
        best = self.view.best
        return None if best is None else best.offer

    def to_dict(self) -> dict[str, Any]:
        out = self.view.to_dict()
        for offer in out["offers"]:
            series = self.series.get(offer["offer_id"])
            offer["trend"] = None if series is None or series.trend is None else str(series.trend)
            offer["deal"] = bool(series and series.deal)
        cheapest = self.cheapest
        out["cheapest_offer_id"] = cheapest.offer_id if cheapest else None
        out["shops"] = len({o.shop for o in self.view.offers})
        out["photos"] = [f"/images/{o}/{n}" for o, n in self.photos]
        out["spec_table"] = [row.to_dict() for row in self.specs]
        out["spec_conflicts"] = [c.to_dict() for c in self.conflicts]
        return out


def photo_file(record: Any, ordinal: int, images_root: Path) -> Path | None:
    """The `ordinal`-th photo of an offer on disk: its stored path as is (absolute, or relative
    to the working directory, as the crawl writes it), else relative to `images_root`."""
    paths = getattr(record, "image_paths", ()) or ()
    if not 0 <= ordinal < len(paths):
        return None
    path = Path(paths[ordinal])
    if path.is_file():
        return path
    if not path.is_absolute() and (images_root / path).is_file():
        return images_root / path
    return None


def product_detail(view: ProductView, store: Any, images_root: Path) -> ProductDetail:
    """The product page of `view` (a `SearchService.product` result) from the store's records."""
    ids = [o.offer_id for o in view.offers]
    records = store.get_offers(ids)
    photos = [
        (offer_id, n)
        for offer_id in ids
        if offer_id in records
        for n in range(len(records[offer_id].image_paths or ()))
        if photo_file(records[offer_id], n, images_root) is not None
    ]
    series = {i: price_series(records[i], store.price_history(i)) for i in ids if i in records}
    present = [records[i] for i in ids if i in records]
    return ProductDetail(view, photos, spec_rows(present), series, photo_conflicts(present))


def with_availability(products: list[ProductView], availability: str | None) -> list[ProductView]:
    """Keep only offers whose availability is `availability` (schema.org name, e.g. "InStock");
    products left with no offer go. None keeps everything."""
    if not availability:
        return products
    wanted = availability.casefold()
    kept = []
    for product in products:
        offers = [o for o in product.offers if (o.availability or "").casefold() == wanted]
        if offers:
            product.offers = offers
            kept.append(product)
    return kept


def ranked_by(products: list[ProductView], options: RankingOptions) -> list[ProductView]:
    """`products` with their offers re-ranked under `options` (a query's choice of ranking;
    price flags stay as judged among all of a product's offers)."""
    for product in products:
        product.ranking = options
        product.offers = cheapest_first(
            product.offers, [o.price_flag for o in product.offers], options
        )
    return products


def with_condition(products: list[ProductView], condition: str | None) -> list[ProductView]:
    """Keep only offers in `condition` ("New", "Used", "Refurbished", "Damaged", any case; an
    offer that states none counts as new); products left with no offer go. None keeps all."""
    if not condition:
        return products
    wanted = condition.strip().capitalize()
    kept = []
    for product in products:
        offers = [o for o in product.offers if condition_of(o.condition) == wanted]
        if offers:
            product.offers = offers
            kept.append(product)
    return kept


def first_photo(view: ProductView, store: Any, images_root: Path) -> tuple[int, int] | None:
    """(offer id, ordinal) of the photo a result shows: the cheapest offer's with one on disk."""
    records = store.get_offers(o.offer_id for o in view.offers)
    for offer in view.offers:
        record = records.get(offer.offer_id)
        for n in range(len(getattr(record, "image_paths", ()) or ())):
            if photo_file(record, n, images_root) is not None:
                return offer.offer_id, n
    return None
