"""product_text: the string the text encoder sees for a product record."""

from cumpair.embed.text import MAX_CHARS, product_text


def test_title_brand_model_and_key_specs_are_joined_in_order():
    item = {
        "title": "Cordless Drill",
        "brand": "Acme",
        "model": "CD-18",
        "specs": {"power_w": 450.0, "voltage_v": 18, "colors": ["yellow"]},
        "category": "tools",
    }
    assert product_text(item) == "Cordless Drill, Acme, CD-18, 450 W, 18 V, yellow, tools"


def test_brand_already_in_title_is_not_repeated():
    item = {"title": "Acme CD-18 Cordless Drill", "brand": "ACME", "model": "cd-18"}
    assert product_text(item) == "Acme CD-18 Cordless Drill"


def test_dimensions_and_materials_are_written_in_words():
    item = {
        "title": "Desk",
        "specs": {
            "dimensions_mm": [1200, 600.0, 750],
            "materials": [{"name": "oak", "percent": 100}],
        },
    }
    assert product_text(item) == "Desk, 1200 x 600 x 750 mm, oak"


def test_missing_fields_give_empty_text_and_whitespace_is_collapsed():
    assert product_text({}) == ""
    assert (
        product_text({"title": "  Red \n kettle  ", "brand": None, "specs": None}) == "Red kettle"
    )


def test_text_is_capped_in_length():
    assert len(product_text({"title": "word " * 1000})) == MAX_CHARS
