"""SpecsPipeline in isolation: a real Scrapy crawler, real image files in IMAGES_STORE."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_label, render_product_photo
from cumpair_scraper.items import ProductItem
from cumpair_scraper.pipelines.specs import SpecsPipeline


@pytest.fixture(scope="module")
def offer():
    return build_catalog().offers[0]  # northwind, metric label, with GTIN


@pytest.fixture
def store(tmp_path, offer):
    """An IMAGES_STORE laid out as ImagesPipeline leaves it: full/<sha1>.jpg."""
    (tmp_path / "full").mkdir()
    render_product_photo(offer).save(tmp_path / "full" / "photo.jpg", "JPEG")
    render_label(offer)[0].save(tmp_path / "full" / "label.jpg", "JPEG", quality=95)
    (tmp_path / "full" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return tmp_path


def make_pipeline(store, **settings) -> tuple[SpecsPipeline, object]:
    crawler = get_crawler(settings_dict={"IMAGES_STORE": str(store), **settings})
    crawler.stats.open_spider()
    pipeline = SpecsPipeline.from_crawler(crawler)
    pipeline.spider_opened()
    return pipeline, crawler


def make_item(offer, images: list[str], **fields) -> ProductItem:
    product = offer.product
    values = {
        "shop": offer.shop,
        "url": f"http://127.0.0.21:8070/p/{offer.sku}",
        "title": f"{product.brand} {product.name} {product.model}",
        "price": Decimal("19.99"),
        "currency": "EUR",
        "brand": product.brand,
        "model": product.model,
        "description": f"{product.name}. Colour: {', '.join(product.colors)}.",
        "image_urls": [f"http://127.0.0.21:8070/images/{name}" for name in images],
        "images": [
            {
                "url": f"http://127.0.0.21:8070/images/{name}",
                "path": f"full/{name}",
                "checksum": "x",
                "status": "downloaded",
            }
            for name in images
        ],
    }
    values.update(fields)
    return ProductItem(**values)


async def test_item_gets_page_and_label_facts_and_photo_colours(store, offer):
    pipeline, crawler = make_pipeline(store)
    item = await pipeline.process_item(make_item(offer, ["photo.jpg", "label.jpg"]))
    specs = ItemAdapter(item)["specs"]
    _, truth = render_label(offer)
    assert specs["brand"] == truth["brand"] and specs["model"] == truth["model"]
    assert specs["weight_g"] == pytest.approx(truth["weight_g"], rel=0.005)
    assert specs["dimensions_mm"] == pytest.approx(truth["dimensions_mm"], rel=0.005)
    assert specs["gtin"] == truth["gtin"]
    assert specs["colors"] == truth["colors"]
    assert specs["dominant_colors"][0]["name"] and 0 < specs["dominant_colors"][0]["fraction"] <= 1
    assert item.spec_conflicts == []
    assert crawler.stats.get_value("specs/images_read") == 2
    assert crawler.stats.get_value("specs/items") == 1
    pipeline.spider_closed()


async def test_page_wins_on_conflict_and_the_conflict_is_recorded(store, offer):
    pipeline, crawler = make_pipeline(store)
    item = make_item(offer, ["label.jpg"], description="Weight: 9.99 kg", model="ZZ-999")
    item = await pipeline.process_item(item)
    assert item.specs["weight_g"] == 9990 and item.specs["model"] == "ZZ-999"
    conflicts = {c["field"]: c for c in item.spec_conflicts}
    assert set(conflicts) == {"weight_g", "model"}
    assert conflicts["model"]["image"] == offer.product.model
    assert conflicts["model"]["image_url"].endswith("label.jpg")
    assert crawler.stats.get_value("specs/conflicts") == 2
    pipeline.spider_closed()


async def test_bad_and_missing_images_are_counted_and_the_item_goes_on(store, offer):
    pipeline, crawler = make_pipeline(store, SPECS_MAX_IMAGES_PER_ITEM=3)
    item = make_item(offer, ["broken.jpg", "gone.jpg", "label.jpg"])
    item = await pipeline.process_item(item)
    assert crawler.stats.get_value("specs/image_errors") == 2
    assert item.specs["gtin"] == render_label(offer)[1]["gtin"]
    pipeline.spider_closed()


async def test_extraction_runs_off_the_event_loop_in_a_bounded_pool(store, offer):
    pipeline, _ = make_pipeline(store, SPECS_MAX_WORKERS=1)
    ticks = 0

    async def heartbeat():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    await asyncio.gather(
        *(pipeline.process_item(make_item(offer, ["label.jpg"])) for _ in range(3))
    )
    elapsed = time.perf_counter() - started
    beat.cancel()
    # The loop kept ticking while three reads ran one at a time in the single worker.
    assert ticks >= 0.5 * elapsed / 0.01
    pipeline.spider_closed()


async def test_slow_image_times_out_instead_of_stalling(store, offer, monkeypatch):
    import cumpair_scraper.pipelines.specs as module

    monkeypatch.setattr(module, "read_image_specs", lambda *a, **k: time.sleep(2))
    pipeline, crawler = make_pipeline(store, SPECS_IMAGE_TIMEOUT=0.2)
    started = time.perf_counter()
    item = await pipeline.process_item(make_item(offer, ["label.jpg"]))
    assert time.perf_counter() - started < 1.5
    assert crawler.stats.get_value("specs/image_errors") == 1
    assert item.specs["brand"] == offer.product.brand  # page facts still there
    pipeline.spider_closed()


def test_disabled_pipeline_is_not_configured(store):
    with pytest.raises(NotConfigured):
        make_pipeline(store, SPECS_ENABLED=False)


async def test_item_without_images_gets_page_specs(store, offer):
    pipeline, _ = make_pipeline(store)
    item = await pipeline.process_item(make_item(offer, [], description="Capacity: 1.5 L"))
    assert item.specs["volume_ml"] == 1500 and "dominant_colors" not in item.specs
    pipeline.spider_closed()


async def test_a_label_that_refines_the_page_is_merged_not_a_conflict(store, offer):
    pipeline, crawler = make_pipeline(store)
    page = "Materials: ABS plastic and aluminium."
    item = await pipeline.process_item(make_item(offer, ["label.jpg"], description=page))
    assert item.spec_conflicts == []
    assert crawler.stats.get_value("specs/conflicts") is None
    percents = {m["name"].lower(): m["percent"] for m in item.specs["materials"]}
    assert percents == {"abs plastic": 75, "aluminium": 25}  # the label's finer statement
    pipeline.spider_closed()


async def test_an_image_read_before_runs_no_ocr_even_from_another_item(store, offer, tmp_path):
    pipeline, crawler = make_pipeline(store, INDEX_DATA_DIR=str(tmp_path / "data"))
    first = await pipeline.process_item(make_item(offer, ["photo.jpg", "label.jpg"]))
    pipeline.spider_closed()
    assert crawler.stats.get_value("specs/ocr_runs") == 1  # the label
    assert crawler.stats.get_value("specs/ocr_gated") == 1  # the photo shows no text line
    pipeline, crawler = make_pipeline(store, INDEX_DATA_DIR=str(tmp_path / "data"))
    again = await pipeline.process_item(make_item(offer, ["photo.jpg", "label.jpg"]))
    pipeline.spider_closed()
    assert crawler.stats.get_value("specs/ocr_runs") is None
    assert crawler.stats.get_value("specs/ocr_cached") == 2
    assert crawler.stats.get_value("stage/ocr_s") > 0
    assert again.specs == first.specs
