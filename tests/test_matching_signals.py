"""Signals of the learned matcher: colours across languages, TF-IDF from the store, prices,
codes explained by a description."""

from __future__ import annotations

import math

import pytest

from cumpair.search.features import (
    bare_numbers,
    colour_names,
    first_code,
    names_a_purpose,
    offer_features,
    quantities,
    quantity_relation,
    short_codes,
    title_head,
    unexplained_numbers,
    unexplained_short_codes,
)
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


# Real titles below are from ../shared/data/real/matching/wdc/<category>/valid.txt (WDC gold
# standard for large-scale product matching, Primpeli, Peeters & Bizer 2019), copied verbatim
# unless marked "made up".


def test_quantities_compare_across_units_and_languages():
    english = "Seagate IronWolf 10TB NAS 7200RPM SATA 6Gb/s 256MB Cache HDD - OEM (ST10000VN0004)"
    french = "3.5 pouces - 26.1mm IronWolf 10To 7200T/min 256Mo cache Sata 6Gb/s Garantie 36 mois"
    assert ("bytes_gb", 10_000.0) in quantities(english) & quantities(french)
    signals = pair_signals(offer_features(1, "a", english), offer_features(2, "b", french))
    assert signals["quantity_agree"] == 1.0 and signals["quantity_conflict"] == 0.0
    # a kit's parts (2x4GB) beside its total, mebibytes beside gigabytes: one product
    kit = quantities("Corsair Vengeance - DDR3 8 GB: 2 x 4 GB DIMM 240-pin")
    assert quantity_relation(kit, quantities("Corsair 8GB DDR3 240 pin")) == (2, 0)  # made up
    evga = quantities("EVGA GeForce GTX 1060 SC 6144MB GDDR5 PCI-Express Graphics Card")
    asus = quantities("ASUS GeForce GTX 1060 Dual OC, DUAL-GTX1060-O6G, 6GB GDDR5")
    assert quantity_relation(evga, asus) == (1, 0)
    # network generations, "2 in 1" and an English "to" are no quantities (made up)
    assert quantities("HP Elite x2 1012 G1 4G LTE, 2 in 1, ships in 1 to 2 days") == set()


def test_a_capacity_each_side_states_alone_is_a_conflict():
    a = offer_features(1, "a", "Kingston 64GB DataTraveler MicroDuo USB 3.0 Flash Drive - OTG")
    b = offer_features(2, "b", "Kingston 32GB DT microDuo USB 3.0 OTG | Memorybits UK")
    signals = pair_signals(a, b)
    assert signals["quantity_known"] == 1.0 and signals["quantity_conflict"] == 0.5
    assert signals["quantity_agree"] == 0.0


def test_a_generation_number_each_side_has_alone_is_unexplained():
    gtx1070 = offer_features(1, "a", "Asus GeForce GTX 1070 Turbo 8GB GDDR5 GDDR5")
    gtx1060 = offer_features(2, "b", "Asus GeForce GTX 1060 PCIe Turbo Graphics Card, 6GB GDDR5")
    glued = offer_features(3, "c", "ASUS GeForce GTX1060 Dual OC, DUAL-GTX1060-O6G, 6GB GDDR5")
    assert bare_numbers(gtx1070.title) == {"1070"}
    assert pair_signals(gtx1070, gtx1060)["numbers_unexplained"] == 0.5
    # 1060 is in GTX1060 (this title is a real one, "GTX 1060" glued by hand)
    assert pair_signals(gtx1060, glued)["numbers_unexplained"] == 0.0
    assert unexplained_numbers(frozenset({"1060"}), "GTX 10600") == 1


def test_the_title_head_is_the_product_name_before_the_shops_own_words():
    assert title_head(
        "Puma evoSPEED SL Lth II FG - Puma White/Puma Black/Shocking Orange Orange Mens Soccer"
    ) == {"puma", "evospeed", "sl", "lth", "ii", "fg"}
    assert title_head("Kingston 32GB DT microDuo USB 3.0 OTG | Memorybits UK") >= {"microduo"}
    # a one-word first part ("Apple - ...") is no product name: the head runs on
    assert "watch" in title_head("Apple - Apple Watch Series 2 38mm Space Gray Aluminum Case")
    tiempo = "Nike Tiempo Genio II Leather TF - White/Black/Total Orange Nike Mens Soccer Cleats"
    same = "Nike Tiempo Genio II Pelle TF - Bianco/Nero/Arancione Totale Nike Scarpe Uomo"
    other = "Nike Tiempo Legend VI FG Enfant - Noir/ Blanc/ Or Nike chaussures pour enfant"
    a, b, c = (offer_features(n, "s", t) for n, t in enumerate((tiempo, same, other)))
    assert pair_signals(a, b)["head_containment"] > pair_signals(a, c)["head_containment"]
    assert pair_signals(a, b)["head_char_cosine"] > pair_signals(a, c)["head_char_cosine"]


