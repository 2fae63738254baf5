"""Group offers into products: candidate pairs, pair verdicts, then constrained merging.

Candidates come from blocking (same GTIN, shared model code) and from nearest neighbours in the
text and image vector spaces, so the pairs compared grow linearly with the offers, not
quadratically. Verdicts (`matching.compare`) are merged strongest first (GTIN, then model, then
by score) into groups that must stay consistent: at most one offer per shop, one GTIN, and no
pair inside a group that a rule declared different.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cumpair.search.features import OfferFeatures
from cumpair.search.matching import MatchConfig, PairEvidence, compare

RULE_STRENGTH = {"gtin": 0, "model": 1, "similarity": 2}
CONFLICT_RULES = frozenset({"gtin-conflict", "model-conflict", "spec-conflict"})


@dataclass
class Grouping:
    """Offer key -> group number, and the verdict that attached each offer to its group."""

    labels: dict[int, int]
    evidence: dict[int, PairEvidence] = field(default_factory=dict)

    def groups(self) -> list[list[int]]:
        members: dict[int, list[int]] = defaultdict(list)
        for key, label in self.labels.items():
            members[label].append(key)
        return sorted((sorted(m) for m in members.values()), key=lambda m: m[0])


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


def candidate_pairs(
    features: Sequence[OfferFeatures],
    vectors: Mapping[str, np.ndarray] | None = None,
    k: int = 10,
) -> set[tuple[int, int]]:
    """Row pairs worth comparing: shared GTIN, shared model code, or vector neighbours."""
    pairs: set[tuple[int, int]] = set()
    blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, offer in enumerate(features):
        if offer.gtin:
            blocks["gtin", offer.gtin].append(i)
        for code in offer.models:
            blocks["model", code].append(i)
    for rows in blocks.values():
        if len(rows) > 50:  # a code shared by 50 offers is not a model number ("USB3")
            continue
        pairs.update((a, b) for n, a in enumerate(rows) for b in rows[n + 1 :])
    for matrix in (vectors or {}).values():
        pairs.update(_neighbour_pairs(matrix, k))
    return pairs


def compare_pairs(
    features: Sequence[OfferFeatures],
    pairs: Iterable[tuple[int, int]],
    vectors: Mapping[str, np.ndarray] | None = None,
    config: MatchConfig | None = None,
) -> list[PairEvidence]:
    """Verdicts for row pairs, with cosine similarities read from `vectors` ("text", "image")."""
    vectors = vectors or {}
    text, image = vectors.get("text"), vectors.get("image")
    out = []
    for i, j in pairs:
        out.append(
            compare(
                features[i],
                features[j],
                text_sim=None if text is None else float(text[i] @ text[j]),
                image_sim=None if image is None else float(image[i] @ image[j]),
                config=config,
            )
        )
    return out


class _Groups:
    """Union-find whose unions refuse to break a group's consistency constraints."""

    def __init__(self, features: Sequence[OfferFeatures], conflicts: set[frozenset[int]]):
        self.parent = {f.key: f.key for f in features}
        self.members = {f.key: [f] for f in features}
        self.conflicts = conflicts

    def find(self, key: int) -> int:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not consistent(self.members[ra], self.members[rb], self.conflicts):
            return False
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] += self.members.pop(rb)
        return True


def consistent(
    left: Sequence[OfferFeatures],
    right: Sequence[OfferFeatures],
    conflicts: set[frozenset[int]] = frozenset(),
) -> bool:
    """True when two groups may become one product."""
    if {o.shop for o in left} & {o.shop for o in right}:
        return False
    gtins = {o.gtin for o in left if o.gtin} | {o.gtin for o in right if o.gtin}
    if len(gtins) > 1:
        return False
    return not any(frozenset((x.key, y.key)) in conflicts for x in left for y in right)


def group_offers(
    features: Sequence[OfferFeatures],
    vectors: Mapping[str, np.ndarray] | None = None,
    *,
    config: MatchConfig | None = None,
    k: int = 10,
) -> Grouping:
    """Group offers into products (rows of `vectors` align with `features`)."""
    keys = [f.key for f in features]
    if len(set(keys)) != len(keys):
        raise ValueError("offer keys must be unique")
    evidence = compare_pairs(features, candidate_pairs(features, vectors, k), vectors, config)
    conflicts = {frozenset((e.a, e.b)) for e in evidence if e.rule in CONFLICT_RULES}
    matches = sorted(
        (e for e in evidence if e.same), key=lambda e: (RULE_STRENGTH[e.rule], -e.score, e.a, e.b)
    )
    groups = _Groups(features, conflicts)
    attached: dict[int, PairEvidence] = {}
    for item in matches:
        if groups.find(item.a) != groups.find(item.b) and groups.union(item.a, item.b):
            attached.setdefault(item.b, item)
            attached.setdefault(item.a, item)
    roots = {}
    labels = {key: roots.setdefault(groups.find(key), len(roots)) for key in keys}
    return Grouping(labels, attached)
