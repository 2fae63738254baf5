"""FAISS + SQLite product store: durable, concurrent, deduplicating, self-upgrading.

`ProductStore` (the store/ package, one module per job) is the API; records.py holds the
dataclasses that cross it. Plain library: never imports Scrapy (the item pipeline in
cumpair_scraper adapts it).
"""

from cumpair.index.records import (
    EncoderMismatchError,
    Hit,
    InvalidOfferError,
    InvalidVectorError,
    MissingDatabaseError,
    OfferRecord,
    PricePoint,
    ReadOnlyStoreError,
    SearchFilters,
    SpaceSpec,
    StoreError,
    StoreIOError,
    StoreLockedError,
    StoreOptions,
    UnknownSpaceError,
    UpsertResult,
    VectorLogError,
    split_vector_id,
    vector_id,
)
from cumpair.index.store import ProductStore, recover

__all__ = [
    "EncoderMismatchError",
    "Hit",
    "InvalidOfferError",
    "InvalidVectorError",
    "MissingDatabaseError",
    "OfferRecord",
    "PricePoint",
    "ProductStore",
    "ReadOnlyStoreError",
    "SearchFilters",
    "SpaceSpec",
    "StoreError",
    "StoreIOError",
    "StoreLockedError",
    "StoreOptions",
    "UnknownSpaceError",
    "UpsertResult",
    "VectorLogError",
    "recover",
    "split_vector_id",
    "vector_id",
]