def test_colour_words_match_with_or_without_accents():
    spanish = offer_features(1, "a", "Concave Volt + SG -Plateado/Azul Concave -Botas de futbol")
    french = offer_features(2, "b", "Concave Volt + SG - Argent/ Bleu Concave chaussures")
    assert pair_signals(spanish, french)["colour_jaccard"] == 1.0
    assert colour_names("Nike Hypervenom Phatal III DF FG - Czarny/Bialy") == {"black", "white"}
    assert colour_names("Concave Quantum+ FG - Wit/Roze") == colour_names("Blanc/ Rosé")


def test_a_short_model_name_each_side_has_alone_is_unexplained():
    eos70d = offer_features(
        1, "a", "Canon EOS 70D Digital SLR Camera (Body Only) DSLR Bundles | EISF"
    )
    eos6d = offer_features(
        2, "b", "Canon EOS 6D Digital SLR Camera, 20.2MP (Body Only) Only) (8035B002) Camera"
    )
    assert short_codes(eos70d.title) == {"70d"}
    assert pair_signals(eos70d, eos6d)["short_codes_unexplained"] == 1.0
    assert unexplained_short_codes(frozenset({"70d"}), "Canon EOS70D kit") == 0  # made up
    assert unexplained_short_codes(frozenset({"70d"}), "Canon EOS 700D") == 1
    assert unexplained_short_codes(frozenset({"ii"}), "Canon EOS 5D Mark III") == 1
    assert short_codes("Nike Tiempo Legend VI FG Enfant - Noir/ Blanc/ Or") == {"vi"}
    assert short_codes("Kingston 32GB DT microDuo USB 3.0 4K") == set()  # specs are not names


def test_an_accessory_beside_what_it_fits_is_one_sided_purpose():
    charger = offer_features(1, "a", "GoPro Dual Battery Charger + (for HERO4) - AHBBP-401")
    camera = offer_features(2, "b", "GoPro HERO4 BLACK Sports & Action Video Cameras | Gear Outlet")
    assert names_a_purpose(charger.title) and not names_a_purpose(camera.title)
    assert pair_signals(charger, camera)["purpose_one_sided"] == 1.0
    assert names_a_purpose("Soporte Frontal Para Casco Go Pro")


def test_prices_and_ranges_are_no_generation_numbers():
    # real titles, WDC product matching (../shared/data/real/matching/wdc/): cameras/valid.txt,
    # shoes/train.txt (its language tag dropped as clean_text does), computers/train.txt
    assert (
        bare_numbers(
            "Canon EOS 77D DSLR Camera (Body Only) - $899 With $150 Instant Rebate Through 11/22/17"
        )
        == set()
    )
    assert bare_numbers("Transcend TS64GSDXC10U1 64gb Sdxc Class 10 600x Uhs-I for $49.48.") == {
        "10"
    }
    assert bare_numbers("Sony E PZ 16-50mm f3.5-5.6 OSS (E-Mount) (SELP1650)") == set()
    assert bare_numbers("CANON 24-70 mm f/2.8 L II USM") == set()
    assert bare_numbers('ASICS FUZEX LYTE 2"@pl 99 PLN | Running T719N4990') == {"2"}
    # a price after the name leaves its generation; a dash that falls is no range (made up)
    assert bare_numbers("Nike Air Max 90 $ 120, EUR 99,90, 1.299,00 zł, USD399") == {"90"}
    assert bare_numbers("ASUS TUF SABERTOOTH X99 Motherboard Intel (Socket 2011-3) ATX") == {
        "2011",
        "3",
    }
    assert bare_numbers("TOP 10 watches") == {"10"}


