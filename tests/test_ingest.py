"""`cumpair ingest` end to end with the bundled offline encoders: all four feed forms into one
store, drops reported by reason and line, idempotent re-runs, offers without a price."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from cumpair.cli import main as cumpair_main
from cumpair.embed import load_encoders
from cumpair.index import ProductStore
from cumpair.ingest.runner import IngestOptions, ingest
from cumpair.search.export import product_dicts
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import scan_offers

pytestmark = pytest.mark.slow

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
ALL = ["items.jl", "items.csv", "merchant.xml", "merchant.tsv"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def encoders():
    return load_encoders("offline", backend="torch", threads=1)


@pytest.fixture
def feeds(tmp_path) -> list[Path]:
    """The fixture feeds copied beside their photo, in a directory of the test's own."""
    folder = tmp_path / "feeds"
    shutil.copytree(FEEDS, folder)
    return [folder / name for name in ALL]


def _run(feeds, index, encoders, **options):
    options.setdefault("ocr", False)  # OCR of the drawn photo adds seconds and no facts
    return ingest(feeds, index, IngestOptions(**options), encoders=encoders)


def _products(index: Path) -> list[dict]:
    with (
        ProductStore.open(index, readonly=True) as store,
        ProductGroups.open(index, readonly=True) as groups,
    ):
        return list(product_dicts(store, groups))


def _membership(products: list[dict]) -> list[tuple]:
    return sorted((p["product_id"], sorted(o["url"] for o in p["offers"])) for p in products)


def test_all_formats_are_ingested_and_drops_reported_by_reason_and_line(tmp_path, feeds, encoders):
    report = _run(feeds, tmp_path / "index", encoders)
    assert report.rows == 17
    assert (report.new, report.updated) == (10, 0)
    assert report.dropped == {
        "malformed": 2,
        "missing_title": 1,
        "missing_price": 1,
        "invalid_price": 1,
        "missing_url": 1,
        "invalid_currency": 1,
    }
    assert report.examples["malformed"][0].startswith("items.jl:3: not JSON")
    assert report.examples["malformed"][1].startswith("items.csv:5: ")
    assert report.examples["missing_price"] == ["items.jl:6: no usable price, currency"]
    assert "merchant.xml:36" in report.examples["missing_url"][0]
    summary = report.summary()
    assert "dropped 2 x malformed" in summary and "items.tsv" not in summary
    # The two offers naming photo.png (a path relative to their feed) have its photo.
    assert report.images == 2 and not report.image_errors
    with ProductStore.open(tmp_path / "index", readonly=True) as store:
        records = {r.url: r for r in scan_offers(store)}
        assert store.count("image") == 2
    photo = records["https://aden.example/canon-eos-80d-body"].image_paths[0]
    assert Path(photo).is_file() and Path(photo).parent.name == "full"
    assert records["https://eisf.example/canon-eos-80d"].shop == "eisf.example"


def test_offers_of_one_product_across_feeds_form_one_product(tmp_path, feeds, encoders):
    _run(feeds, tmp_path / "index", encoders)
    by_gtin = {p["gtin"]: p for p in _products(tmp_path / "index") if p["gtin"]}
    eos = by_gtin["4000000000013"]
    assert sorted(o["shop"] for o in eos["offers"]) == ["aden", "eisf.example", "uniquephoto"]
    prices = [o["price"] for o in eos["offers"]]
    assert prices == ["1049.00", "1099.00", "1199.00"]  # cheapest first


def test_second_run_of_the_same_feeds_updates_and_never_duplicates(tmp_path, feeds, encoders):
    index = tmp_path / "index"
    _run(feeds, index, encoders)
    before = _products(index)
    again = _run(feeds, index, encoders)
    assert (again.new, again.updated) == (0, 10)
    after = _products(index)
    assert len(after) == len(before)
    assert _membership(after) == _membership(before)
    offers = [o for p in after for o in p["offers"]]
    assert len(offers) == len({(o["shop"], o["url"]) for o in offers}) == 10
    assert all(o["crawls"] == 2 for o in offers)  # one more price point each


def test_offer_without_price_is_kept_for_grouping_but_never_cheapest(tmp_path, feeds, encoders):
    index = tmp_path / "index"
    report = _run(feeds, index, encoders, allow_missing_price=True)
    assert report.new == 11 and "missing_price" not in report.dropped
    assert report.notes["price_unknown"] == 1
    eos = next(p for p in _products(index) if p["gtin"] == "4000000000013")
    assert [o["shop"] for o in eos["offers"]][-1] == "fumfie"  # joined the product by its GTIN
    assert eos["offers"][-1]["price"] is None and eos["offers"][0]["price"] == "1049.00"
    assert eos["lowest_price_seen"] == "1049.00"


def test_specs_are_read_from_the_photo_as_the_crawl_reads_them(tmp_path, encoders):
    label = Image.new("RGB", (640, 200), "white")
    ImageDraw.Draw(label).text(
        (30, 60), "1200 W  230 V", fill="black", font=ImageFont.truetype(FONT, 64)
    )
    label.save(tmp_path / "label.png")
    feed = tmp_path / "feed.jl"
    offer = {"shop": "s", "url": "https://s.example/drill", "title": "Bosch hammer drill",
             "price": "89.00", "currency": "EUR", "image_urls": ["label.png"]}  # fmt: skip
    feed.write_text(json.dumps(offer) + "\n")
    report = _run([feed], tmp_path / "index", encoders, ocr=True)
    assert report.new == 1 and not report.image_errors
    with ProductStore.open(tmp_path / "index", readonly=True) as store:
        (record,) = scan_offers(store)
    assert record.specs["power_w"] == 1200 and record.specs["voltage_v"] == 230


def test_cli_ingest_then_products_json(tmp_path, feeds, encoders, capsys, monkeypatch):
    monkeypatch.setattr("cumpair.ingest.cli.load_index_encoders", lambda args: encoders)
    index = tmp_path / "index"
    code = cumpair_main(["ingest", "--index", str(index), "--no-ocr", *map(str, feeds)])
    out = capsys.readouterr().out
    assert code == 0 and "10 offers stored (10 new, 0 updated)" in out
    assert cumpair_main(["products", "--index", str(index), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    products = [json.loads(line) for line in lines]
    assert sum(len(p["offers"]) for p in products) == 10
    assert {"product_id", "title", "brand", "model", "gtin", "offers"} <= set(products[0])


def test_cli_reports_an_unreadable_feed_before_writing(tmp_path, capsys):
    index = tmp_path / "index"
    bad = tmp_path / "feed.parquet"
    bad.write_bytes(b"")
    assert cumpair_main(["ingest", "--index", str(index), str(bad)]) == 2
    assert "empty" in capsys.readouterr().err
    assert not index.exists()
    assert cumpair_main(["ingest", "--index", str(index), str(tmp_path / "nope.jl")]) == 2
