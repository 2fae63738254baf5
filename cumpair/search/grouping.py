"""Group offers into products: candidate pairs, pair verdicts, then merging the group supports.

Candidates come from blocking (same GTIN, shared model code), from title neighbours (TF-IDF
over the offers' titles) and from nearest neighbours in the text and image vector spaces, so the
pairs compared grow linearly with the offers, not quadratically. Verdicts (`matching.compare`)
are merged strongest first, but a merge needs support from both groups, not from one pair
(average link): the mean probability of the cross pairs must reach the threshold (and, a
setting, a share of them must match), so A~B and B~C never pull A and C together when A and C
disagree by enough to drag the mean under. Greedy merges
can still settle an offer in the wrong group early (a colour variant joins first, and the
group then outvotes the offer's true siblings), so a few refinement passes move each offer to
the neighbouring group whose mean probability with it is highest, or out on its own when its
own group no longer reaches the threshold. Groups also stay consistent: one GTIN, no pair a
hard rule declared different, and (a setting) at most one offer per shop except in shops
listed as marketplaces.

Before any of it, the title boilerplate the offers themselves show (a shop's name and template
tail, `boilerplate`) leaves the compared text, so offers do not group by shop template.

`group_offers` is the entry point (what ``products.regroup`` and a products export call).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cumpair.progress import progress
from cumpair.search.boilerplate import TitleBoilerplate, without_boilerplate
from cumpair.search.candidates import candidate_pairs
from cumpair.search.features import OfferFeatures, with_learned_brands
from cumpair.search.matching import MatchConfig, PairEvidence, compare
from cumpair.search.signals import TokenWeights

# Merge order of verdicts that say "same": identity first, then the learned matcher.
RULE_STRENGTH = {"gtin": 0, "learned": 1}
# Verdicts that keep two offers apart in an incremental assignment (`products.assign`, which
# joins a product only when no member says otherwise: complete link over the threshold).
CONFLICT_RULES = frozenset({"gtin-conflict", "spec-conflict", "different"})
# Verdicts no amount of support overrides.
HARD_CONFLICTS = frozenset({"gtin-conflict", "spec-conflict"})


@dataclass(frozen=True)
class GroupingOptions:
    """How groups may form.

    `one_offer_per_shop`: a shop sells a product once (what a price comparison wants: two
    offers of one shop are variants), except shops in `marketplaces`, where many sellers list
    the same product. `min_support`: the share of cross pairs that must match for two groups to
    merge (strictly more than it; 0 leaves it to the mean probability alone: on the WDC train
    pairs a majority vote cost recall, shoes 0.52 -> 0.49, for no precision). `title_neighbours`:
    TF-IDF title neighbours compared per offer (10 left a quarter of the shoe pairs the matcher
    calls the same uncompared, one shop's look-alike titles filling the list; 20 costs twice
    the title pairs and gained 0.012 F1 on the WDC shoes train pairs, nothing lost on computers
    and watches). `trigram_neighbours`: title neighbours by character trigrams as well, which
    reach one product named in two languages ("White Mens Shoes" / "Wit Heren Schoenen") that
    a shop's look-alike titles keep off the word list: of the WDC shoes train pairs labelled one
    product that the matcher calls the same and grouping split, 308 of 442 had never been
    compared; 20 per offer raise the labelled same-product pairs compared from 0.69 to 0.76
    (word neighbours alone) and grouping F1 there 0.748 -> 0.768, at 1.26x the pairs (40 word
    neighbours instead: 0.765 at 2x; watches 0.787 -> 0.785: its gap is not candidates).
    `trigram_max_offers`: the most offers a full regroup searches trigram neighbours over. The exact
    search was quadratic (common trigrams make each chunk's similarities nearly dense: 505 CPU s
    and 1 GB at 10^5 real WDC titles); the probed one (`candidates._probed_neighbours`, each
    title probes its rarest trigrams, rescored exactly) keeps 0.90 of the exact top 20 at 10^4
    and 0.92 at 2*10^4 (whole cleaned WDC titles) and takes 103 CPU s and 715 MB at 10^5
    (bench/bench_trigram_neighbours.py, load 3-5), so the bound now sits at 10^5; past it a
    full regroup compares word, code and vector neighbours only. An incremental regroup has no
    bound: it asks the store's title-term index (`candidates.store_title_neighbours`), at a
    cost per touched offer bounded by its probes (not flat: 9.5 / 49.7 CPU ms at 10^4 / 3*10^5).
    `refine_passes`: passes that move offers to the group that supports them best
    (0: greedy merging only).
    """

    one_offer_per_shop: bool = True
    marketplaces: frozenset[str] = frozenset()
    min_support: float = 0.0
    title_neighbours: int = 20
    trigram_neighbours: int = 20
    trigram_max_offers: int = 100_000
    refine_passes: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.min_support < 1:
            raise ValueError(f"min_support must be in [0, 1), got {self.min_support!r}")
        if min(self.title_neighbours, self.trigram_neighbours, self.trigram_max_offers) < 0:
            raise ValueError(
                "title_neighbours, trigram_neighbours and trigram_max_offers must be >= 0"
            )
        if self.refine_passes < 0:
            raise ValueError("refine_passes must be >= 0")

    @classmethod
    def from_settings(cls, settings: Any) -> GroupingOptions:
        """From Scrapy-style settings or the environment: ``CUMPAIR_ONE_OFFER_PER_SHOP``
        (true), ``CUMPAIR_MARKETPLACE_SHOPS`` (comma-separated shop names),
        ``CUMPAIR_GROUP_MIN_SUPPORT`` (0), ``CUMPAIR_GROUP_TITLE_NEIGHBOURS`` (20),
        ``CUMPAIR_GROUP_TRIGRAM_NEIGHBOURS`` (20), ``CUMPAIR_GROUP_TRIGRAM_MAX_OFFERS`` (100000),
        ``CUMPAIR_GROUP_REFINE_PASSES`` (2)."""
        shops = settings.get("CUMPAIR_MARKETPLACE_SHOPS") or ()
        if isinstance(shops, str):
            shops = [s.strip() for s in shops.split(",")]
        one = settings.get("CUMPAIR_ONE_OFFER_PER_SHOP", True)
        if isinstance(one, str):
            one = one.strip().lower() not in ("0", "false", "no", "off")
        return cls(
            one_offer_per_shop=bool(one),
            marketplaces=frozenset(s for s in shops if s),
            min_support=float(settings.get("CUMPAIR_GROUP_MIN_SUPPORT", 0.0)),
            title_neighbours=int(settings.get("CUMPAIR_GROUP_TITLE_NEIGHBOURS", 20)),
            trigram_neighbours=int(settings.get("CUMPAIR_GROUP_TRIGRAM_NEIGHBOURS", 20)),
            trigram_max_offers=int(settings.get("CUMPAIR_GROUP_TRIGRAM_MAX_OFFERS", 100_000)),
            refine_passes=int(settings.get("CUMPAIR_GROUP_REFINE_PASSES", 2)),
        )


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


class _Verdicts:
    """Pair verdicts by row, computed on first use (cross pairs a merge must check)."""

    def __init__(self, features, vectors, config, weights: TokenWeights | None = None) -> None:
        self.features = features
        self.text, self.image = (vectors or {}).get("text"), (vectors or {}).get("image")
        self.config = config
        self.weights = (
            weights if weights is not None else TokenWeights.learn(f.tokens for f in features)
        )
        self.cache: dict[tuple[int, int], PairEvidence] = {}

    def get(self, i: int, j: int) -> PairEvidence:
        key = (min(i, j), max(i, j))
        verdict = self.cache.get(key)
        if verdict is None:
            a, b = key
            verdict = compare(
                self.features[a],
                self.features[b],
                text_sim=None if self.text is None else float(self.text[a] @ self.text[b]),
                image_sim=None if self.image is None else float(self.image[a] @ self.image[b]),
                config=self.config,
                weights=self.weights,
            )
            self.cache[key] = verdict
        return verdict


def compare_pairs(
    features: Sequence[OfferFeatures],
    pairs: Iterable[tuple[int, int]],
    vectors: Mapping[str, np.ndarray] | None = None,
    config: MatchConfig | None = None,
) -> list[PairEvidence]:
    """Verdicts for row pairs, with cosine similarities read from `vectors` ("text", "image")."""
    verdicts = _Verdicts(features, vectors, config or MatchConfig())
    return [verdicts.get(i, j) for i, j in pairs]


def consistent(
    left: Sequence[OfferFeatures],
    right: Sequence[OfferFeatures],
    conflicts: set[frozenset[int]] = frozenset(),
    options: GroupingOptions | None = None,
) -> bool:
    """True when two groups may become one product (shops, GTINs and vetoed pairs allow it).

    `options` None: `GroupingOptions` from the environment (what the crawl and ingest get)."""
    options = options or GroupingOptions.from_settings(os.environ)
    if options.one_offer_per_shop:
        shops = {o.shop for o in left} & {o.shop for o in right}
        if shops - options.marketplaces:
            return False
    gtins = {o.gtin for o in left if o.gtin} | {o.gtin for o in right if o.gtin}
    if len(gtins) > 1:
        return False
    return not any(frozenset((x.key, y.key)) in conflicts for x in left for y in right)


def _supported(
    left: Sequence[int], right: Sequence[int], verdicts: _Verdicts, options: GroupingOptions
) -> bool:
    """Average link: enough cross pairs match and their mean probability reaches the threshold."""
    cross = [verdicts.get(i, j) for i in left for j in right]
    if any(v.rule in HARD_CONFLICTS for v in cross):
        return False
    matches = sum(v.same for v in cross)
    mean = sum(v.score for v in cross) / len(cross)
    return matches > options.min_support * len(cross) and mean >= verdicts.config.cut


def _link(row: int, group: Iterable[int], verdicts: _Verdicts) -> float:
    """Mean probability of `row` with each offer of `group` (-1 when a hard rule says no)."""
    cross = [verdicts.get(row, other) for other in group]
    if not cross or any(v.rule in HARD_CONFLICTS for v in cross):
        return -1.0
    return sum(v.score for v in cross) / len(cross)


def _refine(
    features: Sequence[OfferFeatures],
    neighbours: Mapping[int, set[int]],
    label: list[int],
    verdicts: _Verdicts,
    options: GroupingOptions,
) -> None:
    """Move offers (in place, `label[row]` is its group) to the candidate group that supports
    them best: another group when it supports the offer (`_supported`) with a higher mean
    probability than the offer's own group, out on its own when its own group stops supporting it.
    Every move raises the offer's link, so passes settle; `options.refine_passes` bounds them."""
    members: dict[int, set[int]] = defaultdict(set)
    for row, group in enumerate(label):
        members[group].add(row)
    spare = len(label)  # group numbers for offers split off
    for _ in range(options.refine_passes):
        moved = 0
        for row in range(len(label)):
            own = label[row]
            rest = members[own] - {row}
            best, best_link = None, _link(row, rest, verdicts)  # -1 when `row` is alone
            for group in {label[n] for n in neighbours.get(row, ())} - {own}:
                link = _link(row, members[group], verdicts)
                if link > best_link and _supported([row], members[group], verdicts, options):
                    others = [features[x] for x in members[group]]
                    if consistent([features[row]], others, options=options):
                        best, best_link = group, link
            if best is None and (not rest or _supported([row], rest, verdicts, options)):
                continue
            if best is None:
                best, spare = spare, spare + 1
            members[own].discard(row)
            members[best].add(row)
            label[row] = best
            moved += 1
        if not moved:
            break


