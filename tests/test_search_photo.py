"""Photo and text queries end to end with the real encoders, OCR and a headless Chromium."""

from __future__ import annotations

import contextlib
import io
from decimal import Decimal

import pytest

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_label, render_product_photo
from cumpair.embed.reindex import spaces_for
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.augment import photo_query
from cumpair.search.demo_index import demo_vectors, index_demo_offers
from cumpair.search.products import ProductGroups
from cumpair.search.service import VERIFY_CANDIDATES, SearchService
from cumpair_scraper.settings import PLAYWRIGHT_LAUNCH_OPTIONS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoders():
    from cumpair.embed import load_encoders

    return load_encoders("offline")


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(n_products=24, seed=13)


@pytest.fixture(scope="module")
def vectors(catalog, encoders):
    """Each catalog offer's photo and text vectors, by the offer's identity: embedded once for
    both stores below (the photos' forward passes are most of their set-up)."""
    return {
        id(offer): vector
        for offer, vector in zip(
            catalog.offers, demo_vectors(catalog.offers, encoders), strict=True
        )
    }


@contextlib.contextmanager
def _demo_index(path, offers, encoders, vectors):
    """A store and grouping of `offers` (photos written beside them): (store, groups, ids)."""
    store = ProductStore.open(path, spaces_for(encoders), StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(path)
    try:
        own = [vectors[id(offer)] for offer in offers]
        yield store, groups, index_demo_offers(store, groups, offers, own, write_photos=True)
    finally:
        groups.close()
        store.close()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, catalog, encoders, vectors):
    path = tmp_path_factory.mktemp("index")
    with _demo_index(path, catalog.offers, encoders, vectors) as opened:
        yield opened


@pytest.fixture(scope="module")
def service(indexed, encoders):
    store, groups, _ = indexed
    loads = []

    def loader():
        loads.append(1)
        return encoders

    service = SearchService(store, groups, encoder_loader=loader)
    service.loads = loads
    return service


def _subject(offer):
    """The product cut out of its clip-art (RGBA), for queries on a new background."""
    from PIL import Image

    with Image.open(offer.product.clipart) as art:
        subject = art.convert("RGBA")
    return subject.crop(subject.getchannel("A").getbbox())


def test_transformed_shop_photos_find_their_product_first(service, catalog, indexed):
    """bench/eval_matching.py's photo protocol on a fixed catalog: every offer indexed, each
    query a shop photo through 2-3 of crop, rotation, blur, JPEG, lighting (one in three on a
    new background first); the issue's floor is recall@1 0.9."""
    _, groups, ids = indexed
    product_of = groups.product_of(ids)
    store_id = {id(offer): offer_id for offer_id, offer in ids.items()}
    offers = catalog.offers[::2]
    found = 0
    for n, offer in enumerate(offers):
        image, _ = photo_query(render_product_photo(offer), seed=n, subject=_subject(offer))
        response = service.search_image(image, k=5)
        found += response.products[0].product_id == product_of[store_id[id(offer)]]
    assert found / len(offers) >= 0.9


@pytest.fixture(scope="module")
def one_photo_per_product(tmp_path_factory, catalog, encoders, vectors):
    """A service over one shop's offer per product: queries come from another shop's photo."""
    firsts = [catalog.offers_for_product(p.product_id)[0] for p in catalog.products]
    path = tmp_path_factory.mktemp("one-photo")
    with _demo_index(path, firsts, encoders, vectors) as (store, groups, ids):
        product_ids = {o.product_id: groups.product_of([i])[i] for i, o in ids.items()}
        service = SearchService(store, groups, encoder_loader=lambda: encoders, ocr=False)
        yield service, product_ids


def _cross_shop_queries(catalog):
    """Per product, its second shop's photo as a shopper would take it (fixed seeds), with the
    product cut out of its clip-art so one query in three lands on a new background."""
    queries = []
    for n, product in enumerate(catalog.products):
        offer = catalog.offers_for_product(product.product_id)[1]
        image, _ = photo_query(render_product_photo(offer), seed=100 + n, subject=_subject(offer))
        queries.append((offer.product_id, image))
    return queries


def test_another_shops_transformed_photo_finds_the_product_first(one_photo_per_product, catalog):
    service, product_ids = one_photo_per_product
    queries = _cross_shop_queries(catalog)
    found = sum(
        service.search_image(image, k=1).products[0].product_id == product_ids[truth]
        for truth, image in queries
    )
    assert found / len(queries) >= 0.9


