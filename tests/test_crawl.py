"""Real crawls of the four demo shops, compared field by field with the shops' own catalog.

With CUMPAIR_DEMO_PORT set (see conftest.py) the crawls use shop configs pointed at that port.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cumpair.demo.catalog import Catalog
from cumpair.demo.server import DEFAULT_PORT
from cumpair.identifiers import normalize_gtin
from cumpair.index import ProductStore
from cumpair_scraper.shopconfig import bundled_configs_on_port

ROOT = Path(__file__).resolve().parents[1]
SHOPS = ("northwind", "bluepeak", "cornerstore", "nebula")
DROPPING_DEFECTS = {"missing_price", "bad_price"}

# Two crawlalls with OCR of every image (the first) in one module: on a busy 2-core machine the
# first alone can pass pytest's default 600 s, so this module allows more.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]


def run_scrapy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `scrapy` command as an operator would, from the project directory."""
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def shop_configs(port: int, folder: Path) -> list[str]:
    """Settings pointing the bundled shop configs at `port` (none for the default port)."""
    if port == DEFAULT_PORT:
        return []
    return ["-s", f"SHOP_CONFIG_DIRS={bundled_configs_on_port(folder, port)}"]


def crawlall(
    out: Path, data: Path, port: int
) -> tuple[dict[str, list[dict]], str, str, dict[str, dict]]:
    """`scrapy crawlall` of every demo shop into `data`; (items by shop, log, stdout, stats by
    shop)."""
    result = run_scrapy(
        "crawlall",
        *shop_configs(port, out / "shops"),
        "--feeds-dir",
        str(out / "feeds"),
        "-s",
        f"INDEX_DATA_DIR={data}",
        "-s",
        f"LOG_FILE={out / 'crawl.log'}",
        "-s",
        "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
        "-s",
        f"STATS_DUMP_FILE={out / 'stats-{spider}.json'}",
        cwd=out,
    )
    log = (out / "crawl.log").read_text() if (out / "crawl.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log[-5000:]
    items = {
        shop: [
            json.loads(line) for line in (out / "feeds" / f"{shop}.jsonl").read_text().splitlines()
        ]
        for shop in SHOPS
    }
    stats = {shop: json.loads((out / f"stats-{shop}.json").read_text()) for shop in SHOPS}
    return items, log, result.stdout, stats


@pytest.fixture(scope="module")
def crawl(demo_server, tmp_path_factory):
    """One `scrapy crawlall` of every demo shop; yields (items by shop, log text, hits, stdout,
    data directory, stats by shop)."""
    out = tmp_path_factory.mktemp("crawl")
    demo_server.reset_hits()
    items, log, stdout, stats = crawlall(out, out / "data", demo_server.port)
    return items, log, list(demo_server.hits), stdout, out / "data", stats


@pytest.mark.parametrize("shop", SHOPS)
def test_crawl_yields_every_valid_offer_exactly_once(crawl, demo_server, shop):
    items, *_ = crawl
    catalog = demo_server.catalog
    expected = {
        demo_server.base_url(shop) + offer.url_path: offer
        for offer in catalog.offers_by_shop(shop)
        if offer.defect not in DROPPING_DEFECTS
    }
    urls = [item["url"] for item in items[shop]]
    assert len(urls) == len(set(urls)) == len(expected)
    assert set(urls) == set(expected)


@pytest.mark.parametrize("shop", SHOPS)
def test_crawled_fields_match_the_catalog(crawl, demo_server, shop):
    items, *_ = crawl
    base = demo_server.base_url(shop)
    offers = {base + offer.url_path: offer for offer in demo_server.catalog.offers_by_shop(shop)}
    for item in items[shop]:
        offer = offers[item["url"]]
        assert item["shop"] == shop
        assert item["title"] == " ".join(offer.title.split())
        assert Decimal(item["price"]) == offer.price
        assert item["currency"] == offer.currency
        if offer.defect == "broken_jsonld":
            assert item["gtin"] is None  # only title and price are in the visible HTML
            continue
        expected_gtin = None if offer.defect == "bad_gtin" else normalize_gtin(offer.gtin_printed)
        assert item["gtin"] == expected_gtin
        assert item["image_urls"][0] == base + offer.image_path(offer.photo_name)
        assert len(item["images"]) == len(item["image_urls"])  # downloaded by the pipeline
        assert item["availability"] == offer.availability
        assert item["brand"] == offer.product.brand
        assert item["model"] == offer.product.model
        assert item["sku"] == offer.sku


def test_crawl_never_fetches_robots_disallowed_paths(crawl):
    _, _, hits, *_ = crawl
    assert {hit.shop for hit in hits} == set(SHOPS)
    assert not [hit for hit in hits if hit.path.startswith("/private/")]


def test_each_photo_is_fetched_once_by_the_images_pipeline_and_never_by_the_browser(crawl):
    """The JavaScript shop's pages render without their images (PLAYWRIGHT_ABORT_REQUEST):
    only the images pipeline asks for a photo, once per crawl."""
    _, _, hits, *_ = crawl
    photos = collections.Counter(
        (hit.shop, hit.path) for hit in hits if hit.path.startswith("/images/")
    )
    assert {shop for shop, _ in photos} == set(SHOPS)
    assert max(photos.values()) == 1


def test_only_the_javascript_shop_starts_playwright(crawl):
    """scrapy-playwright logs each handler it starts (one per scheme, each a node process):
    the browser shop's two, none for the three plain HTTP shops."""
    _, log, _, _, _, _ = crawl
    assert log.count("[scrapy-playwright] INFO: Starting download handler") == 2


def test_malformed_pages_are_logged_drops_not_crashes(crawl, demo_server):
    _, log, _, stdout, *_ = crawl
    catalog = demo_server.catalog
    for offer in catalog.offers:
        if offer.defect in DROPPING_DEFECTS:
            assert offer.url_path in log  # a logged drop with its URL
    assert "Traceback" not in log
    assert "not a valid GTIN" in log
    assert "json-ld" in log
    assert "finish=finished" in stdout


def test_every_crawled_offer_is_indexed_with_vectors_and_specs(crawl):
    items, _, _, _, data, _ = crawl
    crawled = [item for shop_items in items.values() for item in shop_items]
    with ProductStore.open(data, readonly=True) as store:
        health = store.health()
        assert health["offers"] == len(crawled)
        assert health["spaces"]["text"]["vectors"] == len(crawled)
        # every offer has its photo and label embedded
        assert health["spaces"]["image"]["vectors"] == sum(len(i["images"]) for i in crawled)
    for item in crawled:
        assert isinstance(item["specs"], dict)
    labelled = [item for item in crawled if item["specs"].get("dimensions_mm")]
    assert len(labelled) > 0.9 * len(crawled)


def test_each_stage_reports_its_cpu_seconds(crawl):
    """The pipelines' CPU stats that bench/bench_crawl.py sets beside the compute bound; the
    store is closed (regrouped, flushed) once, by the last spider out."""
    *_, stats = crawl
    for shop, shop_stats in stats.items():
        for stage in ("ocr_cpu_s", "embed_cpu_s", "images_cpu_s", "index_cpu_s"):
            assert shop_stats[f"stage/{stage}"] > 0, (shop, stage)
    assert sum("stage/close_cpu_s" in shop_stats for shop_stats in stats.values()) == 1


def test_a_recrawl_of_unchanged_images_runs_no_ocr_or_model_yet_records_every_new_price(
    crawl, demo_server, tmp_path
):
    """Run last in this module: it changes prices on the shared demo server (restored after)."""
    items, _, _, _, data, first_stats = crawl
    assert sum(s.get("specs/ocr_runs", 0) for s in first_stats.values()) > 0
    original = demo_server.catalog
    crawled = {item["url"] for shop_items in items.values() for item in shop_items}
    offers = []
    changed: dict[str, Decimal] = {}  # URL -> new price, three offers of each shop
    for offer in original.offers:
        url = demo_server.base_url(offer.shop) + offer.url_path
        if (
            url in crawled
            and sum(u.startswith(demo_server.base_url(offer.shop)) for u in changed) < 3
        ):
            offer = dataclasses.replace(offer, price=offer.price + Decimal("1.25"))
            changed[url] = offer.price
        offers.append(offer)
    assert len(changed) == 3 * len(SHOPS)
    demo_server.catalog = Catalog(original.seed, original.products, offers)
    try:
        again, _, _, stats = crawlall(tmp_path, data, demo_server.port)
    finally:
        demo_server.catalog = original
    assert {i["url"] for shop_items in again.values() for i in shop_items} == crawled
    for shop, shop_stats in stats.items():
        assert shop_stats.get("specs/ocr_runs", 0) == 0, shop
        assert shop_stats["specs/ocr_cached"] == shop_stats["specs/images_read"] > 0, shop
        assert shop_stats.get("index/embed/images", 0) == 0, shop  # no model ran
        assert shop_stats.get("index/embed/texts", 0) == 0, shop
        assert shop_stats["index/embed/cache_hits"] > 0, shop
    assert sum(s.get("index/price_changed", 0) for s in stats.values()) == len(changed)
    with ProductStore.open(data, readonly=True) as store:
        records = store.get_offers(range(1, 10 * len(crawled)))
        by_url = {record.url: offer_id for offer_id, record in records.items()}
        for url, price in changed.items():
            history = store.price_history(by_url[url])
            assert history[-1].price == price and history[-2].price == price - Decimal("1.25")
