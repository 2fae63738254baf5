"""`cumpair extract`: the item the crawl would yield for one page, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cumpair.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
HM = "https://www2.hm.com/fr_fr/productpage.1045436003.html"


def run(capsys, *args: str) -> tuple[int, dict | str, str]:
    code = main(["extract", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in args and code == 0 else out), err


def test_extract_prints_the_feed_record_with_sources(capsys):
    code, record, _ = run(
        capsys, str(FIXTURES / "hm_broken_first_jsonld.html"), "--url", HM, "--json"
    )
    assert code == 0
    assert record["price"] == "29.99"  # the feed writes Decimals as strings
    assert record["url"] == HM and record["shop"] == "generic"
    assert record["field_sources"]["price"] == "json-ld"
    assert record["dropped"] is None
    assert record["problems"][0].startswith("json-ld: block 1")


def test_extract_says_why_the_crawl_would_drop_the_page(tmp_path, capsys):
    page = tmp_path / "p.html"
    page.write_text("<html><body><h1>Kettle</h1><p>Call us for a price</p></body></html>")
    code, record, _ = run(capsys, str(page), "--url", "https://shop.test/p/1", "--json")
    assert code == 0
    assert record["title"] == "Kettle" and record["price"] is None
    assert record["dropped"] == "https://shop.test/p/1: no usable price, currency"


def test_extract_with_a_shop_by_name_uses_its_selectors_and_default_currency(tmp_path, capsys):
    page = tmp_path / "p.html"
    page.write_text('<html><body><h1 class="prod-title">Kettle</h1>'
                    '<span class="prod-price">1.299,00</span></body></html>')  # fmt: skip
    code, record, _ = run(capsys, str(page), "--shop", "cornerstore", "--json")
    assert code == 0
    assert (record["shop"], record["price"], record["currency"]) == (
        "cornerstore",
        "1299.00",
        "EUR",
    )
    assert record["field_sources"]["price"] == "selectors"
    assert record["field_sources"]["currency"] == "shop_default"


def test_extract_with_a_shop_config_file(tmp_path, capsys):
    config = tmp_path / "mine.toml"
    config.write_text(
        'name = "mine"\nstart_urls = ["https://shop.test/"]\n[fields]\ntitle = "p.t::text"\n'
    )
    page = tmp_path / "p.html"
    page.write_text('<html><body><p class="t">Mug</p></body></html>')
    code, record, _ = run(capsys, str(page), "--shop", str(config), "--json")
    assert (code, record["shop"], record["title"]) == (0, "mine", "Mug")


def test_extract_without_json_lists_fields_and_their_sources(capsys):
    code, out, _ = run(capsys, str(FIXTURES / "amazon_buybox_above_title.html"))
    assert code == 0
    assert "price: 209.00  [visible]" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/page.html"], "cannot read /no/such/page.html"),
        ([str(FIXTURES / "hm_broken_first_jsonld.html"), "--shop", "nosuchshop"], "no shop"),
    ],
)
def test_extract_bad_input_is_a_clear_error(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err
