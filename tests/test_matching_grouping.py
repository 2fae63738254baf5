"""Grouping needs support from the group (no chaining), on real titles; the shop rule setting.

Titles from ../shared/data/real/matching/wdc/{computers,watches}/valid.txt (WDC Product Data
Corpus gold standard, Primpeli, Peeters, Bizer, WWW 2019), export debris removed: the pairs
(A, C) are labelled different products there, and B is a real offer the matcher links to both.
"""

from __future__ import annotations

import pytest

from cumpair.search.features import offer_features
from cumpair.search.grouping import GroupingOptions, group_offers
from cumpair.search.matching import MatchConfig, compare

CHAINS = [
    (
        "PNY 64GB SDXC UHS-I Flash Memory Card, Class 10 Card 10 (P-SDX64U395-GE)",
        "Kingston SDHC Class 10 UHS-I Ultimate Flash Card 64GB 64GB - wupti.com",
        "Kingston Ultimate SDXC 64GB Clase 10 UHS-1 UHS-1 |PcComponentes",
    ),
    (
        "Ladies Freja Watch Skagen Uhren und Schmuck | Official SKAGEN Stockist",
        "Skagen SKW2075 Watch",
        "Nicoline Zegarek damski 00 € Skagen Nicoline damski SKW2075 nur 139",
    ),
]


@pytest.mark.parametrize(("a", "b", "c"), CHAINS)
def test_one_matching_pair_does_not_chain_two_different_products(a, b, c):
    offers = [offer_features(i, f"shop{i}", t) for i, t in enumerate((a, b, c))]
    ab, bc, ac = (compare(offers[x], offers[y]).score for x, y in ((0, 1), (1, 2), (0, 2)))
    assert ac < min(ab, bc)  # the real titles form a chain at some threshold
    config = MatchConfig(threshold=(ac + min(ab, bc)) / 2)
    assert compare(offers[0], offers[1], config=config).same  # single link would chain A-B-C
    assert compare(offers[1], offers[2], config=config).same
    labels = group_offers(offers, config=config).labels
    assert labels[0] != labels[2]
    assert labels[1] in (labels[0], labels[2])


def test_one_offer_per_shop_is_a_setting_and_marketplaces_are_exempt():
    a = offer_features(1, "northwind", "Acme Drill AA-100")
    b = offer_features(2, "northwind", "Acme Drill AA-100 (refurbished)")
    labels = group_offers([a, b]).labels
    assert labels[1] != labels[2]
    off = GroupingOptions(one_offer_per_shop=False)
    assert len(set(group_offers([a, b], options=off).labels.values())) == 1
    market = GroupingOptions(marketplaces=frozenset({"northwind"}))
    assert len(set(group_offers([a, b], options=market).labels.values())) == 1


def test_grouping_options_are_read_from_settings():
    options = GroupingOptions.from_settings(
        {"CUMPAIR_ONE_OFFER_PER_SHOP": "false", "CUMPAIR_MARKETPLACE_SHOPS": "amazon, ebay"}
    )
    assert not options.one_offer_per_shop
    assert options.marketplaces == {"amazon", "ebay"}
    assert GroupingOptions.from_settings({}).one_offer_per_shop
    with pytest.raises(ValueError):
        GroupingOptions(min_support=1.0)


def test_offers_without_codes_are_compared_through_title_neighbours():
    a = offer_features(1, "s1", "Daniel Wellington Classic Man Cambridge silver")
    b = offer_features(2, "s2", "Daniel Wellington Classic Man Cambridge silver | Horloge")
    c = offer_features(3, "s3", "Nike Tiempo Legacy FG Antracide Nero Volt")
    labels = group_offers([a, b, c]).labels
    assert labels[1] == labels[2] != labels[3]


def test_the_environment_turns_the_one_offer_per_shop_rule_off(monkeypatch):
    a = offer_features(1, "marketplace", "Acme Drill AA-100")
    b = offer_features(2, "marketplace", "Acme Drill AA-100 (seller 2)")
    assert len(set(group_offers([a, b]).labels.values())) == 2
    monkeypatch.setenv("CUMPAIR_MARKETPLACE_SHOPS", "marketplace")
    assert len(set(group_offers([a, b]).labels.values())) == 1
