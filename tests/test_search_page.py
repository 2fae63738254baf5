"""The pages of `cumpair serve` over a real store: search, the product page, its chart and
JSON, photos, watches; and in real Chromium at desktop and phone widths."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp import web

from cumpair.demo.catalog import build_catalog
from cumpair.index import PricePoint, ProductStore, StoreOptions
from cumpair.search.chart import price_chart_svg
from cumpair.search.demo_index import demo_offer_record, demo_photo_path, index_demo_offers
from cumpair.search.formatting import money_text, when_text
from cumpair.search.products import ProductGroups
from cumpair.search.server import create_app
from cumpair.search.service import SearchService
from cumpair.search.views import PriceSeries, recent_trend

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
CUT = Decimal("10.00")  # the third crawl's price cut at the product's dearest shop


def _no_models():
    raise AssertionError("these queries must not load models")


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(n_products=6, seed=9)


@pytest.fixture(scope="module")
def product(catalog):
    """The first product sold by three shops (the one the tests look at)."""
    return next(p for p in catalog.products if len(catalog.offers_for_product(p.product_id)) >= 3)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, catalog, product):
    """Three crawls ten days apart; at the third the dearest shop of `product` cuts its price."""
    path = tmp_path_factory.mktemp("store")
    store = ProductStore.open(path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(path)
    index_demo_offers(store, groups, catalog.offers, seen_at=T0, write_photos=True)
    offers = catalog.offers_for_product(product.product_id)
    dearest = max(offers, key=lambda o: o.price)
    for crawl in (1, 2):
        for offer in offers:
            price = offer.price - CUT if crawl == 2 and offer is dearest else offer.price
            record = demo_offer_record(offer, price=price, seen_at=T0 + timedelta(days=10 * crawl))
            record.image_paths = (demo_photo_path(offer),)  # the photos stay as crawled
            store.upsert(record, {})
    groups.close()
    store.close()
    return path


@pytest.fixture
def service(store_dir):
    store = ProductStore.open(store_dir, readonly=True)
    groups = ProductGroups.open(store_dir, readonly=True)
    yield SearchService(store, groups, encoder_loader=_no_models)
    groups.close()
    store.close()


@pytest.fixture
async def client(aiohttp_client, service):
    return await aiohttp_client(create_app(service, warm=False))


async def _product_id(client, product) -> int:
    body = await (await client.get("/search", params={"gtin": product.gtin})).json()
    return body["products"][0]["product_id"]


# -- pure parts ------------------------------------------------------------------------------


def _points(*prices, days=10):
    return [
        PricePoint(Decimal(p), "EUR", "InStock", T0 + timedelta(days=days * n))
        for n, p in enumerate(prices)
    ]


def test_recent_trend_is_the_median_of_earlier_prices_within_thirty_days():
    assert recent_trend(_points("100", "90", "200", "50"), "EUR") == Decimal("100")
    assert recent_trend(_points("100", "80", "50"), "EUR") == Decimal("90")  # even: the mean of two
    assert recent_trend(_points("100", "50"), "EUR") is None  # one earlier price is no trend
    # Prices older than 30 days before the latest crawl do not count.
    assert recent_trend(_points("100", "100", "50", days=20), "EUR") is None
    assert recent_trend(_points("100", "100", "50"), "USD") is None


def test_prices_and_times_read_as_people_write_them():
    assert money_text(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert money_text(Decimal("-3"), "USD") == "-$3.00"
    assert money_text(Decimal("1234.5"), "JPY") == "¥1,234"
    assert money_text(Decimal("9.9"), "CHF") == "9.90 CHF"
    assert money_text(None, "EUR") == "-"
    assert when_text(datetime(2026, 12, 1, 14, 30, 59, 123456, tzinfo=UTC)) == (
        "2026-12-01 14:30 UTC"
    )


def test_chart_draws_one_line_per_shop_and_marks_the_cheapest():
    series = [
        PriceSeries(1, "a<b", "EUR", [(T0, Decimal("10")), (T0 + timedelta(1), Decimal("9"))],
                    None, False),
        PriceSeries(2, "b", "EUR", [(T0, Decimal("12"))], None, False),
        PriceSeries(3, "c", "EUR", [], None, False),  # nothing priced: no line
    ]  # fmt: skip
    svg = str(price_chart_svg(series, cheapest_offer_id=1))
    assert svg.count("<polyline") == 2
    assert len(re.findall(r'class="series cheapest"', svg)) == 1
    assert 'data-shop="a&lt;b"' in svg  # shop names are escaped
    assert "No price history" in str(price_chart_svg([], None))


# -- the pages over HTTP ---------------------------------------------------------------------


async def test_search_page_shows_photo_specs_cheapest_offer_and_shop_count(client, product):
    reply = await client.get("/", params={"gtin": product.gtin})
    assert reply.status == 200
    html = await reply.text()
    assert '<meta name="viewport"' in html
    (result,) = re.findall(r'<li class="result".*?</li>', html, re.S)
    assert re.search(r'<img class="result-photo" src="/images/\d+/0"', result)
    assert "3 shops" in result and product.brand in result
    assert 'class="cheapest"' in result and 'class="key-specs"' in result


async def test_search_api_filters_by_availability(client, catalog, product):
    offers = catalog.offers_for_product(product.product_id)
    kept = offers[0].availability
    body = await (
        await client.get("/search", params={"gtin": product.gtin, "availability": kept})
    ).json()
    (found,) = body["products"]
    assert {o["availability"] for o in found["offers"]} == {kept}
    assert len(found["offers"]) == sum(o.availability == kept for o in offers)


async def test_search_page_filters_by_shop_and_availability(client, catalog, product):
    offers = catalog.offers_for_product(product.product_id)
    shop = offers[0].shop
    html = await (await client.get("/", params={"gtin": product.gtin, "shop": shop})).text()
    assert "1 shop<" in html and f"at {shop}" in html
    missing = next(a for a in ("InStock", "OutOfStock", "PreOrder")
                   if all(o.availability != a for o in offers))  # fmt: skip
    html = await (
        await client.get("/", params={"gtin": product.gtin, "availability": missing})
    ).text()
    assert "0 products found" in html


async def test_bad_search_on_the_page_is_a_400_with_the_reason(client):
    reply = await client.get("/", params={"gtin": "123"})
    assert reply.status == 400
    assert "not a valid GTIN" in await reply.text()


async def test_product_page_has_offers_cheapest_first_chart_per_shop_and_a_deal(client, product):
    product_id = await _product_id(client, product)
    html = await (await client.get(f"/p/{product_id}")).text()
    rows = re.findall(r'<tr class="offer( cheapest)?" data-shop="(\w+)">(.*?)</tr>', html, re.S)
    assert len(rows) == 3 and rows[0][0] == " cheapest" and not any(r[0] for r in rows[1:])
    prices = [Decimal(re.search(r'data-price="([\d.]+)"', r[2]).group(1)) for r in rows]
    assert prices == sorted(prices)
    assert html.count("<polyline") == 3 and html.count('class="series cheapest"') == 1
    # Only the shop that cut its price under its own 20-day median shows a deal.
    assert sum('class="badge deal"' in r[2] for r in rows) == 1
    assert re.search(r'<img class="product-photo" src="/images/\d+/0"', html)
    assert 'class="specs"' in html and "Visit shop" in html
    assert '<time datetime="2026-11-21T12:00:00+00:00">2026-11-21 12:00 UTC</time>' in html


async def test_product_and_history_json(client, product):
    product_id = await _product_id(client, product)
    body = await (await client.get(f"/products/{product_id}")).json()
    assert body["shops"] == 3 and body["cheapest_offer_id"] == body["offers"][0]["offer_id"]
    assert body["photos"] and body["spec_table"]
    assert [o["deal"] for o in body["offers"]].count(True) == 1
    history = await (await client.get(f"/products/{product_id}/history")).json()
    assert history["trend"] == {"days": 30, "min_points": 2, "statistic": "median"}
    assert [len(s["points"]) for s in history["series"]] == [3, 3, 3]
    deal = next(s for s in history["series"] if s["deal"])
    assert Decimal(deal["points"][-1]["price"]) == Decimal(deal["trend"]) - CUT
    assert (await client.get("/products/999999/history")).status == 404
    bad = await client.get("/products/abc/history")
    assert bad.status == 400 and "integer" in (await bad.json())["error"]
    assert (await client.get("/p/999999")).status == 404


async def test_photos_are_served_from_the_store_with_cache_headers(client, product):
    product_id = await _product_id(client, product)
    body = await (await client.get(f"/products/{product_id}")).json()
    reply = await client.get(body["photos"][0])
    assert reply.status == 200 and reply.content_type == "image/png"
    assert "max-age" in reply.headers["Cache-Control"]
    assert (await reply.read()).startswith(b"\x89PNG")
    assert (await client.get("/images/1/5")).status == 404
    assert (await client.get("/images/x/0")).status == 400
    assert (await client.get("/static/style.css")).headers["Cache-Control"].startswith("public")


async def test_watches_from_the_product_page_and_the_json_api(client, product):
    product_id = await _product_id(client, product)
    reply = await client.post(
        f"/p/{product_id}/watch",
        data={"below": "50", "webhook": "http://127.0.0.1:9/hook"},
        allow_redirects=False,
    )
    assert reply.status == 303 and reply.headers["Location"].endswith("watched=1")
    reply = await client.post("/watches", json={"reference": product.gtin, "drop_pct": 10,
                                                "email": "me@example.org"})  # fmt: skip
    assert reply.status == 201 and (await reply.json())["kind"] == "gtin"
    watches = await (await client.get("/watches")).json()
    assert [(w["kind"], w["below"]) for w in watches] == [("product", "50"), ("gtin", None)]
    bad = await client.post(
        "/watches", json={"reference": "x y", "below": 1, "webhook": "http://h"}
    )
    assert bad.status == 400 and "no product id" in (await bad.json())["error"]
    unknown = await client.post("/watches", json={"reference": "999999", "below": 1,
                                                  "webhook": "http://h"})  # fmt: skip
    assert unknown.status == 400 and "no product 999999" in (await unknown.json())["error"]
    assert (await client.delete("/watches/1")).status == 200
    assert (await client.delete("/watches/1")).status == 404


# -- in a real browser -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(service):
    """`cumpair serve`'s app on a spare port in a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(service, warm=False))
    port = _free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("width", [1280, 390])
