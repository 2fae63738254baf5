"""One number reader for every matching signal: thousands, decimals and codes' separators;
numbers inside codes; audiences written as line names or proper names; rarity of titles that
differ only in shop boilerplate. Titles from the shared WDC pairs where they exist."""

from __future__ import annotations

import pytest

from cumpair.search.boilerplate import TitleBoilerplate
from cumpair.search.features import (
    audiences,
    bare_numbers,
    number_tokens,
    offer_features,
    quantities,
    read_numbers,
    unexplained_numbers,
)
from cumpair.search.matcher_train import LabelledPair, learn_weights
from cumpair.search.signals import TokenWeights, pair_signals


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("1,080 W", "1080 W"),  # thousands: a separator before exactly three digits
        ("1.080 W", "1080 W"),  # German thousands
        ("1.000.000 Stk", "1000000 Stk"),
        ("1.299,00 €", "1299.00 €"),  # thousands and cents
        ("2,5 mm", "2.5 mm"),  # a decimal comma is a decimal point
        ("10.1 Zoll", "10.1 Zoll"),
        ("0.500 kg", "0.500 kg"),  # no thousands start with 0
        # codes' separated digits are left as written
        ("Tissot T055.430.11.057.00", "Tissot T055.430.11.057.00"),
        ("Swatch 2531.80.00", "Swatch 2531.80.00"),
        ("HP 749361-066", "HP 749361-066"),
    ],
)
def test_numbers_are_read_in_one_form(written, read):
    assert read_numbers(written) == read
    assert read_numbers(read) == read  # reading twice changes nothing


def test_a_decimal_is_never_the_number_its_digits_run_together():
    # "2.5" used to read as 25 (glued), and "2,5 mm" as the two tokens "2" and "5mm"
    decimal = offer_features(1, "a", "Sigma Spacer Ring 2.5 mm")
    whole = offer_features(2, "b", "Sigma Spacer Ring 25 mm")
    comma = offer_features(3, "c", "Sigma Spacer Ring 2,5 mm")
    apart = pair_signals(decimal, whole)
    assert apart["numbers_substituted"] == 1.0
    assert apart["numbers_jaccard"] == 0.0
    assert apart["quantity_conflict"] > 0
    same = pair_signals(decimal, comma)
    assert (same["numbers_substituted"], same["numbers_jaccard"]) == (0.0, 1.0)
    assert same["quantity_agree"] == 1.0
    tablet = pair_signals(
        offer_features(1, "a", "Lenovo Tab 10.1 inch"), offer_features(2, "b", "Lenovo Tab 101")
    )
    assert tablet["numbers_substituted"] == 1.0


def test_thousands_separators_read_as_one_number():
    assert quantities("Corsair HX 1,080 W") == {("power_w", 1080.0)}  # not 1.08 W
    assert number_tokens("Corsair HX 1,080 W") == {"1080w"}  # not {"1", "080w"}
    a = offer_features(1, "a", "Corsair HX 1,080 W PSU")
    b = offer_features(2, "b", "Corsair HX 1080 W PSU")
    signals = pair_signals(a, b)
    assert signals["numbers_jaccard"] == 1.0
    assert signals["numbers_substituted"] == 0.0
    # a number grouped in thousands is a price or a count, never a line's generation
    assert bare_numbers('"Junghans Zegarek Chronoscope nur 1.840"@pl') == frozenset()
    assert bare_numbers("Nike Air Max 90 1.299,00 €") == {"90"}


def test_decimal_commas_and_points_agree_in_real_titles():
    # WDC cameras (a same-product pair): "20,3 MP" and "20.3MP"
    a = offer_features(
        1,
        "a",
        '"Canon PowerShot SX540 HS - Digital Camera 20,3 MP CMOS 4,3 mm-215 mm Display: 7,6 '
        'cm/3" TFT Black"@en',
    )
    b = offer_features(
        2,
        "b",
        '"Canon PowerShot SX540 HS Kompaktiškas fotoaparatas 20.3MP 1/2.3" CMOS 5184 x '
        '3888pikseliai Juoda"',
    )
    assert "20.3mp" in a.numbers & b.numbers
    assert ("pixels_mp", 20.3) in quantities(a.title) & quantities(b.title)


def test_a_code_written_with_and_without_separators_is_one_number():
    # WDC watches, a same-product pair
    a = offer_features(
        1, "a", '"Automatic T055.430.11.057.00 Tissot PRC 200 Powermatic 80"@en official catalog'
    )
    b = offer_features(2, "b", '"Herren Tissot PRC200 Automatik Uhr T0554301105700"@de')
    assert "t0554301105700" in a.numbers & b.numbers
    # a code's digits are not read as thousands: 2531.80.00 keeps every group
    assert number_tokens("Swatch 2531.80.00") == {"25318000"}


