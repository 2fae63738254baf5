"""`OfferStore`: the operations search, grouping, embedding and reindex use on a store of offers.

`ProductStore` (FAISS + SQLite in a directory) implements it; so could a client of a server-side
vector engine, the way qdrant-client's local and remote clients share one base: every call takes
and returns the typed records of records.py (offers, hits, price points, space specs) and
arrays, never a path, a connection or a file. Scans page through the store (`iter_offers`,
`iter_vectors`) so a remote implementation can scroll instead of loading everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, Self, runtime_checkable

import numpy as np

from cumpair.index.records import (
    Hit,
    OfferRecord,
    PricePoint,
    SearchEffort,
    SearchFilters,
    SpaceSpec,
    UpsertResult,
)


@runtime_checkable
class OfferStore(Protocol):
    """A durable store of offers with vectors in named spaces (see `ProductStore` for the
    contract every implementation keeps: an upsert is durable when it returns)."""

    readonly: bool

    # ------------------------------------------------------------------ writing
    def upsert(
        self, offer: OfferRecord, vectors: Mapping[str, np.ndarray] | None = None
    ) -> UpsertResult:
        """Add or update one offer (same shop+URL, shop+GTIN or near-identical vector)."""
        ...

    def upsert_many(
        self, items: Iterable[tuple[OfferRecord, Mapping[str, np.ndarray]]]
    ) -> list[UpsertResult]:
        """`upsert` for a batch, in one transaction."""
        ...

    def remove(self, offer_id: int) -> bool:
        """Delete an offer with its history and vectors; False when it did not exist."""
        ...

    def flush(self) -> int:
        """Persist the in-memory indexes now; returns how many files were written."""
        ...

    def maybe_flush(self) -> bool:
        """`flush` when the flush interval has passed (cheap to call per item)."""
        ...

    # ------------------------------------------------------------------ reading
    def spaces(self) -> dict[str, SpaceSpec]:
        """Every vector space the store records (name -> spec), also those not opened."""
        ...

    def count(self, space: str) -> int:
        """Vectors currently searchable in `space`."""
        ...

    def search(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
        effort: SearchEffort | None = None,
    ) -> list[list[Hit]]:
        """Best `k` offers per query row, best score per offer first (`effort`: search less
        than the store's tuning, e.g. fewer IVF lists; None: as tuned)."""
        ...

    async def asearch(
        self,
        space: str,
        queries: np.ndarray,
        k: int = 10,
        filters: SearchFilters | None = None,
        effort: SearchEffort | None = None,
    ) -> list[list[Hit]]:
        """`search` for asyncio code."""
        ...

    def get_offers(self, ids: Iterable[int]) -> dict[int, OfferRecord]:
        """Offer records by id (ids that do not exist are absent)."""
        ...

    def price_history(self, offer_id: int) -> list[PricePoint]:
        """Every recorded price of an offer, oldest first."""
        ...

    def iter_offers(self, batch: int = 1000) -> Iterator[list[OfferRecord]]:
        """Every offer in id order, `batch` records at a time."""
        ...

    def offers_with_url(self, url: str) -> list[int]:
        """Ids of the offers at `url` (any shop)."""
        ...

    def title_neighbours(
        self, offer_ids: Iterable[int], words: int, grams: int
    ) -> dict[int, set[int]] | None:
        """Offer id -> the ids of its `words` nearest titles by word TF-IDF and `grams` by
        character-trigram TF-IDF among every offer, at a cost per offer bounded whatever
        the store's size; None when the store cannot answer yet (grouping then reads titles)."""
        ...

    def iter_vectors(
        self, space: str, batch: int = 65536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every live vector of a space in id order: (vector ids, matrix) batches."""
        ...

    def offer_vectors(
        self, space: str, offer_ids: Iterable[int], ordinal: int = 0
    ) -> dict[int, np.ndarray]:
        """The `ordinal`-th vector of each offer that has one in `space` (as stored)."""
        ...

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