def test_a_shopper_finds_a_product_and_compares_it_in_chromium(
    live_server, store_dir, product, tmp_path, width
):
    sync_api = pytest.importorskip("playwright.sync_api")
    from cumpair_scraper.settings import PLAYWRIGHT_LAUNCH_OPTIONS

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(**PLAYWRIGHT_LAUNCH_OPTIONS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(live_server + "/")
            assert not page.is_visible("#preview")
            photo = next((store_dir / "images" / "full").glob("*.png"))
            page.set_input_files("#image", str(photo))  # previewed, not sent yet
            assert page.is_visible("#preview")
            assert page.get_attribute("#preview", "src").startswith("blob:")
            page.set_input_files("#image", [])
            page.fill("#gtin", product.gtin)
            page.click("#go")
            page.wait_for_selector("li.result")
            assert f"gtin={product.gtin}" in page.url  # a text/GTIN search is a shareable GET
            page.screenshot(path=str(tmp_path / f"search-{width}.png"), full_page=True)
            assert page.locator("li.result").count() == 1
            assert page.eval_on_selector("img.result-photo", "img => img.naturalWidth") > 0
            assert "3 shops" in page.text_content("li.result .shop-count")

            page.click("a.product-link")
            page.wait_for_selector("svg.price-chart")
            page.screenshot(path=str(tmp_path / f"product-{width}.png"), full_page=True)
            assert product.brand in page.text_content("#product-title") or product.brand in (
                page.text_content(".identity")
            )
            assert page.eval_on_selector("img.product-photo", "img => img.naturalWidth") > 0
            assert page.locator("table.specs tr.spec").count() >= 1
            assert page.locator("svg.price-chart polyline.series").count() == 3
            assert page.locator("svg.price-chart polyline.series.cheapest").count() == 1
            cheapest = page.locator("tr.offer").first
            assert "cheapest" in cheapest.get_attribute("class")
            assert cheapest.locator(".best-badge").is_visible()
            # The script localised the times: no raw ISO text and no "UTC" fallback left.
            shown = page.text_content("table.offers")
            assert "T12:00:00" not in shown and "UTC" not in shown
            # Nothing wider than the window: the page reads at 390 px without sideways scroll.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
        finally:
            browser.close()
    assert (tmp_path / f"product-{width}.png").stat().st_size > 0


def test_the_pages_need_nothing_from_the_network():
    """Every asset a page links is served by the app itself (no CDN)."""
    from cumpair.search import pages

    env = pages._ENV
    for name in ("base.html", "search.html", "product.html"):
        source = env.loader.get_source(env, name)[0]
        assert not re.search(r'(src|href)="(https?:)?//', source), name
