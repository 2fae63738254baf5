"""Model codes, specs and brands read off real offer titles (tokens from issue 14)."""

from __future__ import annotations

import pytest

from cumpair.search.features import (
    BrandLexicon,
    code_relation,
    model_codes,
    normalize_brand,
    offer_features,
    with_learned_brands,
)


@pytest.mark.parametrize(
    "spec",
    ["1080P", "2.13GHz", "6Gb/s", "4PORT", "4-port", "1500VA", "240PIN", "240-pin", "18-55mm",
     "2x8GB", "1920x1080", "DDR3", "CAT5E", "LGA1151", "PC3-10600", "USB3.0", "f/2.8", "42mm",
     "5ATM", "US10.5"],
)  # fmt: skip
def test_specs_units_and_interface_names_are_not_model_codes(spec):
    assert model_codes(f"Acme thing {spec}") == set()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Kit 2531.80.00 chrome", "25318000"),
        ("HP 749361-066 keyboard", "749361066"),
        ("Zapatilla 168997-3001 azul", "1689973001"),
        ("Arlo Baby camera 75406", "75406"),
        ("637414-B21 HP Xeon E5607 2.26GHz BL460c G7", "637414B21"),
        ("Fujifilm X-T2 body", "XT2"),
    ],
)
def test_digit_codes_and_short_separated_codes_are_kept(text, code):
    assert code in model_codes(text)


def test_shop_names_labelled_stock_numbers_and_web_addresses_are_not_codes():
    codes = model_codes("Canon EOS 1300D SKU: 99887766 at CDW.com", exclude=["shop24x7"])
    assert codes == {"1300D"}
    assert model_codes("Shop24x7 Canon 1300D", exclude=["Shop24x7"]) == {"1300D"}


def test_a_shops_own_sku_is_not_a_code_unless_it_is_the_model():
    offer = offer_features(1, "acme", "Davis 50 DAVIS50B AB77120", sku="AB77120")
    assert offer.models == {"DAVIS50B"}
    same = offer_features(1, "acme", "Davis DAVIS50B", sku="DAVIS50B", model="DAVIS50B")
    assert same.models == {"DAVIS50B"}


@pytest.mark.parametrize(
    ("a", "b"), [("DAVIS50B", "DAVIS50"), ("PSW110BK", "PSW110"), ("AVT75406", "75406")]
)
def test_variant_families_are_related_not_in_conflict(a, b):
    assert code_relation(frozenset({a}), frozenset({b}))[0] == "family"


@pytest.mark.parametrize(("a", "b"), [("DAVIS50B", "DAVIS50R"), ("749361066", "749361001")])
def test_siblings_of_one_family_conflict(a, b):
    assert code_relation(frozenset({a}), frozenset({b})) == ("conflict", 1, True)


def test_a_code_split_by_spaces_in_the_other_title_is_contained():
    a = model_codes("Avermedia VISIONU50")
    relation, *_ = code_relation(a, frozenset({"X123"}), "Avermedia VISIONU50", "Vision U50 X123")
    assert relation == "contained"


@pytest.mark.parametrize(
    ("a", "b"),
    [("Cooler Master", "coolermaster"), ("Zalman USA Inc.", "zalman"), ("Hewlett-Packard", "HP"),
     ("Bosch GmbH", "BOSCH"), ("Björn Borg", "Bjorn Borg"),
     ("Logitech International S.A.", "logitech"), ("SKAGEN A/S", "Skagen")],
)  # fmt: skip
def test_brand_spellings_normalise_to_one_key(a, b):
    assert normalize_brand(a) == normalize_brand(b)


def test_different_brands_stay_different():
    assert normalize_brand("Sony") != normalize_brand("Sonos")
    assert normalize_brand("Inc.") == "inc"  # a brand is never emptied by its suffixes


def test_brands_are_learned_from_the_store_and_read_off_titles():
    titles = ["Canon EOS 1300D", "Canon EF 50mm", "Canon PowerShot G7", "Camera bag by Canon",
              "Zalman CNPS9900 cooler", "Camera strap black"]  # fmt: skip
    lexicon = BrandLexicon.learn(titles, ["Zalman USA Inc."])
    assert lexicon.find("EF 24-70mm lens from CANON") == "canon"
    assert lexicon.find("Zalman CNPS10X") == "zalman"
    assert lexicon.find("Camera strap") is None  # "camera" opens titles but is no brand
    filled = with_learned_brands([offer_features(i, "s", t) for i, t in enumerate(titles)])
    assert [f.brand for f in filled[:3]] == ["canon"] * 3
