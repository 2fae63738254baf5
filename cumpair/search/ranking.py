"""Turn offer-level vector hits into a ranking of products, and re-rank by facts read from a photo.

The index scores offers; users want products. A product scores as its best offer, so a product
sold by four shops is not ranked above a better match sold by one. Facts OCR'd from a query
photo (GTIN, model code, brand) then lift the products that carry them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Re-ranking bonuses, added to a cosine score in [-1, 1]: an exact GTIN beats any image score,
# a model code nearly so, a brand only breaks near-ties.
GTIN_BONUS = 2.0
MODEL_BONUS = 1.0
BRAND_BONUS = 0.05


@dataclass
class ProductHit:
    """A product in a result list: its score, the offer that scored it, why it moved."""

    product_id: int
    score: float
    best_offer: int
    reasons: list[str] = field(default_factory=list)


def rank_products(
    hits: Iterable[tuple[int, float]], product_of: Mapping[int, int | None]
) -> list[ProductHit]:
    """Products of offer `hits` (offer id, score), best first; an ungrouped offer is its own.

    Ungrouped offers get the negative of their offer id as product id, so callers can tell them
    apart and still show them.
    """
    best: dict[int, ProductHit] = {}
    for offer_id, score in hits:
        product = product_of.get(offer_id)
        product = -offer_id if product is None else product
        current = best.get(product)
        if current is None or score > current.score:
            best[product] = ProductHit(product, float(score), offer_id)
    return sorted(best.values(), key=lambda h: (-h.score, h.product_id))


@dataclass(frozen=True)
class QueryFacts:
    """Identity facts read from the query photo (canonical forms, see `features`)."""

    gtin: str | None = None
    models: frozenset[str] = frozenset()
    brand: str | None = None

    def __bool__(self) -> bool:
        return bool(self.gtin or self.models or self.brand)


def rerank(
    ranked: list[ProductHit],
    facts: QueryFacts,
    product_facts: Mapping[int, tuple[set[str], set[str], set[str]]],
) -> list[ProductHit]:
    """Lift products whose (GTINs, model codes, brands) match `facts`, then re-sort."""
    if not facts:
        return ranked
    for hit in ranked:
        gtins, models, brands = product_facts.get(hit.product_id, (set(), set(), set()))
        if facts.gtin and facts.gtin in gtins:
            hit.score += GTIN_BONUS
            hit.reasons.append(f"GTIN {facts.gtin} read from the query")
        shared = sorted(facts.models & models)
        if shared:
            hit.score += MODEL_BONUS
            hit.reasons.append(f"model {shared[0]} read from the query")
        if facts.brand and facts.brand in brands:
            hit.score += BRAND_BONUS
            hit.reasons.append(f"brand {facts.brand} read from the query")
    return sorted(ranked, key=lambda h: (-h.score, h.product_id))
