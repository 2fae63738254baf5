"""Candidate pairs for grouping: which offers are worth a pair verdict at all.

A full regroup (`candidate_pairs`): blocking (a shared GTIN or model code), TF-IDF title
neighbours (of words and of character trigrams, which reach a title in another language) and
nearest neighbours in the text and image vector spaces, so the pairs compared grow linearly
with the offers, not quadratically. An incremental regroup (`touched_pairs`):
each touched offer against the offers of the products its store look-ups reached, and the pairs
within those products, so the pairs per touched offer stay the same however large the store.
Nothing here decides a match (the incremental look-up only asks the matcher which title
neighbours could join); `grouping` compares the pairs these return.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cumpair.search.features import OfferFeatures, clean_text, features_from_record
from cumpair.search.matching import MatchConfig, compare
from cumpair.search.products import grouping_effort
from cumpair.search.store_scan import first_vectors

BLOCK_LIMIT = 50  # a code or GTIN on more offers than this is no model number ("USB3")
#: A GTIN or model code shared by more products than this is not a product identity.
MAX_BLOCK_PRODUCTS = 50
NEIGHBOURS = 10  # vector neighbours compared per new offer and space
#: Trigram neighbour search (`_probed_neighbours`): the rarest trigrams each title probes, and
#: how many best partial matches per neighbour wanted are rescored exactly.
PROBE_GRAMS = 24
PROBE_SHORTLIST = 4


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


def _title_neighbour_pairs(
    titles: Sequence[str], k: int, chunk: int = 256, characters: bool = False
) -> set[tuple[int, int]]:
    """Row pairs whose titles are among each other's `k` most similar by TF-IDF cosine, of
    words or (`characters`) of character trigrams within words.

    Word similarities stay sparse (a chunk of rows against all), so memory follows the words
    titles share, never rows x offers: `_exact_neighbours`. Trigrams are too common for that
    (a chunk's similarities are nearly dense, so the exact search is quadratic: 505 CPU s at
    10^5 titles, mostly generated from real WDC ones): they go through `_probed_neighbours`."""
    if k == 0 or len(titles) < 2 or not any(t.strip() for t in titles):
        return set()
    matrix = title_tfidf(titles, characters)
    if matrix is None:
        return set()
    if characters:
        return _probed_neighbours(matrix, k, chunk=chunk)
    return _exact_neighbours(matrix, k, chunk)


def title_tfidf(titles: Sequence[str], characters: bool) -> Any:
    """The titles' TF-IDF rows (CSR, L2-normalised), of words or of character trigrams within
    words; None when no title has a term (only stop words or nothing at all)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    grams = {"analyzer": "char_wb", "ngram_range": (3, 3)} if characters else {}
    try:
        return TfidfVectorizer(sublinear_tf=True, **grams).fit_transform(titles).tocsr()
    except ValueError:
        return None


def _exact_neighbours(
    matrix: Any, k: int, chunk: int = 256, rows: Sequence[int] | None = None
) -> set[tuple[int, int]]:
    """Row pairs (i, j) where j is among i's `k` most similar rows of `matrix` (CSR, rows
    L2-normalised), by the exact chunked sparse product; i over `rows` (None: every row)."""
    pairs: set[tuple[int, int]] = set()
    transposed = matrix.T.tocsc()
    queries = _queries(matrix, rows)
    for start in range(0, len(queries), chunk):
        sims = (matrix[queries[start : start + chunk]] @ transposed).tocsr()
        for offset in range(sims.shape[0]):
            i = int(queries[start + offset])
            columns, values = _others(sims, offset, i)
            if len(values) > k:
                top = np.argpartition(-values, k)[:k]
                columns = columns[top]
            pairs.update(_ordered(i, int(j)) for j in columns)
    return pairs


