"""Embed a batch of offers together, then upsert and group them: the loop `cumpair ingest` and
the indexer run (`embed_and_store_many`), each keeping its own accounting, and the batched
upsert the crawl's writer and the spool's drain run too (`store_batch`).

The batch is upserted first, in one durable transaction per part (one part unless it is cut or
refused), so an offer counts as stored only once its part is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cumpair.embed import BatchEmbedder, ItemVectors, product_text
from cumpair.index import InvalidOfferError, UpsertResult
from cumpair.ingest.stages import offer_record, space_vectors


@dataclass(frozen=True)
class Stored:
    """One offer of a batch: its vectors, and the upsert's result or why the store refused it."""

    vectors: ItemVectors
    result: UpsertResult | None
    error: InvalidOfferError | None = None


def embed_and_store_many(
    store: Any,
    groups: Any,
    embedder: BatchEmbedder,
    batch: Sequence[tuple[Mapping[str, Any], Sequence[str]]],
) -> list[Stored]:
    """For each (item, paths of its stored photos) of `batch`, in order: its vectors (all
    embedded together) and its upsert and grouping, batched (`store_batch`: ``store.upsert_many``,
    one transaction a part, durable when it returns, then grouped one by one; results are those
    of upserting one at a time, and a refused record comes out with its error while every other
    offer is stored)."""
    vectors = _embedded(embedder, batch)
    entries = [
        (item, paths, space_vectors(item_vectors))
        for (item, paths), item_vectors in zip(batch, vectors, strict=True)
    ]
    return [
        Stored(item_vectors, None, outcome)
        if isinstance(outcome, InvalidOfferError)
        else Stored(item_vectors, outcome[0])
        for item_vectors, outcome in zip(vectors, store_batch(store, groups, entries), strict=True)
    ]


def store_batch(
    store: Any,
    groups: Any,
    entries: Sequence[tuple[Mapping[str, Any], Sequence[str], Mapping[str, np.ndarray]]],
) -> list[tuple[UpsertResult, Any] | InvalidOfferError]:
    """Upsert and group (item, its photo references, vectors by space) `entries`, in order:
    each one's (upsert result, membership), or its `InvalidOfferError` when the store refuses
    it (`stages.offer_record` refuses a bad ``crawled_at``) while every other one is stored.
    What `embed_and_store_many`, the crawl's writer (`indexer.turns`) and the spool's drain
    all upsert with; durable when it returns."""
    out: list[tuple[UpsertResult, Any] | InvalidOfferError | None] = [None] * len(entries)
    ready: list[int] = []
    records: list[tuple[Any, Mapping[str, np.ndarray]]] = []
    for n, (item, references, vectors) in enumerate(entries):
        try:
            records.append((offer_record(item, references), vectors))
        except InvalidOfferError as exc:
            out[n] = exc
            continue
        ready.append(n)
    for n, outcome in zip(ready, _store_records(store, groups, records), strict=True):
        out[n] = outcome
    return out  # type: ignore[return-value]  # every entry has its outcome now


def _store_records(
    store: Any,
    groups: Any,
    entries: Sequence[tuple[Any, Mapping[str, np.ndarray]]],
) -> list[tuple[UpsertResult, Any] | InvalidOfferError]:
    """Upsert and group (record, vectors by space) `entries` as `stages.store_offer` one at a
    time would, with the upserts batched: ``store.upsert_many``, one durable transaction a part,
    the batch cut before an offer whose photo nearly repeats an earlier one of the same shop in
    it (`_near_repeats`: the store finds near-duplicates only among offers stored before a
    batch), and each offer grouped with the part's later new offers as ``pending``, so they do
    not crowd its neighbours out. A part the store refuses is upserted again offer by offer, so
    a bad record comes out as its `InvalidOfferError` and every other one is stored. Returns
    each entry's (upsert result, membership) or error, in order."""
    options = getattr(store, "options", None)
    threshold = getattr(options, "duplicate_threshold", None)
    space = getattr(options, "duplicate_space", "image")
    out: list[tuple[UpsertResult, Any] | InvalidOfferError] = []
    start = 0
    for end in [*_near_repeats(entries, space, threshold), len(entries)]:
        part, start = entries[start:end], end
        if not part:
            continue
        try:
            results: list[UpsertResult | InvalidOfferError] = list(store.upsert_many(part))
        except InvalidOfferError:  # which one: each alone (nothing of the part was written)
            results = [_upsert_one(store, record, vectors) for record, vectors in part]
        created = [r.offer_id for r in results if isinstance(r, UpsertResult) and r.created]
        for (_, vectors), result in zip(part, results, strict=True):
            if isinstance(result, InvalidOfferError):
                out.append(result)
                continue
            if result.created:  # the part's new offers after it: not stored, one at a time
                del created[0]
            out.append((result, groups.assign(store, result.offer_id, vectors, pending=created)))
    return out


def _embedded(
    embedder: BatchEmbedder, batch: Sequence[tuple[Mapping[str, Any], Sequence[str]]]
) -> list[ItemVectors]:
    """The vectors of each (item, photo paths) of `batch`, in order, all embedded together
    (submitted, then one flush); an offer whose embedding failed raises, before anything of
    the batch is stored."""
    futures = [
        embedder.submit(list(paths), product_text(item), key=item["url"]) for item, paths in batch
    ]
    embedder.flush()
    return [future.result() for future in futures]


def _upsert_one(
    store: Any, record: Any, vectors: Mapping[str, np.ndarray]
) -> UpsertResult | InvalidOfferError:
    try:
        return store.upsert(record, vectors)
    except InvalidOfferError as exc:
        return exc


def _near_repeats(
    items: Sequence[tuple[Any, Mapping[str, np.ndarray]]], space: str, threshold: float | None
) -> list[int]:
    """Where to cut `items` (records and their vectors by space) so that no offer's first
    vector in `space` has cosine >= `threshold` with a vector of an earlier offer of the same
    shop within its part; ascending positions."""
    if threshold is None:
        return []
    cuts, since, seen = [], 0, {}  # seen: shop -> (item, its unit vectors) since the last cut
    for n, (record, vectors) in enumerate(items):
        rows = np.atleast_2d(np.asarray(vectors.get(space, np.empty((0, 0))), dtype=np.float32))
        if not rows.size:
            continue
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        earlier = [v for at, v in seen.get(record.shop, []) if at >= since]
        if earlier and float((np.concatenate(earlier) @ rows[0]).max()) >= threshold:
            cuts.append(n)
            since = n
        seen.setdefault(record.shop, []).append((n, rows))
    return cuts


__all__ = ["Stored", "embed_and_store_many", "store_batch"]
