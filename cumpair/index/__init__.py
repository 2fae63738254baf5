"""FAISS + SQLite product store: durable, concurrent, deduplicating, self-upgrading.

`ProductStore` (the store/ package, one module per job) implements `OfferStore` (protocol.py),
the operations its callers use; records.py holds the dataclasses that cross it; the functions of
store/directory.py answer questions about a store directory without opening it. Plain library:
never imports Scrapy (the item pipeline in cumpair_scraper adapts it).
"""

from cumpair.index.protocol import OfferStore
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
from cumpair.index.store.directory import (
    is_store_file,
    migrate_locked,
    recorded_spaces,
    store_exists,
)

__all__ = [
    "EncoderMismatchError",
    "Hit",
    "InvalidOfferError",
    "InvalidVectorError",
    "MissingDatabaseError",
    "OfferRecord",
    "OfferStore",
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
    "is_store_file",
    "migrate_locked",
    "recorded_spaces",
    "recover",
    "split_vector_id",
    "store_exists",
    "vector_id",
]
