"""Read a whole `ProductStore` for a regroup pass: every offer and its first vector per space.

`ProductStore` answers look-ups by id, vector searches and vector scans (`iter_vectors`); the
offer scans read the store's SQLite file read-only through the store's own
`cumpair.index.metadata` helpers (WAL: never blocks a crawl writing meanwhile).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any

import numpy as np

from cumpair.index import metadata
from cumpair.index.records import OfferRecord, split_vector_id
from cumpair.index.store import DB_NAME


def scan_offers(store: Any) -> list[OfferRecord]:
    """All offers of `store`, by id."""
    with contextlib.closing(metadata.connect(store.path / DB_NAME, readonly=True)) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM offers ORDER BY id")]
        records = metadata.get_offers(conn, ids)
    return [records[i] for i in ids if i in records]


def first_vectors(
    store: Any, offer_ids: Collection[int] | None = None
) -> dict[str, dict[int, np.ndarray]]:
    """Per space, each offer's first vector (ordinal 0: its main photo, or its text); only those
    of `offer_ids` when given (the scan still reads every vector, memory holds only these)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    wanted = None if offer_ids is None else set(offer_ids)
    for space in space_specs(store):
        vectors: dict[int, np.ndarray] = {}
        for ids, matrix in store.iter_vectors(space):
            for vid, row in zip(ids.tolist(), matrix, strict=True):
                offer_id, ordinal = split_vector_id(vid)
                if ordinal == 0 and (wanted is None or offer_id in wanted):
                    vectors[offer_id] = row / max(float(np.linalg.norm(row)), 1e-12)
        out[space] = vectors
    return out


def find_by_url(store: Any, url: str) -> list[int]:
    """Offer ids whose URL is `url` (any shop)."""
    with contextlib.closing(metadata.connect(store.path / DB_NAME, readonly=True)) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM offers WHERE url = ?", (url,))]


def space_specs(store: Any) -> dict[str, Any]:
    """The vector spaces recorded in the store (name -> `SpaceSpec`)."""
    with contextlib.closing(metadata.connect(store.path / DB_NAME, readonly=True)) as conn:
        return metadata.space_specs(conn)
