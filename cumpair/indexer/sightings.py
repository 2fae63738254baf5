"""Whether an item's sighting is already in the store: what makes a redelivered item harmless.

An item can come back after it was stored: the indexer killed between a batch's upsert and its
acknowledgements, or a spool drain killed (or failed in a later part of its batch) before it
marked the rows it had stored `done`. Storing it again would add a second price point for the
same sighting. Every stored sighting appends a price point at its ``seen_at``, and
`offer_record` takes ``seen_at`` from the item's ``crawled_at``, so a point at exactly that time
on the same shop's offer for the item's URL is this item's own.

Any looser rule is wrong somewhere: a point *after* the crawl time is also what an indexer
lagging a run behind leaves when it stores run r1 after r2 crawled the page, and comparing what
the item says cannot tell r2 from r1 when r2 changed only the page's spec text. Two runs
crawling the same page in the same microsecond would be taken for one (not met in practice);
an item without ``crawled_at`` is stored again (one more point, none lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cumpair.index import ProductStore
from cumpair.ingest.stages import crawled_at


def offer_with_sighting(store: ProductStore, item: Mapping[str, Any]) -> int | None:
    """The id of the stored offer that already holds this item's sighting, or None (also for
    an item without a readable ``crawled_at``: the store then stores it, or rejects it with
    the reason, as a first delivery)."""
    try:
        at = crawled_at(item)
    except ValueError:
        return None
    if at is None:
        return None
    for offer_id, offer in store.get_offers(store.offers_with_url(item["url"])).items():
        if offer.shop == item["shop"]:
            if any(point.seen_at == at for point in store.price_history(offer_id)):
                return offer_id
            return None
    return None


__all__ = ["offer_with_sighting"]