def test_a_range_one_title_states_alone_leaves_no_number_unexplained():
    # a same-product pair of cameras/valid.txt (WDC)
    bag = offer_features(1, "a", '"Canon Deluxe Gadget Bag 100EG" "Camera & Photo Accessories"')
    holds = offer_features(
        2, "b", '"Canon Deluxe Gadget Bag 100EG (Holds 1-2 Cameras and 3-4 Lenses)" (6227A001)'
    )
    assert pair_signals(bag, holds)["numbers_unexplained"] == 0.0


def test_a_range_with_a_unit_states_both_ends():
    # a different-product pair of cameras/valid.txt (WDC): the spans share their long end
    canon = quantities("Canon - EF 75\u2013300mm f/4\u20135.6 III Telephoto Zoom Lens Black")
    sigma = quantities("Sigma 70-300mm f/4-5.6 DG OS Telephoto Zoom for Pentax AF Digital SLR")
    assert canon == {("length_mm", 75.0), ("length_mm", 300.0)}
    assert quantity_relation(canon, sigma) == (1, 1)
    # one side's span, the other's long end alone (made up): agreement
    assert quantity_relation(quantities("Canon 18 - 55 mm"), quantities("EF-S 18-55mm")) == (1, 0)


# Real watch offers (../shared/data/real/matching/wdc/watches/valid.txt): each page names its
# product's code first, then a related watch's after "Shop".
DIVER = "Cartier Calibre De Cartier Diver Watch W2CA0009 Shop WSCA0006"
DIVER_AGAIN = "Cartier Calibre De Cartier Diver Watch W2CA0009 Shop WSCA0011"
CARBON = "Cartier Calibre De Cartier Diver Watch WSCA0006 Shop W7100052"


def test_the_code_a_title_names_first_is_its_own():
    offer = offer_features(0, "s", DIVER)
    assert offer.models == {"W2CA0009", "WSCA0006"}
    assert first_code(offer.title, offer.models) == "W2CA0009"
    assert first_code("Tissot watch", offer.models) is None


def test_titles_sharing_a_code_but_not_the_first_one_are_told_apart():
    diver, again, carbon = (
        offer_features(n, f"s{n}", t) for n, t in enumerate((DIVER, DIVER_AGAIN, CARBON))
    )
    same = pair_signals(diver, again)
    assert (same["code_first_agree"], same["code_first_differ"]) == (1.0, 0.0)
    other = pair_signals(diver, carbon)
    assert (other["code_first_agree"], other["code_first_differ"]) == (0.0, 1.0)
    # one title without codes: neither signal
    plain = pair_signals(diver, offer_features(3, "s3", "Cartier Calibre Diver Watch"))
    assert (plain["code_first_agree"], plain["code_first_differ"]) == (0.0, 0.0)


def test_a_code_only_the_structured_model_field_names_counts_as_the_first():
    # offer feeds carry the MPN in its own field while the title writes no code
    a = offer_features(0, "s0", "Lenovo ThinkPad laptop", brand="Lenovo", model="20L5000UUS")
    b = offer_features(1, "s1", "ThinkPad notebook, black", brand="Lenovo", model="20L5000UUS")
    assert first_code(a.title, a.models) == "20L5000UUS"
    same = pair_signals(a, b)
    assert (same["code_first_agree"], same["code_first_differ"]) == (1.0, 0.0)


def test_a_model_file_from_before_the_first_code_signals_loads_and_weighs_them_zero():
    # a file written before code_first_agree / code_first_differ existed names neither
    from cumpair.search.matcher_model import MatcherModel, load_matcher

    data = load_matcher(None).to_dict()
    kept = [n for n, name in enumerate(data["features"]) if not name.startswith("code_first_")]
    assert len(kept) == len(data["features"]) - 2
    data["features"] = [data["features"][n] for n in kept]
    data["coefficients"] = [data["coefficients"][n] for n in kept]
    older, shipped = MatcherModel.from_dict(data, "older.json"), load_matcher(None)
    signals = pair_signals(*(offer_features(n, f"s{n}", t) for n, t in enumerate((DIVER, CARBON))))
    assert signals["code_first_differ"] == 1.0
    assert older.contributions(signals)["code_first_differ"] == 0.0
    first = shipped.contributions(signals)["code_first_differ"]  # agree is 0 for this pair
    assert older.log_odds(signals) == pytest.approx(shipped.log_odds(signals) - first)


