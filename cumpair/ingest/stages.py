"""The crawl's per-offer stages as plain functions, called by the Scrapy pipelines and by
`cumpair ingest` alike: one definition of what makes an offer usable, which specs its page
states, which record and vectors the store gets, and how it joins a product.

Items are read through the mapping interface (a `ProductItem` through itemadapter, or a dict);
nothing here imports Scrapy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cumpair.index import OfferRecord, UpsertResult
from cumpair.search.store_scan import first_vectors, scan_offers
from cumpair.vision.merge import page_specs
from cumpair.vision.specs import Specs, extract_specs

#: What an offer needs to take part in a price comparison.
REQUIRED_FIELDS = ("title", "price", "currency")


def missing_fields(item: Mapping[str, Any], *, allow_missing_price: bool = False) -> list[str]:
    """The required fields `item` lacks, in `REQUIRED_FIELDS` order.

    `allow_missing_price` accepts an offer with neither price nor currency (kept as evidence
    for grouping, shown as "price unknown"); a price without a currency is still refused.
    """
    missing = [name for name in REQUIRED_FIELDS if item.get(name) in (None, "")]
    if allow_missing_price and "price" in missing:
        missing = [name for name in missing if name not in ("price", "currency")]
    return missing


def page_specs_of(item: Mapping[str, Any]) -> Specs:
    """Specs the offer's own text states (title and description), with its structured brand,
    model and GTIN laid over them; image facts are merged on top by `merge_specs`."""
    text = "\n".join(str(item.get(k) or "") for k in ("title", "description"))
    return page_specs(
        extract_specs(text), brand=item.get("brand"), model=item.get("model"), gtin=item.get("gtin")
    )


def offer_record(item: Mapping[str, Any], image_paths: Sequence[str]) -> OfferRecord:
    """The store record of an item whose photos are at `image_paths`."""
    return OfferRecord(
        shop=item["shop"],
        url=item["url"],
        title=item.get("title") or "",
        price=item.get("price"),
        currency=item.get("currency"),
        availability=item.get("availability"),
        brand=item.get("brand"),
        model=item.get("model"),
        sku=item.get("sku"),
        gtin=item.get("gtin"),
        category=item.get("category"),
        image_paths=tuple(str(p) for p in image_paths),
        image_urls=tuple(item.get("image_urls") or ()),
        specs=item.get("specs") or {},
    )


def space_vectors(vectors: Any) -> dict[str, np.ndarray]:
    """The store's vectors by space from an `ItemVectors` (a space without a vector is left out,
    so the offer keeps what it had there)."""
    out: dict[str, np.ndarray] = {}
    if len(vectors.image_positions):
        out["image"] = vectors.image_vectors
    if vectors.text_vector is not None:
        out["text"] = vectors.text_vector
    return out


def store_offer(
    store: Any, groups: Any, record: OfferRecord, vectors: Mapping[str, np.ndarray]
) -> tuple[UpsertResult, Any]:
    """Upsert `record` into `store` (a `ProductStore`) and group it (`ProductGroups.assign`);
    returns the upsert result and the offer's membership."""
    result = store.upsert(record, vectors)
    return result, groups.assign(store, result.offer_id, vectors)


def regroup_store(store: Any, groups: Any) -> tuple[int, int]:
    """Regroup every offer of `store` in one pass, which merges products that late offers showed
    to be one (what the crawl does when its last spider closes); returns (products, offers)."""
    return groups.regroup(scan_offers(store), first_vectors(store))


__all__ = [
    "REQUIRED_FIELDS",
    "missing_fields",
    "offer_record",
    "page_specs_of",
    "regroup_store",
    "space_vectors",
    "store_offer",
]
