"""Title boilerplate is learned from the offers themselves (shop names and template tails), on
real titles; what only looks like a template (a category word, one product's title) stays.

Titles from ../shared/data/real/matching/wdc/watches/valid.txt (WDC Product Data Corpus gold
standard, Primpeli, Peeters, Bizer, WWW 2019), export debris removed.
"""

from __future__ import annotations

import pytest

from cumpair.search.boilerplate import TitleBoilerplate, without_boilerplate
from cumpair.search.features import offer_features

DEJAUN = [
    "Dior Chiffre Rouge Watch CD084850M001 CD084850M001 | Dejaun Jewelers",
    "Dior Montaigne Watch CD151111M001 CD1535I0M001 | Dejaun Jewelers",
    "Chopard Grand Prix De Monaco Watch 168570-9001 168992-9001 | Dejaun Jewelers",
    "Chopard Happy Sport Mini Watch 278509-6003 278509-6003 | Dejaun Jewelers",
    "Bvlgari Solotempo Watch BGOP38WGLD BGO38BSLD | Dejaun Jewelers",
    "Bvlgari Tubogas Watch SP35BDSDS.1T SP35C6SPG.2T | Dejaun Jewelers",
]
WATCH_SHOP = [
    "Daniel Wellington Men's Sheffield 40mm Watch Men's Watch (DW00100007) - WATCH SHOP.com\u2122",
    "Junghans Men's Meister Kalendar Automatic Watch Men's Watch (027/4200.00)"
    " - WATCH SHOP.com\u2122",
    "Nixon Men's The C45 SS Watch Men's Watch (A951-2304) - WATCH SHOP.com\u2122",
    "Seiko Men's Kinetic Watch Men's Watch (SKA531P1) - WATCH SHOP.com\u2122",
    "Calvin Klein Ladies' Classic Watch Ladies' Watch (K4D2314Z) - WATCH SHOP.com\u2122",
]
# "Watch" ends these, but sits inside the 11 titles above: a category word, not a shop's tail.
ENDING_IN_WATCH = [
    "Raymond Weil Gents Maestro Automatic Black Dial Watch",
    "Casio EF-125D-1AVEF Watch",
    "Skagen 358SRRD Watch",
    "Tissot Gents PRC200 Chronograph Black Dial Watch",
    "Seiko SUN021P1 Prospex Sea Watch",
]


def test_shop_tails_that_end_many_different_titles_are_learned_and_stripped():
    learned = TitleBoilerplate.learn(DEJAUN + WATCH_SHOP + ENDING_IN_WATCH)
    assert learned.remove(DEJAUN[0]) == "Dior Chiffre Rouge Watch CD084850M001 CD084850M001"
    # the model code before the tail stays whole, brackets and all
    assert learned.remove(WATCH_SHOP[0]) == (
        "Daniel Wellington Men's Sheffield 40mm Watch Men's Watch (DW00100007)"
    )
    # the word before each tail differs, so no part of a product name joins the tail
    assert [learned.remove(t) for t in DEJAUN] == [t.split(" | ")[0] for t in DEJAUN]


def test_a_category_word_that_mostly_sits_inside_titles_is_not_boilerplate():
    learned = TitleBoilerplate.learn(DEJAUN + WATCH_SHOP + ENDING_IN_WATCH)
    assert all(learned.remove(t) == t for t in ENDING_IN_WATCH)
    assert ("watch",) not in learned.endings


def test_one_products_title_repeated_by_several_shops_is_no_template():
    # the same ending after the same word each time: a product's name, not a shop's tail
    titles = [f"{shop} Daniel Wellington Classic Lady Sheffield rose gold" for shop in "ABCDEF"]
    assert TitleBoilerplate.learn(titles).endings == frozenset()


def test_codes_sizes_and_prices_are_never_part_of_a_tail():
    titles = [f"{t.split(' | ')[0]} 2017" for t in DEJAUN]  # a year after each code
    learned = TitleBoilerplate.learn(titles)
    assert learned.endings == frozenset()
    assert learned.remove(titles[1]) == titles[1]


def test_a_shops_own_titles_are_learned_apart_from_the_rest_of_the_store():
    # other shops write the same words inside their titles, so across the whole store the
    # words do not sit at the end; within the shop they end every title
    others = [f"Dejaun Jewelers exclusive {t.split(' | ')[0]} boxed" for t in DEJAUN]
    titles = DEJAUN + others
    shops = ["dejaun"] * len(DEJAUN) + [f"shop{n}" for n in range(len(others))]
    assert TitleBoilerplate.learn(titles).remove(DEJAUN[0]) == DEJAUN[0]
    learned = TitleBoilerplate.learn(titles, shops)
    assert learned.remove(DEJAUN[0]) == "Dior Chiffre Rouge Watch CD084850M001 CD084850M001"
    with pytest.raises(ValueError):
        TitleBoilerplate.learn(titles, shops[:-1])


def test_a_tail_never_takes_the_whole_title():
    learned = TitleBoilerplate.learn(DEJAUN)
    assert learned.remove("Dior Watch | Dejaun Jewelers") == "Dior Watch"
    assert learned.remove("Watch | Dejaun Jewelers") == "Watch | Dejaun Jewelers"


def test_features_lose_the_tail_from_compared_text_but_keep_codes_and_brand():
    offers = [offer_features(n, f"s{n}", t) for n, t in enumerate(DEJAUN)]
    stripped = without_boilerplate(offers)
    for before, after in zip(offers, stripped, strict=True):
        assert "dejaun" in before.tokens and "dejaun" not in after.tokens
        assert after.models == before.models
        assert after.brand == before.brand and after.key == before.key
    assert stripped[0].title == "Dior Chiffre Rouge Watch CD084850M001 CD084850M001"
    plain = [offer_features(1, "s1", "Acme Drill AA-100"), offer_features(2, "s2", "Acme Saw")]
    assert without_boilerplate(plain) == plain


def test_boilerplate_learned_elsewhere_is_used_as_given():
    # two offers teach nothing; what their shops' other titles taught still applies
    pair = [offer_features(n, f"s{n}", t) for n, t in enumerate(DEJAUN[:2])]
    assert without_boilerplate(pair) == pair
    stripped = without_boilerplate(pair, TitleBoilerplate.learn(DEJAUN))
    assert [o.title for o in stripped] == [t.split(" | ")[0] for t in DEJAUN[:2]]