def _in_a_busy_scene(photo, n):
    """The photo shrunk into one of scikit-image's real photos, as if held up in a room."""
    import random

    from PIL import Image
    from skimage import data

    rng = random.Random(n)
    scene = Image.fromarray((data.coffee, data.astronaut, data.chelsea)[n % 3]()).resize((720, 720))
    side = rng.randint(300, 420)
    corner = (rng.randint(0, 720 - side), rng.randint(0, 720 - side))
    scene.paste(photo.resize((side, side)), corner)
    return scene


def test_multi_view_query_finds_more_products_in_busy_scenes_than_the_photo_alone(
    one_photo_per_product, catalog
):
    """Without keypoints to lean on, windows of a cluttered scene find the product where the
    photo's own vector (framed on the scene's largest smooth region) often does not."""
    service, product_ids = one_photo_per_product
    seconds = [catalog.offers_for_product(p.product_id)[1] for p in catalog.products]
    queries = [
        (offer.product_id, _in_a_busy_scene(render_product_photo(offer), n))
        for n, offer in enumerate(seconds)
    ]
    found = {}
    try:
        service.verify_candidates = 0
        for views in (False, True):
            service.query_views = views
            found[views] = sum(
                service.search_image(image, k=1).products[0].product_id == product_ids[truth]
                for truth, image in queries
            )
    finally:
        service.query_views, service.verify_candidates = True, VERIFY_CANDIDATES
    assert found[True] > found[False]


def test_a_label_photo_is_read_and_its_gtin_ranks_the_product_first(service, catalog, indexed):
    _, groups, ids = indexed
    offer_id, offer = next((i, o) for i, o in ids.items() if o.gtin_printed and not o.defect)
    label, truth = render_label(offer)
    response = service.search_image(label, k=3)
    assert response.facts.get("gtin") == truth["gtin"]
    top = response.products[0]
    assert top.product_id == groups.product_of([offer_id])[offer_id]
    assert any("read from the query" in reason for reason in top.reasons)


def test_text_query_with_a_model_number_finds_the_product(service, catalog, indexed):
    _, groups, ids = indexed
    offer_id, offer = next(iter(ids.items()))
    product = offer.product
    response = service.search_text(f"{product.name} {product.model}", k=3)
    assert response.products[0].product_id == groups.product_of([offer_id])[offer_id]


def test_text_query_by_words_alone_finds_the_product_in_the_top_results(service, indexed):
    _, groups, ids = indexed
    offer_id, offer = next(iter(ids.items()))
    product = offer.product
    response = service.search_text(f"{product.brand} {product.name.lower()}", k=5)
    wanted = groups.product_of([offer_id])[offer_id]
    assert wanted in [p.product_id for p in response.products]


def test_text_search_respects_max_price(service):
    response = service.search_text("cordless drill", k=5, max_price=Decimal("50"))
    assert all(o.price <= 50 for p in response.products for o in p.offers)


def test_models_load_once_per_service(service):
    service.search_text("lamp")
    service.search_text("stapler")
    assert len(service.loads) == 1


@pytest.mark.integration
async def test_upload_page_shows_the_comparison_table_in_chromium(service, catalog, tmp_path):
    from aiohttp import web
    from playwright.async_api import async_playwright

    from cumpair.search.server import create_app

    offer = next(o for o in catalog.offers if len(catalog.offers_for_product(o.product_id)) >= 3)
    photo = tmp_path / "query.jpg"
    buffer = io.BytesIO()
    photo_query(render_product_photo(offer), seed=1)[0].save(buffer, "JPEG")
    photo.write_bytes(buffer.getvalue())

    runner = web.AppRunner(create_app(service, warm=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**PLAYWRIGHT_LAUNCH_OPTIONS)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.set_input_files("#image", str(photo))
            await page.click("#go")
            await page.wait_for_selector("li.result", timeout=60_000)
            assert await page.get_attribute("#preview", "src")  # the photo searched for
            first = page.locator("li.result").first
            assert offer.product.model in (await first.inner_text())
            await first.locator("a.product-link").click()
            await page.wait_for_selector("table.offers tr.offer")
            prices = await page.eval_on_selector_all(
                "tr.offer td[data-label=Price] .price", "els => els.map(e => e.dataset.price)"
            )
            values = [Decimal(p) for p in prices]
            assert len(values) >= 3 and values == sorted(values)
            await browser.close()
    finally:
        await runner.cleanup()
