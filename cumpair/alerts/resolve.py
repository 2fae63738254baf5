"""What a watch names in the store, for `watch add` and the product page to confirm it.

A watch on something the store does not hold is refused, rather than kept silent forever.
"""

from __future__ import annotations

from pathlib import Path

from cumpair.alerts.book import AlertError, Watch
from cumpair.alerts.check import open_groups, watched_offers


def describe_watched(index_dir: Path, watch: Watch) -> str:
    """ "product 3 (2 offers)"-style text; AlertError when the store holds none of it."""
    from cumpair.index import ProductStore, store_exists

    if not store_exists(index_dir):
        raise AlertError(f"no index at {index_dir} (crawl or ingest first, or pass --index)")
    with ProductStore.open(index_dir, readonly=True) as store, open_groups(index_dir) as groups:
        offers = watched_offers(watch, store, groups)
    if not offers:
        raise AlertError(f"no {watch.kind} {watch.reference} in the index")
    return f"{watch.kind} {watch.reference} ({len(offers)} offer(s))"
