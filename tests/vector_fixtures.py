"""Vectors for the product store's tests: unit vectors around random centres, like real
embeddings (not uniform noise)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from cumpair.index import OfferRecord


def clustered(n: int, dim: int, *, clusters: int, seed: int = 0) -> np.ndarray:
    """`n` unit vectors of `dim` floats around `clusters` random centres (fixed by `seed`)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def text_items(vectors: np.ndarray, start: int = 0) -> list[tuple[OfferRecord, dict]]:
    """One offer of shop "northwind" per vector, as its "text" vector, for `upsert_many`; the
    offers' URLs are numbered from `start`."""
    return [
        (OfferRecord("northwind", f"http://northwind/{start + i}", price=Decimal(1)), {"text": v})
        for i, v in enumerate(vectors)
    ]
