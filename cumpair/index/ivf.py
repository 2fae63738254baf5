"""Which FAISS index a space holds, how it is built, searched and tuned.

Small spaces use exact inner-product Flat (``IDMap2,Flat``). Past the upgrade threshold a space
is rebuilt aside as ``OPQm,IVFnlist,PQmxnbits`` with parameters from the FAISS guidelines
(nlist ~ 4*sqrt(N), at least 39 training points per centroid, m = bytes per code), and nprobe is
tuned on held-out vectors until recall@k against exact search reaches the target. IVF-PQ
candidates are re-ranked exactly (``refine``) from raw vectors that live outside RAM.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import faiss
import numpy as np

from cumpair.index.records import StoreOptions

# Leave-one-out recall runs ~1-2 points above recall on unseen queries (the query helped train
# the centroids), so nprobe is tuned to the target plus this margin.
_TUNING_MARGIN = 0.015

# Fetches raw vectors for an array of ids (-1 allowed, returns zeros there): the refine source.
VectorLookup = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IndexParams:
    """How a space's index is built; stored beside each snapshot and reported by health()."""

    kind: Literal["flat", "ivfpq"] = "flat"
    factory: str = "IDMap2,Flat"
    nlist: int = 0
    m: int = 0
    nbits: int = 0
    opq: bool = False
    nprobe: int = 0
    k_factor: int = 0
    trained_on: int = 0
    recall: float | None = None
    recall_k: int = 0
    build_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexParams:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def new_flat(dim: int) -> faiss.Index:
    """Exact inner-product index that keeps arbitrary 64-bit ids, with remove and reconstruct."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def choose_ivfpq(n: int, dim: int, options: StoreOptions) -> IndexParams:
    """IVF-PQ parameters for `n` vectors of `dim` following the FAISS index-selection guide."""
    nlist = 2 ** round(math.log2(max(16.0, 4 * math.sqrt(n))))
    while nlist > 16 and n < 39 * nlist:  # k-means needs >= 39 points per centroid
        nlist //= 2
    nbits = 8 if n >= 39 * 256 else max(4, int(math.log2(n / 39)))
    m = max(d for d in range(1, min(dim, options.max_code_bytes) + 1) if dim % d == 0)
    wants_opq = n >= options.opq_from if options.use_opq is None else options.use_opq
    opq = wants_opq and m > 1
    factory = (f"OPQ{m}," if opq else "") + f"IVF{nlist},PQ{m}x{nbits}"
    return IndexParams(
        kind="ivfpq",
        factory=factory,
        nlist=nlist,
        m=m,
        nbits=nbits,
        opq=opq,
        k_factor=options.refine_k_factor,
        trained_on=n,
        recall_k=options.recall_k,
    )


def needs_ivfpq(params: IndexParams, count: int, options: StoreOptions) -> bool:
    """Flat past the threshold, or IVF-PQ that has outgrown the size it was trained for."""
    if params.kind == "flat":
        return count >= options.upgrade_threshold
    return count >= params.trained_on * options.retrain_growth


def build_ivfpq(
    vectors: np.ndarray, ids: np.ndarray, params: IndexParams, seed: int = 1234
) -> faiss.Index:
    """Train on a sample and add every vector (slow: call it without holding store locks)."""
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, params.factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.seed = seed
    # The factory turns on polysemous training, ~10x the PQ training time for a search mode we
    # never use (we re-rank exactly instead).
    ivf.do_polysemous_training = False
    if params.opq:
        opq = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
        opq.niter = 10  # default 50 takes minutes on 2 cores for little gain after refine
    n_train = min(len(vectors), max(40 * params.nlist, 40 * 2**params.nbits))
    sample = np.random.default_rng(seed).choice(len(vectors), n_train, replace=False)
    index.train(vectors[np.sort(sample)])
    for start in range(0, len(vectors), 65536):
        index.add_with_ids(vectors[start : start + 65536], ids[start : start + 65536])
    return index


def search(
    index: faiss.Index,
    params: IndexParams,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    lookup: VectorLookup | None = None,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids); per-call parameters so concurrent searches never share state."""
    selector = None if allowed is None else faiss.IDSelectorBatch(allowed)
    if params.kind == "flat":
        search_params = faiss.SearchParameters(sel=selector) if selector is not None else None
        return index.search(queries, k, params=search_params)
    search_params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe or params.nprobe or 1)
    refine = params.k_factor > 0 and lookup is not None
    k_candidates = k * params.k_factor if refine else k
    scores, ids = index.search(queries, k_candidates, params=search_params)
    if not refine:
        return scores, ids
    return rerank(queries, ids, lookup, k)


