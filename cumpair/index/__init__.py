"""FAISS + SQLite product store: durable, concurrent, deduplicating, self-upgrading.

`ProductStore` (store.py) is the API; records.py holds the dataclasses that cross it. Plain
library: never imports Scrapy (the item pipeline in cumpair_scraper adapts it).
"""

from cumpair.index.records import (
    EncoderMismatchError,
    Hit,
    InvalidOfferError,
    InvalidVectorError,
    OfferRecord,
    PricePoint,
    ReadOnlyStoreError,
    SearchFilters,
    SpaceSpec,
    StoreError,
    StoreLockedError,
    StoreOptions,
    UnknownSpaceError,
    UpsertResult,
    split_vector_id,
    vector_id,
)
from cumpair.index.store import ProductStore

__all__ = [
    "EncoderMismatchError",
    "Hit",
    "InvalidOfferError",
    "InvalidVectorError",
    "OfferRecord",
    "PricePoint",
    "ProductStore",
    "ReadOnlyStoreError",
    "SearchFilters",
    "SpaceSpec",
    "StoreError",
    "StoreLockedError",
    "StoreOptions",
    "UnknownSpaceError",
    "UpsertResult",
    "split_vector_id",
    "vector_id",
]
