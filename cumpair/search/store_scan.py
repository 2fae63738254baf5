"""Read a whole store for a regroup pass: every offer and its first vector per space.

Everything goes through the `OfferStore` protocol (offer and vector scans, look-ups by id and
URL), so this works on any implementation and never touches the store's files.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from cumpair.index.records import OfferRecord, SpaceSpec, split_vector_id

if TYPE_CHECKING:  # the look-ups by URL and of the spaces import no numpy (GTIN, history)
    import numpy as np

    from cumpair.index.protocol import OfferStore


def scan_offers(store: OfferStore) -> list[OfferRecord]:
    """All offers of `store`, by id."""
    return [record for page in store.iter_offers() for record in page]


def first_vectors(
    store: OfferStore, offer_ids: Collection[int] | None = None
) -> dict[str, dict[int, np.ndarray]]:
    """Per space, each offer's first vector (ordinal 0: its main photo, or its text), unit
    length; only those of `offer_ids` when given (then read by offer, not by a full scan)."""
    import numpy as np

    out: dict[str, dict[int, np.ndarray]] = {}
    for space in store.spaces():
        if offer_ids is not None:
            found = store.offer_vectors(space, offer_ids)
        else:
            found = {}
            for ids, matrix in store.iter_vectors(space):
                for vid, row in zip(ids.tolist(), matrix, strict=True):
                    offer_id, ordinal = split_vector_id(vid)
                    if ordinal == 0:
                        found[offer_id] = row
        out[space] = {o: v / max(float(np.linalg.norm(v)), 1e-12) for o, v in found.items()}
    return out


def find_by_url(store: OfferStore, url: str) -> list[int]:
    """Offer ids whose URL is `url` (any shop)."""
    return store.offers_with_url(url)


def space_specs(store: OfferStore) -> dict[str, SpaceSpec]:
    """The vector spaces recorded in the store (name -> `SpaceSpec`)."""
    return store.spaces()