def rerank(
    queries: np.ndarray, candidates: np.ndarray, lookup: VectorLookup, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidates; keep the best k."""
    nq, kc = candidates.shape
    vecs = lookup(candidates.reshape(-1)).reshape(nq, kc, -1)
    exact = np.einsum("qd,qkd->qk", queries, vecs)
    exact[candidates < 0] = -np.inf
    order = np.argsort(-exact, axis=1)[:, :k]
    scores = np.take_along_axis(exact, order, axis=1)
    ids = np.take_along_axis(candidates, order, axis=1)
    ids[~np.isfinite(scores)] = -1
    return scores.astype(np.float32), ids


def array_lookup(ids_sorted: np.ndarray, vectors: np.ndarray) -> VectorLookup:
    """A refine source over in-memory vectors whose ids are sorted ascending."""

    def lookup(wanted: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(ids_sorted, wanted), 0, len(ids_sorted) - 1)
        out = vectors[pos].copy()
        out[(wanted < 0) | (ids_sorted[pos] != wanted)] = 0
        return out

    return lookup


def tune_nprobe(
    index: faiss.Index,
    params: IndexParams,
    vectors: np.ndarray,
    ids: np.ndarray,
    options: StoreOptions,
    n_queries: int = 500,
    seed: int = 99,
) -> IndexParams:
    """Smallest nprobe whose recall@k (vs exact search) on sampled queries meets the target.

    Leave-one-out: queries are stored vectors (the real distribution), and each query's own id
    is dropped from both the exact and the approximate results before comparing.
    """
    rng = np.random.default_rng(seed)
    k = min(options.recall_k, len(vectors) - 1)
    pick = rng.choice(len(vectors), min(n_queries, len(vectors)), replace=False)
    queries = vectors[pick]
    _, truth = faiss.knn(queries, vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    truth_ids = _without_self(ids[truth], ids[pick], k)
    lookup = array_lookup(ids, vectors)
    nprobe, recall = params.nlist, 0.0
    probe = 1
    while probe <= params.nlist:
        _, found = search(index, params, queries, k + 1, lookup=lookup, nprobe=probe)
        recall = recall_at_k(_without_self(found, ids[pick], k), truth_ids)
        if recall >= min(1.0, options.recall_target + _TUNING_MARGIN):
            nprobe = probe
            break
        probe *= 2
    return replace(params, nprobe=min(nprobe, params.nlist), recall=round(recall, 4), recall_k=k)


def _without_self(found: np.ndarray, self_ids: np.ndarray, k: int) -> np.ndarray:
    """Drop each row's own id (or its last entry when absent) so rows hold k neighbours."""
    rows = []
    for row, own in zip(found, self_ids, strict=True):
        kept = row[row != own]
        rows.append(
            kept[:k] if len(kept) >= k else np.pad(kept, (0, k - len(kept)), constant_values=-1)
        )
    return np.array(rows)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k ids present in the returned top-k."""
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def build_and_tune(
    vectors: np.ndarray, ids: np.ndarray, options: StoreOptions
) -> tuple[faiss.Index, IndexParams]:
    """Everything an upgrade does off-lock: choose, train, add, tune; returns the ready index."""
    started = time.perf_counter()
    params = choose_ivfpq(len(vectors), vectors.shape[1], options)
    index = build_ivfpq(vectors, ids, params)
    params = tune_nprobe(index, params, vectors, ids, options)
    return index, replace(params, build_s=round(time.perf_counter() - started, 3))
