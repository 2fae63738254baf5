"""Feed readers and offer checks of `cumpair ingest`: every format, line numbers, drop reasons."""

from __future__ import annotations

import gzip
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from cumpair.ingest.formats import FeedError, FeedProblem, FeedRow, detect_format, read_feed
from cumpair.ingest.offers import OfferRejected, offer_from_fields
from cumpair.ingest.stages import missing_fields

FEEDS = Path(__file__).parent / "fixtures" / "feeds"


def _entries(path: Path, fmt: str | None = None) -> list[FeedRow | FeedProblem]:
    return list(read_feed(path, detect_format(path, fmt)))


def _offers(path: Path, **kwargs) -> dict[int, dict | str]:
    """line -> offer dict, or the reason the line was dropped."""
    out: dict[int, dict | str] = {}
    for entry in _entries(path):
        if isinstance(entry, FeedProblem):
            out[entry.line] = entry.reason
            continue
        try:
            offer, _ = offer_from_fields(entry.fields, **kwargs)
        except OfferRejected as exc:
            out[entry.line] = exc.reason
            continue
        missing = missing_fields(offer)
        out[entry.line] = f"missing_{missing[0]}" if missing else offer
    return out


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("items.jl", "jsonl"), ("items.csv", "csv"), ("merchant.xml", "xml"), ("merchant.tsv", "tsv")],
)
def test_format_is_detected_by_extension_and_by_content(tmp_path, name, fmt):
    assert detect_format(FEEDS / name) == fmt
    bare = tmp_path / "feed"  # no extension: the content decides
    shutil.copy(FEEDS / name, bare)
    assert detect_format(bare) == fmt
    assert detect_format(bare, "csv") == "csv"  # an explicit format wins


def test_unknown_format_and_empty_file_are_clear_errors(tmp_path):
    with pytest.raises(FeedError, match="unknown feed format"):
        detect_format(FEEDS / "items.jl", "parquet")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(FeedError, match="empty"):
        detect_format(empty)


def test_unreadable_feed_is_a_clear_error_before_any_work(tmp_path):
    damaged = tmp_path / "feed.jl.gz"
    damaged.write_bytes(b"\x1f\x8b" + b"not gzip at all")
    with pytest.raises(FeedError, match="cannot read the feed"):
        detect_format(damaged)
    with pytest.raises(FeedError, match="cannot read the feed"):
        detect_format(tmp_path / "missing.jl", "jsonl")


