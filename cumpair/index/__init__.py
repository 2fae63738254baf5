"""FAISS + SQLite product store: durable, concurrent, deduplicating, self-upgrading.

`ProductStore` (the store/ package, one module per job) implements `OfferStore` (protocol.py),
the operations its callers use; records.py holds the dataclasses that cross it; the functions of
store/directory.py answer questions about a store directory without opening it. Plain library:
never imports Scrapy (the item pipeline in cumpair_scraper adapts it).
"""

from typing import TYPE_CHECKING

from cumpair.index.records import (
    EncoderMismatchError,
    Hit,
    InvalidOfferError,
    InvalidVectorError,
    MissingDatabaseError,
    OfferRecord,
    PricePoint,
    ReadOnlyStoreError,
    SearchEffort,
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
from cumpair.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from cumpair.index.protocol import OfferStore
    from cumpair.index.store import ProductStore, recover
    from cumpair.index.store.directory import (
        is_store_file,
        migrate_locked,
        recorded_spaces,
        store_exists,
    )
    from cumpair.index.store.rows import OfferRows

# Names whose modules import numpy and FAISS load on first use (PEP 562): records.py is plain
# dataclasses, and Scrapy's settings import `StoreOptions` from here in every `scrapy` command
# (`scrapy list` spent 0.17 s importing the store it never opens).
_LAZY = {
    "OfferRows": "cumpair.index.store.rows",
    "OfferStore": "cumpair.index.protocol",
    "ProductStore": "cumpair.index.store",
    "recover": "cumpair.index.store",
    "is_store_file": "cumpair.index.store.directory",
    "migrate_locked": "cumpair.index.store.directory",
    "recorded_spaces": "cumpair.index.store.directory",
    "store_exists": "cumpair.index.store.directory",
}

__getattr__ = lazy_getattr(globals(), _LAZY)


__all__ = [
    "EncoderMismatchError",
    "Hit",
    "InvalidOfferError",
    "InvalidVectorError",
    "MissingDatabaseError",
    "OfferRecord",
    "OfferRows",
    "OfferStore",
    "PricePoint",
    "ProductStore",
    "ReadOnlyStoreError",
    "SearchEffort",
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