# Real WDC shoe titles (valid split): the same boot sold in France and Italy, and two pairs of
# siblings that share nearly every word.
ENFANT = "Nike Enfant Hypervenom Phelon II FG - Noir/ Volt Nike chaussures pour enfant terrain sec"
JUNIOR = "Nike Junior Hypervenom Phelon II FG - Nero/Volt Nike Scarpe Terreni Compatti Nero/Volt"
PEGASUS_32 = "Nike Air Zoom Pegasus 32 Women's Running Shoes SU16 501 501"
PEGASUS_33 = "Nike Air Zoom Pegasus 33 Men's Running Shoes SU16 400 400"


def test_an_audience_is_compared_across_languages():
    enfant, junior = offer_features(0, "s0", ENFANT), offer_features(1, "s1", JUNIOR)
    same = pair_signals(enfant, junior)
    assert (same["audience_known"], same["audience_conflict"]) == (1.0, 0.0)
    women, men = offer_features(2, "s2", PEGASUS_32), offer_features(3, "s3", PEGASUS_33)
    assert pair_signals(women, men)["audience_conflict"] == 1.0
    plain = pair_signals(enfant, offer_features(4, "s4", "Nike Hypervenom Phelon II FG"))
    assert (plain["audience_known"], plain["audience_one_sided"]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("left", "right", "substituted"),
    [
        pytest.param(PEGASUS_32, PEGASUS_33, 1.0, id="each-its-own-generation"),
        pytest.param(
            "Puma evoSPEED 4.4 FG - Lave/Blanc/Eclipse Totale",
            "Puma evoSPEED 1.4 FG - Lave/Blanc/Eclipse Totale",
            1.0,
            id="each-its-own-decimal",
        ),
        # one title adding a number (a style code) to the other is no substitution
        pytest.param(
            "Nike Air Zoom Pegasus 33 - Black/White",
            "Nike Air Zoom Pegasus 33 Black 831352-001",
            0.0,
            id="a-style-code-added",
        ),
        # a range written with spaces is the same range
        pytest.param(
            "Canon EOS 80D with 18-55mm lens", "Canon EOS 80D 18 55 mm kit", 0.0, id="spaced-range"
        ),
        # numbers are compared whole, never inside a longer number: the "2" of Metcon 2 is no
        # digit run of "852928-002" (WDC shoes train, two shoes)
        pytest.param(
            '"Nike Metcon 3 - Black"@en-GB " Nike Black Mens Shoes 852928-002 "@en-GB',
            '"Nike Metcon 2 - Black/White"@en " Nike Mens Shoes Black/White "@en',
            1.0,
            id="not-inside-a-style-code",
        ),
        pytest.param(
            "Nike Air Pegasus 3 Running Shoe",
            "Nike Air Pegasus 33 Running Shoe",
            1.0,
            id="not-inside-a-longer-number",
        ),
        # a number is still found glued to letters, or beside another number a space apart
        pytest.param(
            "MSI GTX1060 6GB Gaming X",
            "MSI GeForce GTX 1060 Gaming X 6 GB",
            0.0,
            id="glued-or-spaced",
        ),
    ],
)
def test_numbers_each_title_has_alone_are_a_substitution_not_an_addition(left, right, substituted):
    a, b = offer_features(0, "s0", left), offer_features(1, "s1", right)
    assert pair_signals(a, b)["numbers_substituted"] == substituted


def test_names_and_abbreviations_are_no_audience_and_compounds_are():
    from cumpair.search.features import audiences

    # Grand Seiko's "GS", a PS/2 port and Casio's Baby-G line name no one
    assert audiences("Grand Seiko SBGA211 GS Spring Drive Snowflake") == frozenset()
    assert audiences("Logitech K120 Keyboard PS/2 Black") == frozenset()
    assert audiences('"Casio Baby-G BA-110-7A3ER Watch"@en') == frozenset()
    # German writes the audience into the noun (WDC watches: Damenuhr, Herrenuhr)
    assert audiences('"Bristol Silver Damenuhr 36mm"@de') == {"women"}
    assert audiences('"Seiko Automatik Herrenuhr SRP581K1 nur 399 00 €"@de') == {"men"}
    assert audiences("Casio Ladies' Baby-G Alarm Chronograph Watch") == {"women"}
    # a letter that begins a hyphened word is no line's name
    assert audiences("Adidas Herren-T-Shirt Essentials") == {"men"}
    assert audiences("Esprit Damen-V-Ausschnitt Pullover") == {"women"}