def test_a_truncated_gzip_feed_keeps_the_rows_before_the_damage(tmp_path):
    rows = "".join(f'{{"shop": "s", "url": "https://s.example/{n}"}}\n' for n in range(2000))
    whole = gzip.compress(rows.encode())
    feed = tmp_path / "feed.jl.gz"
    feed.write_bytes(whole[: len(whole) // 2])
    *read, last = _entries(feed)
    assert len(read) > 100 and read[0].fields["url"] == "https://s.example/0"
    assert isinstance(last, FeedProblem) and last.reason == "unreadable"


def test_json_lines_keep_exact_prices_and_report_a_broken_line_by_number():
    offers = _offers(FEEDS / "items.jl")
    assert offers[3] == "malformed"
    assert offers[4] == "missing_title"
    assert offers[6] == "missing_price"
    assert offers[7] == "invalid_price"
    first = offers[1]
    assert first["price"] == Decimal("1199.00") and first["currency"] == "USD"
    assert first["image_urls"] == ["photo.png"] and first["gtin"] == "4000000000013"
    assert offers[5]["title"] == "Canon Deluxe Gadget Bag 100EG"  # the rest is still read


def test_a_json_number_price_stays_exact(tmp_path):
    feed = tmp_path / "f.jl"
    feed.write_text('{"shop": "s", "url": "https://s.example/1", "title": "t", "price": 19.99}\n')
    (entry,) = _entries(feed)
    assert offer_from_fields(entry.fields)[0]["price"] == Decimal("19.99")


def test_csv_rows_keep_their_first_line_across_quoted_newlines():
    offers = _offers(FEEDS / "items.csv")
    assert set(offers) == {2, 3, 5}  # row 3's description spans lines 3-4
    assert offers[5] == "malformed"
    assert offers[3]["title"] == "Manfrotto Pro Single Carbon Fibre Kit 100 - 509HD,536K"
    assert offers[3]["model"] == "536K" and offers[3]["description"].startswith("Carbon fibre")


def test_merchant_xml_items_map_to_item_fields():
    offers = _offers(FEEDS / "merchant.xml")
    bag, camcorder, gopro = offers[7], offers[18], offers[27]
    assert offers[36] == "missing_url"
    assert bag["shop"] == "alltechtoys.example"  # no shop in the feed: the link's host
    assert bag["sku"] == "ATT-100EG" and bag["model"] == "100EG" and bag["brand"] == "Canon"
    assert (bag["price"], bag["currency"], bag["availability"]) == (
        Decimal("24.99"),
        "USD",
        "InStock",
    )
    assert camcorder["price"] == Decimal("2299.00") and camcorder["availability"] == "OutOfStock"
    assert gopro["model"] == "CHDHX-501" and gopro["availability"] == "PreOrder"
    assert gopro["description"] is None


def test_merchant_tsv_rows_map_to_item_fields_and_shop_overrides():
    offers = _offers(FEEDS / "merchant.tsv", shop="eisf")
    tripod = offers[2]
    assert tripod["shop"] == "eisf" and tripod["image_urls"] == ["photo.png"]
    assert tripod["url"] == "https://eisf.example/manfrotto-509hd-536k"
    assert offers[3]["price"] == Decimal("1099.00")
    assert offers[4] == "invalid_currency"  # "12.99 $": a symbol is not an ISO code


def test_atom_feed_and_gzip_are_read(tmp_path):
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">\n'
        "<entry><title>Canon EOS 80D</title>"
        '<link href="https://atom.example/80d"/><g:price>999 EUR</g:price></entry>\n'
        "</feed>\n"
    )
    feed = tmp_path / "feed.xml.gz"
    with gzip.open(feed, "wt") as handle:
        handle.write(atom)
    assert detect_format(feed) == "xml"
    (entry,) = _entries(feed)
    offer, _ = offer_from_fields(entry.fields)
    assert (offer["url"], offer["price"], offer["currency"]) == (
        "https://atom.example/80d",
        Decimal("999"),
        "EUR",
    )


def test_xml_entities_are_not_expanded_and_external_ones_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    feed = tmp_path / "evil.xml"
    feed.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY x SYSTEM "{secret.as_uri()}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item>'
        "<title>Camera &x; &b;</title><link>https://e.example/1</link>"
        "</item></channel></rss>\n"
    )
    (entry,) = _entries(feed)
    assert "SECRET" not in str(entry.fields)
    assert "aaaa" not in str(entry.fields)


def test_xml_syntax_error_keeps_the_items_before_it(tmp_path):
    feed = tmp_path / "cut.xml"
    feed.write_text(
        '<rss xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        "<item><title>A</title><link>https://e.example/a</link></item>\n"
        "<item><title>B</title><link>https://e.example/b</link>\n"
        "</channel>\n"
    )
    first, problem = _entries(feed)
    assert first.fields["url"] == "https://e.example/a"
    assert isinstance(problem, FeedProblem) and problem.reason == "malformed"
    assert problem.line == 4


def test_missing_price_is_accepted_only_when_allowed():
    offer = {"title": "Canon EOS 80D", "price": None, "currency": None}
    assert missing_fields(offer) == ["price", "currency"]
    assert missing_fields(offer, allow_missing_price=True) == []
    priced = {"title": "Canon EOS 80D", "price": Decimal(1), "currency": None}
    assert missing_fields(priced, allow_missing_price=True) == ["currency"]


def test_negative_and_non_numeric_prices_are_rejected():
    for price in ("-5 USD", "n/a", True, [1]):
        with pytest.raises(OfferRejected) as caught:
            offer_from_fields({"url": "https://s.example/1", "price": price})
        assert caught.value.reason == "invalid_price"


def test_invalid_gtin_is_left_out_and_noted():
    offer, notes = offer_from_fields({"url": "https://s.example/1", "gtin": "4000000000014"})
    assert offer["gtin"] is None and notes == ["invalid_gtin"]
