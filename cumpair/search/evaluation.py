"""Measure grouping and photo search against the demo catalog's ground truth.

Pairwise precision/recall/F1 counts every pair of offers placed in one group; recall@k asks
whether a query's true product is among the first k products returned. Both are what the
issue's targets are stated in; `bench/eval_matching.py` prints them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairwiseScores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int


def _pairs(labels: Mapping[int, Hashable]) -> set[tuple[int, int]]:
    members: dict[Hashable, list[int]] = defaultdict(list)
    for key, label in labels.items():
        members[label].append(key)
    out = set()
    for keys in members.values():
        keys.sort()
        out.update((a, b) for n, a in enumerate(keys) for b in keys[n + 1 :])
    return out


def pairwise_scores(
    predicted: Mapping[int, Hashable], truth: Mapping[int, Hashable]
) -> PairwiseScores:
    """Pairwise P/R/F1 of a grouping; both map the same offer keys to group labels."""
    if set(predicted) != set(truth):
        raise ValueError("predicted and truth must label the same offers")
    guess, real = _pairs(predicted), _pairs(truth)
    hit = len(guess & real)
    precision = hit / len(guess) if guess else 1.0
    recall = hit / len(real) if real else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(precision, recall, f1, len(real), len(guess))


def recall_at(ranked: Sequence[Sequence[Hashable]], truth: Sequence[Hashable], k: int) -> float:
    """Share of queries whose true answer is among their first `k` results."""
    if len(ranked) != len(truth):
        raise ValueError("one ranking per query expected")
    if not truth:
        return 0.0
    return sum(
        answer in list(results)[:k] for results, answer in zip(ranked, truth, strict=True)
    ) / len(truth)


def demo_records(catalog) -> list[dict]:
    """The demo catalog's offers as the crawl stores them (`OfferRecord` fields), key = row.

    Specs are extracted from the title and description as the pipeline does; a GTIN with a
    broken check digit (the ``bad_gtin`` defect) is kept as printed and fails normalisation.
    """
    from cumpair.vision.specs import extract_specs

    records = []
    for key, offer in enumerate(catalog.offers):
        specs = extract_specs(f"{offer.title}\n{offer.description}").to_dict()
        specs.pop("raw", None)
        records.append(
            {
                "id": key,
                "shop": offer.shop,
                "title": offer.title,
                "brand": offer.product.brand,
                "model": offer.product.model,
                "gtin": offer.gtin_printed,
                "category": offer.product.category,
                "specs": specs,
                "product": offer.product_id,
            }
        )
    return records


def record_features(record: Mapping, *, hide_gtin: bool = False, hide_model: bool = False):
    """`OfferFeatures` of a `demo_records` row, optionally without GTIN or model evidence."""
    from cumpair.search.features import offer_features

    features = offer_features(
        record["id"],
        record["shop"],
        record["title"],
        gtin=None if hide_gtin else record["gtin"],
        brand=record["brand"],
        model=None if hide_model else record["model"],
        specs={k: v for k, v in record["specs"].items() if k not in ("gtin", "model")},
    )
    if hide_model:
        from dataclasses import replace

        features = replace(features, models=frozenset())
    return features