def test_the_store_rare_words_two_titles_share_across_languages_are_a_signal():
    # WDC watches valid: one watch sold in Spain and in the Netherlands, a sibling in Poland;
    # the words each shop's language adds ("Reloj para hombre", "Horloge") are common in a
    # store of such titles, as the brand's, the watch's own (Durham) rare
    spanish = (
        '"Durham Oro Rosé Reloj para hombre 40mm"@es'
        ' "Daniel Wellington Durham 40mm nur 189 00 €"@es'
    )
    dutch = (
        '"Daniel Wellington Classic Man Durham rose gold"@nl-NL gold | 10:35 Horloge boetiek"@nl-NL'
    )
    sibling = (
        '"Classic Black Sheffield Silver 40mm"@pl 00 €"@pl "Daniel Wellington Classic 40mm nur 189'
    )
    shelf = [
        "Reloj para hombre Casio Edifice EFR-539D",
        "Reloj para mujer Casio LTP-1302",
        "Reloj para hombre Seiko 5 Automatik",
        "Tissot PRC 200 Horloge boetiek",
        "Seiko Presage Horloge boetiek",
        "Casio G-Shock GA-100 Horloge",
        "Daniel Wellington Classic Cambridge 40mm silver",
        "Daniel Wellington Classic Bristol 36mm rose gold",
        "Daniel Wellington Classic Reading 40mm rose gold",
        "Daniel Wellington Classic Glasgow 36mm",
    ]
    offers = [
        offer_features(i, f"s{i}", t) for i, t in enumerate([spanish, dutch, sibling, *shelf])
    ]
    weights = TokenWeights.learn(o.tokens for o in offers)
    same = pair_signals(offers[0], offers[1], weights=weights)
    siblings = pair_signals(offers[1], offers[2], weights=weights)
    assert same["rare_contained_max"] > siblings["rare_contained_max"]
    assert same["rare_contained_min"] > siblings["rare_contained_min"]
    assert pair_signals(offers[0], offers[1])["rare_contained_max"] == 0.0  # needs the store


def test_store_rarity_leaves_the_compared_pair_out_of_its_counts():
    # in a store of three watches, the words two of them share (the brand, "Durham") are still
    # those two's own: counted with the pair, two offers of three reads as common
    titles = [
        "Daniel Wellington Durham 40mm",
        "Daniel Wellington Durham rose gold",
        "Casio G-Shock GA-100 black",
    ]
    offers = [offer_features(i, f"s{i}", t) for i, t in enumerate(titles)]
    weights = TokenWeights.learn(o.tokens for o in offers)
    assert "durham" in weights.rare(offers[0].tokens, offers[1].tokens)
    signals = pair_signals(offers[0], offers[1], weights=weights)
    assert signals["rare_contained_min"] == pytest.approx(3 / 5)  # rose, gold written alone
    assert signals["rare_contained_max"] == pytest.approx(3 / 4)  # 40mm written alone
    # both offers left out: in 20 offers, a word 6 write is rare to two of them (4 others
    # write it) and not to one alone (5 others)
    names = ["Bristol", "Sheffield", "Reading", "Glasgow"]
    shelf = [f"Daniel Wellington Durham {n} 36mm" for n in names]
    shelf += [f"Casio G-Shock GA-{100 + n} black" for n in range(14)]
    store = [o.tokens for o in offers[:2]] + [offer_features(0, "s", t).tokens for t in shelf]
    assert len(store) == 20
    weights = TokenWeights.learn(store)
    assert "durham" in weights.rare(offers[0].tokens, offers[1].tokens)
    assert "durham" not in weights.rare(offers[0].tokens)
    # a store of none or one offer: every word is rare, nothing divides by zero
    for few in ([], offers[:1]):
        small = pair_signals(
            offers[0], offers[1], weights=TokenWeights.learn(o.tokens for o in few)
        )
        assert small["rare_contained_min"] == pytest.approx(3 / 5)
        assert all(math.isfinite(v) for v in small.values())


