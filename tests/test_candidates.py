"""Candidate pairs: which offers grouping compares at all (`cumpair.search.candidates`), and a
caller's own pairs (`group_offers(pairs=...)`, what the incremental regroup passes)."""

from __future__ import annotations

from cumpair.index import OfferRecord, ProductStore, StoreOptions
from cumpair.search import candidates
from cumpair.search.candidates import Reach, candidate_pairs, touched_pairs, touched_reach
from cumpair.search.features import offer_features
from cumpair.search.grouping import GroupingOptions, group_offers
from cumpair.search.products import ProductGroups
from tests.real_data import wdc_titles

GTIN = "4006381333931"


def _offers():
    titles = ("Acme Kettle KT-200 1.7 L", "ACME KT-200 kettle, 1.7l", "Acme KT-200 Kettle")
    return [offer_features(i, f"shop{i}", t, gtin=GTIN) for i, t in enumerate(titles)]


def test_a_shared_gtin_makes_every_pair_a_candidate():
    assert candidate_pairs(_offers(), title_neighbours=0) == {(0, 1), (0, 2), (1, 2)}


# Real shoe offers (../shared/data/real/matching/wdc/shoes/train.txt, WDC Product Data Corpus
# gold standard): 0 and 1 are labelled one product, named in English and in Dutch; 2-5 are the
# titles sharing most words with 0, of other colours and shops.
LANGUAGES = [
    "ASICS Tiger GEL-Kayano Trainer Evo - White Mens Shoes ASICS White HN6A0-0101",
    "ASICS Tiger GEL-Kayano Trainer Evo - Wit ASICS Heren Schoenen Wit",
    "ASICS Tiger GEL-Kayano Trainer Evo - Black Mens Shoes ASICS Black HN6A0-9090",
    "ASICS Tiger GEL-Kayano Trainer Evo - Nero ASICS Nero",
    "Damskie buty ASICS Tiger GEL-Kayano Trainer Evo - Biały Damskie Buty męskie Biały HN6A0-0101",
    "ASICS Tiger GEL-Kayano Trainer Evo - Noir Chaussures homme ASICS Noir",
]


def test_character_trigram_neighbours_reach_a_pair_that_word_neighbours_miss():
    offers = [offer_features(i, f"shop{i}", t) for i, t in enumerate(LANGUAGES)]
    assert (0, 1) not in candidate_pairs(offers, title_neighbours=2)
    assert (0, 1) in candidate_pairs(offers, title_neighbours=2, trigram_neighbours=2)
    assert (0, 1) in candidate_pairs(offers, title_neighbours=0, trigram_neighbours=2)


def test_group_offers_compares_only_the_pairs_it_is_given():
    offers = _offers()
    options = GroupingOptions()
    assert len(set(group_offers(offers, options=options).labels.values())) == 1
    labels = group_offers(offers, options=options, pairs=[(0, 1)]).labels
    assert labels[0] == labels[1] != labels[2]  # no pair reached offer 2


def test_touched_pairs_pair_touched_offers_with_what_they_reached_and_products_within():
    reach = Reach(
        products={1: {10, 20}, 2: {20}},
        offers={10: [1, 3], 20: [4, 5]},
        linked={(1, 2)},
    )
    assert reach.scope() == {1, 2, 3, 4, 5}
    assert touched_pairs(reach) == {
        (1, 2),  # found each other directly
        (1, 3), (1, 4), (1, 5), (2, 4), (2, 5),  # each touched offer x offers it reached
        (4, 5),  # within product 20 (1-3 within product 10 is already there)
    }  # fmt: skip
    # 3 and 4 (products 10 and 20) are never paired: no touched offer links them


def test_a_code_on_more_products_than_the_cap_reaches_none_and_is_read_no_further(
    tmp_path, monkeypatch
):
    gtins = ("4006381333931", "5901234123457", "0012345678905", "9780306406157")
    with (
        ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store,
        ProductGroups.open(tmp_path) as groups,
    ):
        ids = []
        for n, gtin in enumerate(gtins):  # one model code, four GTINs: four products
            record = OfferRecord(
                shop=f"shop{n}", url=f"http://s{n}/kettle", title=f"Acme Kettle KT-200 v{n}",
                price=10 + n, currency="EUR", model="KT-200", gtin=gtin,
            )  # fmt: skip
            ids.append(store.upsert(record, {}).offer_id)
            groups.assign(store, ids[-1])
        products = groups.products_with_model("KT200")
        assert len(products) == 4
        assert len(groups.products_with_model("KT200", limit=2)) == 2  # the read stops there
        codes_only = GroupingOptions(title_neighbours=0, trigram_neighbours=0)
        assert len(touched_reach(store, groups, [ids[0]], codes_only).products[ids[0]]) == 4
        monkeypatch.setattr(candidates, "MAX_BLOCK_PRODUCTS", 2)
        # four products share the code: it is no product identity, only the GTIN's own counts
        assert touched_reach(store, groups, [ids[0]], codes_only).products[ids[0]] == {
            groups.product_of([ids[0]])[ids[0]]
        }


