"""Candidate pairs for grouping: which offers are worth a pair verdict at all.

Blocking (a shared GTIN or model code), TF-IDF title neighbours and nearest neighbours in the
text and image vector spaces, so the pairs compared grow linearly with the offers, not
quadratically. Nothing here decides a match; `grouping` compares the pairs this returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from cumpair.search.features import OfferFeatures

BLOCK_LIMIT = 50  # a code or GTIN on more offers than this is no model number ("USB3")


def _neighbour_pairs(vectors: np.ndarray, k: int) -> Iterable[tuple[int, int]]:
    """Row pairs (i, j), i < j, where j is among i's `k` nearest rows by inner product."""
    import faiss

    if len(vectors) < 2:
        return []
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, neighbours = index.search(
        np.ascontiguousarray(vectors, dtype=np.float32), min(k + 1, len(vectors))
    )
    pairs = set()
    for i, row in enumerate(neighbours):
        for j in row:
            if j >= 0 and j != i:
                pairs.add((min(i, int(j)), max(i, int(j))))
    return pairs


def _title_neighbour_pairs(titles: Sequence[str], k: int, chunk: int = 256) -> set[tuple[int, int]]:
    """Row pairs whose titles are among each other's `k` most similar by TF-IDF cosine.

    Similarities stay sparse (a chunk of rows against all), so memory follows the words
    titles share, never rows x offers."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if k == 0 or len(titles) < 2 or not any(t.strip() for t in titles):
        return set()
    try:
        matrix = TfidfVectorizer(sublinear_tf=True).fit_transform(titles).tocsr()
    except ValueError:  # only stop words or no words at all
        return set()
    pairs = set()
    transposed = matrix.T.tocsc()
    for start in range(0, len(titles), chunk):
        sims = (matrix[start : start + chunk] @ transposed).tocsr()
        for offset in range(sims.shape[0]):
            i = start + offset
            row = slice(sims.indptr[offset], sims.indptr[offset + 1])
            columns, values = sims.indices[row], sims.data[row]
            keep = columns != i
            columns, values = columns[keep], values[keep]
            if len(values) > k:
                top = np.argpartition(-values, k)[:k]
                columns = columns[top]
            pairs.update((min(i, int(j)), max(i, int(j))) for j in columns)
    return pairs


def candidate_pairs(
    features: Sequence[OfferFeatures],
    vectors: Mapping[str, np.ndarray] | None = None,
    k: int = 10,
    title_neighbours: int = 10,
) -> set[tuple[int, int]]:
    """Row pairs worth comparing: shared GTIN or model code, title or vector neighbours."""
    pairs: set[tuple[int, int]] = set()
    blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, offer in enumerate(features):
        if offer.gtin:
            blocks["gtin", offer.gtin].append(i)
        for code in offer.models:
            blocks["model", code].append(i)
    for rows in blocks.values():
        if len(rows) > BLOCK_LIMIT:
            continue
        pairs.update((a, b) for n, a in enumerate(rows) for b in rows[n + 1 :])
    pairs |= _title_neighbour_pairs([f.title for f in features], title_neighbours)
    for matrix in (vectors or {}).values():
        pairs.update(_neighbour_pairs(matrix, k))
    return pairs