def test_a_bare_body_beside_a_bundle_is_a_signal():
    body = offer_features(0, "s0", "Canon EOS 80D DSLR Camera Body Only")
    kit = offer_features(1, "s1", "Canon EOS 80D DSLR Camera + EF-S 18-135mm IS USM")
    signals = pair_signals(body, kit)
    assert (signals["body_vs_bundle"], signals["bundle_one_sided"]) == (1.0, 1.0)
    other_shop = offer_features(2, "s2", "Canon EOS 80D Body")
    assert pair_signals(body, other_shop)["body_vs_bundle"] == 0.0


def test_the_rarest_word_each_title_has_alone_needs_the_store_corpus():
    titles = ["Air Jordan 13 Retro Bred", "Air Jordan 13 Retro Chicago", "Air Jordan 13 Retro"]
    offers = [offer_features(i, f"s{i}", t) for i, t in enumerate(titles)]
    weights = TokenWeights.learn(o.tokens for o in offers)
    siblings = pair_signals(offers[0], offers[1], weights=weights)
    assert siblings["tfidf_unshared_both_rarest"] > 0.5
    assert pair_signals(offers[0], offers[2], weights=weights)["tfidf_unshared_both_rarest"] == 0
    assert pair_signals(offers[0], offers[1])["tfidf_unshared_both_rarest"] == 0.0


def test_the_shipped_matcher_tells_siblings_by_audience_and_number_apart():
    from cumpair.search.matching import compare

    women, men = offer_features(0, "s0", PEGASUS_32), offer_features(1, "s1", PEGASUS_33)
    assert not compare(women, men).same
    assert compare(offer_features(2, "s2", ENFANT), offer_features(3, "s3", JUNIOR)).same


def test_a_model_file_from_before_the_difference_signals_loads_and_weighs_them_zero():
    from pathlib import Path

    from cumpair.search.matcher_model import MatcherModel

    older = MatcherModel.load(
        Path(__file__).parent / "data" / "matching" / "matcher_before_differences.json"
    )
    assert "audience_conflict" not in older.coefficients
    signals = pair_signals(offer_features(0, "s0", PEGASUS_32), offer_features(1, "s1", PEGASUS_33))
    assert signals["audience_conflict"] == 1.0
    assert older.contributions(signals)["audience_conflict"] == 0.0


# Real WDC titles (watches valid, computers train): one Gucci watch The Hut files under both
# sexes, and a memory card sold without its label.
GUCCI_LADIES = "Unisex Gucci G-Timeless Watch YA1264018 Ladies Watches | Designer For Women The Hut"
GUCCI_MENS = "Unisex Gucci G-Timeless Watch YA1264018 Men's Watches | Designer For Men The Hut"
UNLABELLED = "MIO SD1GB-C230 BXP 1GB 9p SD Secure Digital Card 24x Used w/o Sandisk Label Clam"


def test_unisex_is_for_men_and_women_alike():
    ladies, mens = offer_features(0, "s0", GUCCI_LADIES), offer_features(1, "s1", GUCCI_MENS)
    signals = pair_signals(ladies, mens)
    assert (signals["audience_known"], signals["audience_conflict"]) == (1.0, 0.0)
    junior = offer_features(2, "s2", "Unisex Junior Nike Hypervenom Phelon II FG")
    assert pair_signals(junior, mens)["audience_conflict"] == 1.0


def test_watts_and_without_are_no_bundle():
    spaced = pair_signals(
        offer_features(0, "s0", "Corsair RM650x 650W ATX"),
        offer_features(1, "s1", "Corsair RM650x 650 W ATX"),
    )
    assert spaced["bundle_one_sided"] == 0.0
    unlabelled = pair_signals(
        offer_features(2, "s2", UNLABELLED), offer_features(3, "s3", "MIO SD1GB-C230 1GB SD Card")
    )
    assert unlabelled["bundle_one_sided"] == 0.0
    with_head = offer_features(4, "s4", "Manfrotto 190X tripod w/ Ball Head")
    assert (
        pair_signals(with_head, offer_features(5, "s5", "Manfrotto 190X tripod"))[
            "bundle_one_sided"
        ]
        == 1.0
    )
