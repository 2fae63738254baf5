"""The `cumpair serve` JSON API over a real store, through aiohttp's test client."""

from __future__ import annotations

import pytest
from aiohttp import FormData

from cumpair.demo.catalog import build_catalog
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.demo_index import index_demo_offers
from cumpair.search.products import ProductGroups
from cumpair.search.server import SERVICE, create_app
from cumpair.search.service import SearchService


def _no_models():
    raise AssertionError("GTIN queries must not load models")


@pytest.fixture
def catalog():
    return build_catalog(n_products=12, seed=9)


@pytest.fixture
async def client(aiohttp_client, tmp_path, catalog):
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    index_demo_offers(store, groups, catalog.offers)
    service = SearchService(store, groups, encoder_loader=_no_models)
    yield await aiohttp_client(create_app(service, warm=False))
    groups.close()
    store.close()


async def test_health_reports_products_and_store(client, catalog):
    reply = await client.get("/health")
    assert reply.status == 200
    body = await reply.json()
    assert body["status"] == "ok"
    assert body["products"] == len(catalog.products)
    assert body["grouped_offers"] == len(catalog.offers)
    assert body["models_loaded"] is False


async def test_search_by_gtin_returns_offers_cheapest_first(client, catalog):
    product = catalog.products[0]
    reply = await client.get("/search", params={"gtin": product.gtin, "explain": "1"})
    assert reply.status == 200
    body = await reply.json()
    (found,) = body["products"]
    # cheapest first within each rank group (in stock before out of stock, see test_ranking)
    ranked = [(o["rank_group"], float(o["price"])) for o in found["offers"]]
    order = {group: n for n, group in enumerate(dict.fromkeys(g for g, _ in ranked))}
    assert ranked == sorted(ranked, key=lambda pair: (order[pair[0]], pair[1]))
    assert {o["shop"] for o in found["offers"]} == {
        o.shop for o in catalog.offers_for_product(product.product_id)
    }
    assert all("explanation" in o for o in found["offers"])


async def test_product_endpoint_and_its_errors(client, catalog):
    body = await (await client.get("/search", params={"gtin": catalog.products[1].gtin})).json()
    product_id = body["products"][0]["product_id"]
    reply = await client.get(f"/products/{product_id}")
    assert reply.status == 200
    assert (await reply.json())["product_id"] == product_id
    assert (await client.get("/products/999999")).status == 404
    assert (await client.get("/products/abc")).status == 400


@pytest.mark.parametrize(
    "params",
    [{}, {"gtin": "123"}, {"gtin": "4006381333931", "k": "0"}, {"gtin": "x", "max_price": "-1"}],
)
async def test_bad_queries_get_400_with_a_message(client, params):
    reply = await client.get("/search", params=params)
    assert reply.status == 400
    assert (await reply.json())["error"]


async def test_uploading_something_that_is_not_an_image_is_a_400(client):
    reply = await client.post("/search", data={"image": "a plain form value"})
    assert reply.status == 400
    assert "uploaded file" in (await reply.json())["error"]
    form = FormData()
    form.add_field("image", b"GIF89a broken", filename="x.gif", content_type="image/gif")
    reply = await client.post("/search", data=form)
    assert reply.status == 400
    assert "image" in (await reply.json())["error"]


async def test_page_has_an_upload_form(client):
    reply = await client.get("/")
    assert reply.status == 200
    html = await reply.text()
    assert 'type="file"' in html and "/search" in html


async def test_a_broken_upload_is_answered_as_an_unusable_image(client):
    form = FormData()
    form.add_field("image", b"\x89PNG\r\n\x1a\n cut short", filename="x.png")
    reply = await client.post("/search", data=form)
    assert reply.status == 400
    assert (await reply.json())["error"].startswith("unusable image: ")


async def test_a_bad_text_query_gets_its_own_reason_not_unusable_image(client):
    reply = await client.get("/search", params={"text": "   "})
    assert reply.status == 400
    assert (await reply.json())["error"] == "the text query is empty"


async def test_a_bug_raising_valueerror_in_a_search_is_a_500_not_a_bad_image(client, monkeypatch):
    service = client.server.app[SERVICE]

    def broken(*args, **kwargs):
        raise ValueError("shapes (384,) and (512,) not aligned")  # a bug, not the user's input

    monkeypatch.setattr(service, "search_gtin", broken)
    reply = await client.get("/search", params={"gtin": "4006381333931"})
    assert reply.status == 500
    assert "unusable image" not in await reply.text()
