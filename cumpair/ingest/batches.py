"""Embed a batch of offers together, then upsert and group each: the loop `cumpair ingest` and
the indexer share, each keeping its own accounting.

Offers come out one at a time, right after their upsert returned (durable, by the store's
contract), so a caller can acknowledge each before the next is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cumpair.embed import BatchEmbedder, ItemVectors, product_text
from cumpair.index import InvalidOfferError, UpsertResult
from cumpair.ingest.stages import offer_record, space_vectors, store_offer


@dataclass(frozen=True)
class Stored:
    """One offer of a batch: its vectors, and the upsert's result or why the store refused it."""

    vectors: ItemVectors
    result: UpsertResult | None
    error: InvalidOfferError | None = None


def embed_and_store(
    store: Any,
    groups: Any,
    embedder: BatchEmbedder,
    batch: Sequence[tuple[Mapping[str, Any], Sequence[str]]],
) -> Iterator[Stored]:
    """For each (item, paths of its stored photos) of `batch`, in order: its vectors (all
    embedded together) and its upsert into `store` and `groups` (`stages.store_offer`). An
    offer the store refuses (`InvalidOfferError`) comes out with the error, and the rest go on."""
    futures = [
        embedder.submit(list(paths), product_text(item), key=item["url"]) for item, paths in batch
    ]
    embedder.flush()
    for (item, paths), future in zip(batch, futures, strict=True):
        vectors = future.result()
        try:
            result, _ = store_offer(
                store, groups, offer_record(item, paths), space_vectors(vectors)
            )
        except InvalidOfferError as exc:
            yield Stored(vectors, None, exc)
            continue
        yield Stored(vectors, result)


__all__ = ["Stored", "embed_and_store"]
