"""Which watches the store's current prices trigger: a price at or under the target, or the
given percentage under its shop's recent trend; each drop queued once (see `book`). A price the
search ranking flags as implausible (zero, or far below the watch's other offers or the offer's
own earlier prices: `ranking.price_flags`) triggers nothing.

Reads the store and the product grouping through their public APIs only; writes nothing but
the watch book.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from cumpair.alerts.book import Watch, WatchBook
from cumpair.search.ranking import price_flags
from cumpair.search.views import recent_trend


@contextmanager
def open_groups(index_dir: Path) -> Iterator[Any | None]:
    """The store's product grouping opened read-only, or None where nothing is grouped yet (no
    product grouped): what `watched_offers` and `check_watches` take as `groups`."""
    from cumpair.search.products import ProductGroups

    groups = ProductGroups.open(index_dir, readonly=True)
    if groups.count()[1] == 0:
        groups.close()
        yield None
        return
    try:
        yield groups
    finally:
        groups.close()


def watched_offers(watch: Watch, store: Any, groups: Any | None) -> list[int]:
    """Offer ids a watch covers now (a product's offers change as the grouping does)."""
    if watch.kind == "url":
        from cumpair.search.store_scan import find_by_url

        return find_by_url(store, watch.reference)
    if groups is None:  # nothing grouped yet: no product, no GTIN look-up
        return []
    if watch.kind == "product":
        return groups.offers_of(int(watch.reference))
    return [o for p in groups.products_with_gtin(watch.reference) for o in groups.offers_of(p)]


def trigger(watch: Watch, record: Any, history: list[Any]) -> str | None:
    """Why `record`'s price triggers `watch` ("at or below 99.00", "12% under the trend
    113.50"), or None."""
    price = record.price
    if price is None:
        return None
    if watch.below is not None and price <= watch.below:
        return f"at or below {watch.below}"
    if watch.drop_pct is not None:
        trend = recent_trend(history, record.currency)
        if trend is not None and trend > 0:
            limit = trend * (1 - Decimal(str(watch.drop_pct)) / 100)
            if price <= limit:
                under = (1 - price / trend) * 100
                return f"{under:.0f}% under the trend {trend}"
    return None


def check_watches(book: WatchBook, store: Any, groups: Any | None) -> int:
    """Queue a notice for every new drop; returns how many were queued.

    Once per drop: a price that triggers is told once and then again only if it falls lower
    still; once it rises over the target the watch is re-armed for that offer.
    """
    queued = 0
    for watch in book.watches():
        ids = watched_offers(watch, store, groups)
        records = store.get_offers(ids)
        histories = {offer_id: store.price_history(offer_id) for offer_id in records}
        judged = price_flags(list(records.values()), list(histories.values()))
        flags = dict(zip(records, judged, strict=True))
        for offer_id in ids:
            record = records.get(offer_id)
            if record is None or flags[offer_id]:  # a placeholder price is no drop, no rise
                continue
            history = histories[offer_id]
            reason = trigger(watch, record, history)
            told = book.told_price(watch.id, offer_id)
            if reason is None:
                if told is not None:
                    book.rearm(watch.id, offer_id)
                continue
            if told is not None and record.price >= told:
                continue
            seen = history[-1].seen_at.isoformat() if history else None
            book.queue(watch, record, seen, reason)
            queued += 1
    return queued