def _store_of(tmp_path, titles):
    """A store without vector spaces (no vector neighbours) holding `titles`, each offer of its
    own shop and assigned as it came; returns the open store, its grouping and the offer ids."""
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    ids = []
    for n, title in enumerate(titles):
        record = OfferRecord(shop=f"shop{n}", url=f"http://s{n}/p", title=title, price=50 + n)
        ids.append(store.upsert(record, {}).offer_id)
        groups.assign(store, ids[-1])
    return store, groups, ids


def test_an_incremental_regroup_reaches_a_product_only_a_trigram_neighbour_names(tmp_path):
    # LANGUAGES[1] (Dutch) shares no code with LANGUAGES[0] (English, one product) and is not
    # among its word neighbours: only its character trigrams find it, as in a full regroup
    store, groups, ids = _store_of(tmp_path, LANGUAGES)
    with store, groups:
        dutch, english = ids[1], ids[0]
        product = groups.product_of([english])[english]
        words = GroupingOptions(title_neighbours=2, trigram_neighbours=0)
        assert product not in touched_reach(store, groups, [dutch], words).products[dutch]
        both = GroupingOptions(title_neighbours=2, trigram_neighbours=2)
        reach = touched_reach(store, groups, [dutch], both)
        assert product in reach.products[dutch]
        assert (english, dutch) in touched_pairs(reach)
        # past the full regroup's bound the store's title-term index still finds it (the
        # regroup once read every title, and past the bound none: code and vectors only)
        bounded = GroupingOptions(title_neighbours=2, trigram_neighbours=2, trigram_max_offers=3)
        assert product in touched_reach(store, groups, [dutch], bounded).products[dutch]


def test_an_incremental_regroup_leaves_out_title_neighbours_the_matcher_calls_different(tmp_path):
    # LANGUAGES[2] (the black shoe, HN6A0-9090) is a title neighbour of LANGUAGES[0] (the white
    # one, HN6A0-0101) by words and trigrams, and another product: it must not be reached
    store, groups, ids = _store_of(tmp_path, LANGUAGES)
    with store, groups:
        white, black = ids[0], ids[2]
        options = GroupingOptions(title_neighbours=2, trigram_neighbours=2)
        records = store.get_offers([white])
        assert black in candidates.store_title_neighbours(store, groups, records, options)[white]
        other = groups.product_of([black])[black]
        assert other != groups.product_of([white])[white]
        assert other not in touched_reach(store, groups, [white], options).products[white]


def test_an_incremental_regroup_reaches_the_products_of_word_neighbours(tmp_path):
    titles = ["Acme Kettle steel 1.7 litre", "Acme steel kettle", "Zeta Toaster black"]
    store, groups, ids = _store_of(tmp_path, titles)
    with store, groups:
        words = GroupingOptions(title_neighbours=1, trigram_neighbours=0)
        reach = touched_reach(store, groups, [ids[1]], words)
        assert groups.product_of([ids[0]])[ids[0]] in reach.products[ids[1]]
        assert groups.product_of([ids[2]])[ids[2]] not in reach.products[ids[1]]


def _wdc_titles(limit: int) -> list[str]:
    """Distinct real offer titles of the shared WDC pairs as grouping compares them (cleaned by
    `features.clean_text`); skips without the data."""
    from cumpair.search.features import clean_text

    return wdc_titles(limit, clean_text)


def _trigram_matrix(titles: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(3, 3))
    return vectorizer.fit_transform(titles).tocsr()


def _exact_top(matrix, k: int) -> set[tuple[int, int]]:
    import numpy as np

    sims = (matrix @ matrix.T).toarray()
    np.fill_diagonal(sims, -1.0)
    pairs = set()
    for i, row in enumerate(sims):
        for j in np.argpartition(-row, k)[:k]:
            if row[j] > 0:
                pairs.add((min(i, int(j)), max(i, int(j))))
    return pairs


def test_probed_trigram_neighbours_keep_most_of_the_exact_top_k_on_real_titles():
    matrix = _trigram_matrix(_wdc_titles(2000))
    exact = _exact_top(matrix, 20)
    probed = candidates._probed_neighbours(matrix, 20)
    # 0.837 on these 2000 train titles, whole and cleaned as grouping compares them (0.896 on
    # the shorter fragments a regex once read off the files, some glued across tabs)
    assert len(probed & exact) / len(exact) >= 0.8
    # one probe per title finds far less (0.17): the rarest trigram alone is often a typo
    assert len(candidates._probed_neighbours(matrix, 20, probes=1) & exact) < 0.5 * len(exact)


def test_probing_every_trigram_with_a_long_shortlist_is_the_exact_search():
    titles = _wdc_titles(300)
    matrix = _trigram_matrix(titles)
    everything = candidates._probed_neighbours(matrix, 5, probes=10_000)
    exact = _exact_top(matrix, 5)
    assert len(everything & exact) / len(exact) >= 0.99
