"""Title neighbours from the store's title-term index (a part of `ProductStore`): what an
incremental regroup asks instead of reading every title (`title_terms.title_neighbours`)."""

from __future__ import annotations

from collections.abc import Iterable

from cumpair.index import title_terms
from cumpair.index.store.base import StoreBase


class Titles(StoreBase):
    """Title-term look-ups (a part of `ProductStore`)."""

    def title_neighbours(
        self, offer_ids: Iterable[int], words: int, grams: int
    ) -> dict[int, set[int]] | None:
        """Offer id -> the ids of its `words` nearest titles by words and `grams` by character
        trigrams (TF-IDF cosine over every title of the store, probed through the index: the
        work per offer is bounded by its probes, whatever the store's size); offers not in the
        store are absent. None while the index of a migrated store is not filled yet (its next
        writable open fills it)."""
        conn = self._read_conn()
        if not title_terms.is_complete(conn):
            return None
        return title_terms.title_neighbours(conn, sorted(set(offer_ids)), words, grams)
