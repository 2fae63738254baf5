"""Signals of the learned matcher: colours across languages, TF-IDF from the store, prices,
codes explained by a description."""

from __future__ import annotations

import pytest

from cumpair.search.features import colour_names, offer_features
from cumpair.search.signals import SIGNALS, TokenWeights, pair_signals


def test_colours_are_compared_across_languages():
    assert colour_names("Nike Free Run - Negro/Blanco/Gris") == {"black", "white", "grey"}
    assert colour_names("Nike Free Run - Nero/Bianco/Grigio Scuro") == {"black", "white", "grey"}
    a = offer_features(1, "a", "Concave Halo+ FG - Niebieski/Biały")
    b = offer_features(2, "b", "Concave Halo+ FG - Blue/White")
    c = offer_features(3, "c", "Concave Halo+ FG - Schwarz/Gold")
    assert pair_signals(a, b)["colour_jaccard"] == 1.0
    assert pair_signals(a, c)["colour_jaccard"] == 0.0 and pair_signals(a, c)["colour_known"]


def test_tfidf_weighs_a_shared_rare_word_above_a_shared_common_one():
    titles = [f"Daniel Wellington Classic {name} watch" for name in ("York", "Durham", "Bristol")]
    titles += ["Daniel Wellington Classic Sheffield watch", "Casio watch", "Seiko watch"]
    offers = [offer_features(i, "s", t) for i, t in enumerate(titles)]
    weights = TokenWeights.learn(o.tokens for o in offers)
    rare = offer_features(9, "t", "Durham watch")
    assert weights.cosine(rare.tokens, offers[1].tokens) > weights.cosine(
        offer_features(8, "t", "Classic Wellington").tokens, offers[1].tokens
    )
    alone = pair_signals(offers[0], offers[1])
    assert alone["tfidf_known"] == 0.0 and alone["tfidf_cosine"] == 0.0
    assert pair_signals(offers[0], offers[1], weights=weights)["tfidf_known"] == 1.0


def test_the_most_specific_words_shared_and_unshared_are_signals():
    # real titles, ../shared/data/real/matching/wdc/shoes/valid.txt (WDC gold standard): two
    # Concave Volt boots (one product) and a Quantum of the same line, beside other Concave boots
    titles = [
        "Concave Volt 1.0 SG - Black/White Concave Mens Boots Soft Ground Black/White",
        "Concave Volt 1.0 SG - Zwart/Wit Concave Heren Voetbalschoenen Zachte Grond Zwart/Wit",
        "Concave Quantum 1.0 SG - Nero/Bianco Concave Scarpe Uomo Terreni Morbidi Nero/Bianco",
        "Concave Halo+ FG - Blue/White",
        "Concave Halo+ FG - Schwarz/Gold",
        "Concave Halo+ SG - Schwarz/Gold",
    ]
    offers = [offer_features(i, "s", t) for i, t in enumerate(titles)]
    weights = TokenWeights.learn(o.tokens for o in offers)
    same = pair_signals(offers[0], offers[1], weights=weights)
    variant = pair_signals(offers[0], offers[2], weights=weights)
    assert same["tfidf_shared_rarest"] > variant["tfidf_shared_rarest"]  # "volt" vs "1.0"
    once = weights.idf["quantum"] / weights.unseen  # a word of one title only
    assert variant["tfidf_unshared_rarest"] == pytest.approx(once)
    alone = pair_signals(offers[0], offers[2])  # no corpus, no IDF
    assert alone["tfidf_unshared_rarest"] == alone["tfidf_shared_rarest"] == 0.0


def test_prices_are_compared_only_in_one_currency():
    a = offer_features(1, "a", "Drill", price="100", currency="EUR")
    b = offer_features(2, "b", "Drill", price="200", currency="EUR")
    c = offer_features(3, "c", "Drill", price="200", currency="USD")
    assert pair_signals(a, b)["price_known"] == 1.0
    assert pair_signals(a, b)["price_log_ratio"] == pytest.approx(0.6931 / 3, abs=1e-3)
    assert pair_signals(a, c)["price_known"] == 0.0


def test_a_code_written_in_the_other_offers_description_is_explained():
    a = offer_features(1, "a", "Sony Alpha a6000 body ILCE-6000")
    b = offer_features(2, "b", "Sony Alpha 6000 mirrorless camera",
                       description="Model ILCE-6000, 24 MP APS-C sensor")  # fmt: skip
    assert pair_signals(a, b)["code_contained"] == 1.0
    assert set(pair_signals(a, b)) == set(SIGNALS)