def _others(sims: Any, offset: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and similarities of row `offset` of a chunk's CSR similarities, row `i` (the
    title itself) left out."""
    row = slice(sims.indptr[offset], sims.indptr[offset + 1])
    columns, values = sims.indices[row], sims.data[row]
    others = columns != i
    return columns[others], values[others]


def _queries(matrix: Any, rows: Sequence[int] | None) -> np.ndarray:
    """The row numbers a neighbour search looks up: `rows`, or every row of `matrix`."""
    return np.arange(matrix.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)


def _probed_neighbours(
    matrix: Any,
    k: int,
    probes: int = PROBE_GRAMS,
    chunk: int = 256,
    rows: Sequence[int] | None = None,
) -> set[tuple[int, int]]:
    """Row pairs (i, j) where j is among i's `k` most similar rows of `matrix` (CSR, rows
    L2-normalised; i over `rows`, None: every row), found by prefix filtering as in
    set-similarity joins: each row probes the inverted lists of its `probes` rarest terms only
    (a rare term is what two titles of one product share and few others do), its
    `PROBE_SHORTLIST`·k best columns by that partial score are rescored exactly, and the `k`
    best kept. The work follows the lengths of the
    rare terms' lists, not the number of rows squared; but titles with few trigrams probe common
    ones too, so it still grows faster than the titles (23x the time for 10x at 10^4 -> 10^5)."""
    from scipy import sparse

    n = matrix.shape[0]
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    owner = np.repeat(np.arange(n), np.diff(matrix.indptr))  # each stored term's row
    # per row, its terms from rarest to commonest; keep the first `probes`
    order = np.lexsort((df[matrix.indices], owner))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    keep = order[rank < probes]
    probe = sparse.csr_matrix(
        (matrix.data[keep], (owner[keep], matrix.indices[keep])), shape=matrix.shape
    )
    transposed = matrix.T.tocsc()
    shortlist = PROBE_SHORTLIST * k
    pairs: set[tuple[int, int]] = set()
    queries = _queries(matrix, rows)
    for start in range(0, len(queries), chunk):
        sims = (probe[queries[start : start + chunk]] @ transposed).tocsr()
        heads, tails = [], []
        for offset in range(sims.shape[0]):
            i = int(queries[start + offset])
            columns, values = _others(sims, offset, i)
            if len(values) > shortlist:
                columns = columns[np.argpartition(-values, shortlist)[:shortlist]]
            heads.append(np.full(len(columns), i))
            tails.append(columns)
        head, tail = np.concatenate(heads), np.concatenate(tails)
        if not len(head):
            continue
        exact = np.asarray(matrix[head].multiply(matrix[tail]).sum(axis=1)).ravel()
        # the k best per row: sort by (row, -score), take each row's first k
        order = np.lexsort((-exact, head))
        head, tail = head[order], tail[order]
        first = np.searchsorted(head, head, side="left")
        best = np.arange(len(head)) - first < k
        pairs.update(_ordered(int(a), int(b)) for a, b in zip(head[best], tail[best], strict=True))
    return pairs


def candidate_pairs(
    features: Sequence[OfferFeatures],
    vectors: Mapping[str, np.ndarray] | None = None,
    k: int = 10,
    title_neighbours: int = 10,
    trigram_neighbours: int = 0,
) -> set[tuple[int, int]]:
    """Row pairs worth comparing: shared GTIN or model code, title neighbours by words
    (`title_neighbours` per offer) and by character trigrams (`trigram_neighbours`), or
    vector neighbours (`k` per space)."""
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
    titles = [f.title for f in features]
    pairs |= _title_neighbour_pairs(titles, title_neighbours)
    pairs |= _title_neighbour_pairs(titles, trigram_neighbours, characters=True)
    for matrix in (vectors or {}).values():
        pairs.update(_neighbour_pairs(matrix, k))
    return pairs


@dataclass(frozen=True)
class Reach:
    """What an incremental regroup after upserting some offers looks at (`touched_reach`).

    `products`: per touched offer still in the store, the products it is in or could join;
    `offers`: each of those products' offers; `linked`: touched offers that found each other
    directly (a shared GTIN or code, or a vector neighbour) whatever their products.
    """

    products: dict[int, set[int]]
    offers: dict[int, list[int]]
    linked: set[tuple[int, int]]

    def scope(self) -> set[int]:
        """Every offer the regroup reads: the touched ones and all offers of products reached."""
        out = set(self.products)
        for offers in self.offers.values():
            out.update(offers)
        return out


def touched_reach(
    store: Any,
    groups: Any,
    touched: Collection[int],
    options: Any = None,
    config: MatchConfig | None = None,
) -> Reach:
    """Look the touched offers up in the store (an `OfferStore`) and its grouping (a
    `ProductGroups`): the products each is in, those sharing its GTIN or a model code (at most
    `MAX_BLOCK_PRODUCTS`), those holding one of its `NEIGHBOURS` nearest offers in a vector
    space (the candidates `ProductGroups.assign` compares), and those holding one of its title
    neighbours by words and by character trigrams (`store_title_neighbours`), the candidate
    sources of a full regroup (`candidate_pairs`). The code and vector look-ups are by key or
    through the ANN index, the title look-ups through the store's title-term index, so their
    work per touched offer is bounded or grows slowly with the store, never a read of it all.
    A title neighbour counts when the matcher (`config`) calls the pair the same.
    `options`: a `grouping.GroupingOptions` (None: from the environment)."""
    if options is None:
        import os

        from cumpair.search.grouping import GroupingOptions  # grouping imports this module

        options = GroupingOptions.from_settings(os.environ)
    records = store.get_offers(sorted(set(touched)))
    own = groups.product_of(records)
    reached: dict[int, set[int]] = {oid: {own[oid]} if oid in own else set() for oid in records}
    linked: set[tuple[int, int]] = set()
    blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for oid, record in records.items():
        offer = features_from_record(record)
        over = MAX_BLOCK_PRODUCTS + 1  # enough to tell a code on too many products
        found = [("model", c, groups.products_with_model(c, over)) for c in offer.models]
        if offer.gtin:
            found.append(("gtin", offer.gtin, groups.products_with_gtin(offer.gtin, over)))
        for kind, key, products in found:
            blocks[kind, key].append(oid)
            if len(products) <= MAX_BLOCK_PRODUCTS:  # a code on many products is no model number
                reached[oid].update(products)
    for rows in blocks.values():
        if len(rows) <= BLOCK_LIMIT:
            linked.update(_ordered(a, b) for n, a in enumerate(rows) for b in rows[n + 1 :])
    for space, by_offer in first_vectors(store, records).items():
        ids = sorted(by_offer)
        if not ids:
            continue
        queries = np.stack([by_offer[i] for i in ids])
        hits = store.search(space, queries, k=NEIGHBOURS + 1, effort=grouping_effort())
        product_of = groups.product_of({hit.offer_id for row in hits for hit in row})
        for oid, row in zip(ids, hits, strict=True):
            for hit in row:
                if hit.offer_id in product_of:
                    reached[oid].add(product_of[hit.offer_id])
                if hit.offer_id in reached and hit.offer_id != oid:
                    linked.add(_ordered(oid, hit.offer_id))
    titled = store_title_neighbours(store, groups, records, options)
    neighbours = {o for found in titled.values() for o in found}
    product_of = groups.product_of(neighbours)
    # features once per offer: a neighbour is often on several touched offers' title lists
    others = {
        oid: features_from_record(record)
        for oid, record in store.get_offers(sorted(neighbours)).items()
    }
    for oid, found in titled.items():
        offer = features_from_record(records[oid])
        for other in sorted(found & others.keys()):
            # A title list is long (words and trigrams, 40 an offer) and mostly other products,
            # and a product reached is regrouped whole: only a neighbour the matcher calls the
            # same (as `ProductGroups.assign` asks it) brings its product in.
            if not compare(offer, others[other], config=config).same:
                continue
            if other in product_of:
                reached[oid].add(product_of[other])
            if other in reached:
                linked.add(_ordered(oid, other))
    products = set().union(*reached.values()) if reached else set()
    return Reach(reached, {p: groups.offers_of(p) for p in sorted(products)}, linked)


def store_title_neighbours(
    store: Any, groups: Any, records: Mapping[int, Any], options: Any
) -> dict[int, set[int]]:
    """Offer id of each of `records` (touched offers, store `OfferRecord`s) -> the ids of its
    `options.title_neighbours` nearest titles by words and `options.trigram_neighbours` by
    character trigrams among every offer of `store`, as a full regroup finds them (the same
    TF-IDF over the same cleaned titles, fitted on the whole store), through the store's
    title-term index (`OfferStore.title_neighbours`): each title probes its rarest terms, so
    the work per touched offer is bounded by the probes at any size (9.5 / 37.2 / 49.7 CPU ms
    at 10^4 / 10^5 / 3*10^5 offers, bench_trigram_neighbours.py --regroup). A store without the
    index (another implementation, or a migrated one a reader opened before any writer filled
    it) has every title read instead, up to `options.trigram_max_offers` grouped offers (past
    it there are none: the regroup compares code and vector neighbours only)."""
    words, grams = options.title_neighbours, options.trigram_neighbours
    if not records or not (words or grams):
        return {}
    probe = getattr(store, "title_neighbours", None)
    indexed = probe(records, words, grams) if probe is not None else None
    if indexed is not None:
        return {oid: found - {oid} for oid, found in indexed.items() if oid in records and found}
    if groups.count()[1] > options.trigram_max_offers:
        return {}
    ids: list[int] = []
    titles: list[str] = []
    for batch in store.iter_offers():
        for record in batch:
            ids.append(record.id)
            titles.append(clean_text(record.title))
    row = {oid: n for n, oid in enumerate(ids)}
    queries = [row[oid] for oid in records if oid in row]
    found: dict[int, set[int]] = defaultdict(set)
    for k, characters in ((words, False), (grams, True)):
        matrix = title_tfidf(titles, characters) if k and len(titles) > 1 else None
        if matrix is None:
            continue
        search = _probed_neighbours if characters else _exact_neighbours
        for a, b in search(matrix, k, rows=queries):
            found[ids[a]].add(ids[b])
            found[ids[b]].add(ids[a])
    return {oid: found[oid] - {oid} for oid in records if found.get(oid)}


def touched_pairs(reach: Reach) -> set[tuple[int, int]]:
    """Offer-id pairs (low, high) an incremental regroup compares.

    A touched offer is compared with every offer of the products it reached (so it can join
    one, or bridge two: a merge then checks the cross pairs itself) and with the touched offers
    it found directly; each product's offers with each other (so it forms again, or splits).
    Offers of products that no touched offer reached are never paired: nothing about them
    changed. The pairs grow with the touched offers, not with the store.
    """
    pairs = set(reach.linked)
    for offer, found in reach.products.items():
        for product in found:
            pairs.update(_ordered(offer, o) for o in reach.offers[product] if o != offer)
    for offers in reach.offers.values():
        members = sorted(offers)
        pairs.update((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
    return pairs


def _ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)
