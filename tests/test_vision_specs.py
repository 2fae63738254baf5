"""Spec extraction from text: the hand-written labelled set and the rules behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cumpair.vision.evaluation import FIELDS, Scores
from cumpair.vision.specs import extract_specs
from cumpair.vision.units import convert, parse_number

DATA = Path(__file__).parent / "data" / "vision" / "texts.jsonl"
CASES = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


def test_labelled_text_set_is_large_enough_and_covers_every_field():
    assert len(CASES) >= 150
    covered = {name for case in CASES for name in case["truth"]}
    assert covered == set(FIELDS)
    assert len({case["id"] for case in CASES}) == len(CASES)


def test_clean_text_per_field_f1_is_at_least_095():
    scores = Scores()
    for case in CASES:
        scores.add(case["id"], extract_specs(case["text"]).to_dict(), case["truth"])
    low = {n: round(s.f1, 3) for n, s in scores.fields.items() if s.f1 < 0.95}
    assert not low, f"{low}\n{scores.table()}\n{scores.mistakes}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dimensions: 123 x 456 x 789 cm", {"dimensions_mm": [1230, 4560, 7890]}),
        ("Size: 10 x 20 inch", {"dimensions_mm": [254, 508]}),
        ("H 30 cm", {"dimensions_mm": [300]}),
        ("Weight: 1.2 lbs", {"weight_g": 544.3}),
        ("500g", {"weight_g": 500}),
        ("Capacity: 1.5 L", {"volume_ml": 1500}),
        ("2TB", {"storage_gb": 2000}),
        ("1.2 kW", {"power_w": 1200}),
        ("100-240 V", {"voltage_v": 240}),
    ],
)
def test_units_are_normalised_with_the_raw_match_kept(text, expected):
    result = extract_specs(text).to_dict()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=0.06)
        assert result["raw"][key], "the matched snippet is kept"


def test_output_contract_omits_absent_facts():
    assert extract_specs("A lovely thing for your home.").to_dict() == {}


def test_gtin_with_wrong_check_digit_is_dropped_and_valid_one_is_canonical():
    assert "gtin" not in extract_specs("EAN: 4006381333932").to_dict()
    assert extract_specs("UPC: 036000291452").gtin == "0036000291452"


def test_ram_is_not_reported_as_storage():
    assert extract_specs("8 GB RAM, 256 GB SSD").storage_gb == 256
    assert extract_specs("Memory: 16 GB DDR5").storage_gb is None


def test_load_limit_is_not_the_product_weight():
    specs = extract_specs("Max load 150 kg. Weight: 7 kg")
    assert specs.weight_g == 7000


def test_seller_is_not_the_brand():
    assert extract_specs("Sold by MegaStore").brand is None
    assert extract_specs("Cordless drill by Makita").brand == "Makita"


def test_materials_keep_percentages_of_a_blend():
    specs = extract_specs("Composition: 52% cotton, 45% polyester, 3% elastane")
    assert [(m.name, m.percent) for m in specs.materials] == [
        ("cotton", 52),
        ("polyester", 45),
        ("elastane", 3),
    ]


def test_colour_spellings_are_canonical():
    assert extract_specs("Colour: Space Grey").colors == ["space gray"]


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        extract_specs(b"Weight: 2 kg")  # type: ignore[arg-type]


def test_huge_input_is_processed_quickly():
    # Regexes must stay linear: 200 kB of near-miss text must not backtrack for minutes.
    text = ("1" * 50 + " x " + "2" * 50 + " ") * 2000 + "Weight: 3 kg"
    assert extract_specs(text).weight_g == 3000


@pytest.mark.parametrize(
    ("printed", "expected"),
    [("1.299,5", 1299.5), ("1,299.5", 1299.5), ("2,5", 2.5), ("1,200", 1200), ("12", 12)],
)
def test_numbers_are_read_with_either_decimal_separator(printed, expected):
    assert parse_number(printed) == expected


def test_unit_conversion_rejects_mismatched_dimensions():
    assert convert(1, "in", "mm") == pytest.approx(25.4)
    with pytest.raises(ValueError):
        convert(1, "kg", "mm")
    with pytest.raises(ValueError):
        convert(1, "parsec", "mm")


def test_demo_shop_page_texts_never_contradict_the_catalog():
    """Every fact read from the 227 demo titles/descriptions agrees with the true product."""
    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import label_lines
    from cumpair.vision.evaluation import values_match

    checked = 0
    for offer in build_catalog().offers:
        page = offer.to_json()
        found = extract_specs(f"{page['title']}\n{page['description']}").to_dict()
        found.pop("raw", None)
        truth = label_lines(offer)[1]
        # Descriptions name materials without shares: compare names only.
        truth["materials"] = [{"name": m["name"], "percent": None} for m in truth["materials"]]
        for name, value in found.items():
            assert name in truth, (name, value, page["title"])
            assert values_match(name, value, truth[name]), (name, value, truth[name])
            checked += 1
    assert checked > 500