def _attached(label: Sequence[int], verdicts: _Verdicts) -> dict[int, PairEvidence]:
    """Offer key -> its strongest verdict with another offer of its group (pairs compared)."""
    best: dict[int, PairEvidence] = {}
    for (i, j), evidence in verdicts.cache.items():
        if label[i] != label[j] or not evidence.same:
            continue
        for row in (i, j):
            key = verdicts.features[row].key
            held = best.get(key)
            if held is None or (RULE_STRENGTH[evidence.rule], -evidence.score) < (
                RULE_STRENGTH[held.rule],
                -held.score,
            ):
                best[key] = evidence
    return best


def group_offers(
    features: Sequence[OfferFeatures],
    vectors: Mapping[str, np.ndarray] | None = None,
    *,
    config: MatchConfig | None = None,
    k: int = 10,
    options: GroupingOptions | None = None,
    pairs: Iterable[tuple[int, int]] | None = None,
    boilerplate: TitleBoilerplate | None = None,
    weights: TokenWeights | None = None,
) -> Grouping:
    """Group offers into products (rows of `vectors` align with `features`; `options` None:
    `GroupingOptions` from the environment). `pairs`: the row pairs to compare, when the caller
    found them (an incremental regroup, from the store's ANN index and identifier tables);
    None: `candidates.candidate_pairs` of all rows. `boilerplate`: the title tails to remove
    (a partial regroup's, learned from its shops' titles); None: learned from `features`.
    `weights`: the title-token IDF to compare with (a partial regroup's, learned from more of
    the store than its own offers); None: learned from `features`."""
    options = options or GroupingOptions.from_settings(os.environ)
    keys = [f.key for f in features]
    if len(set(keys)) != len(keys):
        raise ValueError("offer keys must be unique")
    features = without_boilerplate(with_learned_brands(features), boilerplate)
    verdicts = _Verdicts(features, vectors, config or MatchConfig(), weights)
    if pairs is None:
        trigrams = options.trigram_neighbours if len(features) <= options.trigram_max_offers else 0
        pairs = candidate_pairs(features, vectors, k, options.title_neighbours, trigrams)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for i, j in progress(pairs, desc="regroup", unit="pair"):  # the long part of a regroup
        verdicts.get(i, j)
        neighbours[i].add(j)
        neighbours[j].add(i)
    matches = sorted(
        ((pair, e) for pair, e in verdicts.cache.items() if e.same),
        key=lambda item: (RULE_STRENGTH[item[1].rule], -item[1].score, item[0]),
    )
    root = list(range(len(features)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(features))}

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for (i, j), _ in matches:
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        left, right = members[ri], members[rj]
        if not consistent(
            [features[x] for x in left], [features[y] for y in right], options=options
        ):
            continue
        if not _supported(left, right, verdicts, options):
            continue
        if len(left) < len(right):
            ri, rj = rj, ri
        root[rj] = ri
        members[ri] += members.pop(rj)
    label = [find(i) for i in range(len(features))]
    _refine(features, neighbours, label, verdicts, options)
    numbers: dict[int, int] = {}
    labels = {key: numbers.setdefault(label[i], len(numbers)) for i, key in enumerate(keys)}
    return Grouping(labels, _attached(label, verdicts))