def test_a_number_inside_a_code_is_not_that_number():
    # "8700" is not written by "i7-8700K" (another processor); "1060" is by "GTX1060"
    assert unexplained_numbers(frozenset({"8700"}), "Intel Core i7-8700K 3.7GHz") == 1
    assert unexplained_numbers(frozenset({"8700"}), "Intel Core i7 8700 3.2GHz") == 0
    assert unexplained_numbers(frozenset({"1060"}), "MSI GTX1060 6GB") == 0
    assert unexplained_numbers(frozenset({"6"}), "MSI GTX1060 6GB") == 0  # a unit is no code
    a = offer_features(1, "a", "Intel Core i7 8700 Hexa-Core Processor")
    b = offer_features(2, "b", "Intel Core i7-8700K Hexa-Core Processor")
    assert pair_signals(a, b)["numbers_substituted"] == 1.0
    c = offer_features(3, "c", "Intel Core i7 8700 Hexa Core CPU")
    assert pair_signals(a, c)["numbers_substituted"] == 0.0


def test_line_names_with_a_space_and_proper_names_are_no_audience():
    assert audiences("Casio Baby G BA-110-7A3ER Watch") == frozenset()
    assert audiences("Casio Baby-G BA-110-7A3ER Watch") == frozenset()
    assert audiences("Pampers Baby Dry Windeln") == {"kids"}
    # Polish "i" (and) is a word, not a line's letter
    assert audiences("Nike Air Max 90 Męskie i Dziecięce") == {"men", "kids"}
    assert audiences("Men s Running Shoe") == {"men"}
    # a word that only begins with an audience is a name: a place, a family, a maker
    assert audiences("Kindermann Diaprojektor") == frozenset()
    assert audiences("Herrenhausen Gartenschere") == frozenset()
    assert audiences('"Seiko Automatik Herrenuhr SRP581K1"@de') == {"men"}
    assert audiences("Asics Damenlaufschuhe Gel-Nimbus") == {"women"}
    assert audiences("Superfit Kinderschuhe") == {"kids"}


def test_a_size_after_an_audience_is_no_line_name():
    # a clothing size or a US shoe width after the audience word is not Casio's "Baby G"
    assert audiences("Nike T-Shirt Herren L schwarz") == {"men"}
    assert audiences("Adidas Shirt Damen M blau") == {"women"}
    assert audiences("New Balance 990v5 Men D Grey") == {"men"}
    assert audiences("Brooks Ghost 14 Women B Black") == {"women"}
    assert audiences("Casio Baby G BA-110-7A3ER Watch") == frozenset()


def test_titles_alike_but_for_boilerplate_are_two_documents_of_the_corpus():
    # as in a store, two offers stay two documents when their titles differ only in a shop's
    # ending; counted once, leaving both out of the count took two away from one document
    boilerplate = TitleBoilerplate(frozenset({("bei", "schuhladen"), ("sneakerhaus",)}))
    shelf = [f"Nike Air Max {n} Black" for n in range(90, 98)]
    pairs = [
        LabelledPair(
            {"title": "Nike Pegasus Trail Volt bei Schuhladen"},
            {"title": "Nike Pegasus Trail Volt Sneakerhaus"},
            1,
        ),
        *(LabelledPair({"title": t}, {"title": t.replace("Black", "White")}, 0) for t in shelf),
    ]
    weights = learn_weights(pairs, boilerplate)
    assert weights.idf["volt"] == pytest.approx(
        TokenWeights.learn([{"volt"}] * 2 + [set()] * 16).idf["volt"]
    )
    left, right = (offer_features(n, "s", "Nike Pegasus Trail Volt") for n in (1, 2))
    assert "volt" in weights.rare(left.tokens, right.tokens)


def test_prices_are_no_numbers_two_offers_must_agree_on():
    # WDC watches (a same-product pair): one shop writes "€ 749.00", the other "749 00 €" (its
    # comma dropped); read as numbers, the decimal 749.00 was a number only one title writes
    a = offer_features(
        1,
        "a",
        '"G-Shock Mudmaster Men\u00b4s Watch"@en'
        ' "Casio G-Shock Watch GWG-1000GB-1AER nur € 749.00"@en',
    )
    b = offer_features(
        2,
        "b",
        '"G-Shock Mudmaster Herrenuhr"@de 00 €"@de'
        ' "Casio G-Shock Herrenuhr GWG-1000GB-1AER nur 749',
    )
    assert not any("749" in n for n in a.numbers)
    assert pair_signals(a, b)["numbers_substituted"] == 0.0


def test_a_code_that_looks_like_a_price_is_still_a_number():
    # WDC computers and cameras titles: a currency code glued into a model code ("15ISK"
    # Icelandic kronur, "MVR911" rufiyaa, "1BEF" Belgian francs) or AMD the chip maker
    assert "y70015isk" in number_tokens("Lenovo Y700-15ISK i7-6700HQ 12GB")  # not "y700"
    assert "y70017isk" in number_tokens("Lenovo Y700-17ISK i7-6700HQ 8GB")
    assert "mvr911ejcn" in number_tokens("Manfrotto MVR911EJCN SYMPLA")
    assert "la670wegb1bef" in number_tokens("Casio LA670WEGB-1BEF Or/Noir")
    assert "6380" in number_tokens("AMD 6380 Opteron Processor - 16 Core")
    assert "970" in number_tokens("Asus M5A97 R2.0 AMD 970 (Socket AM3+)")
    # prices still are none
    assert number_tokens("Nike Air Max 90 1.299,00 €") == {"90"}
    assert number_tokens("Canon EOS 80D EUR 899,00") == {"80d"}
