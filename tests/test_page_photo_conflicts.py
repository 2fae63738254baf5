"""The product page and its JSON show where a shop's page and its own photo disagree on a spec
(the specs pipeline's `spec_conflicts`, kept by the store), and take the ranking options."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from cumpair.index import OfferRecord, ProductStore, StoreOptions
from cumpair.search.products import ProductGroups
from cumpair.search.server import create_app
from cumpair.search.service import SearchService

GTIN = "4006381333931"
CONFLICT = {"field": "voltage_v", "page": 18, "image": 36, "image_url": "http://a.test/1.jpg"}


def _record(shop: str, conflicts: list) -> OfferRecord:
    return OfferRecord(
        shop=shop,
        url=f"http://{shop}.test/p/1",
        title="Ironbark Circular Saw AA-112S",
        price=Decimal("99.00"),
        currency="EUR",
        availability="InStock",
        gtin=GTIN,
        specs={"voltage_v": 18},
        seen_at=datetime(2026, 11, 1, tzinfo=UTC),
        spec_conflicts=conflicts,
    )


async def test_the_product_page_lists_page_versus_photo_conflicts(aiohttp_client, tmp_path):
    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(tmp_path)
        for record in (_record("alpha", [CONFLICT]), _record("beta", [])):
            groups.assign(store, store.upsert(record, {}).offer_id, {})
        groups.close()
    with (
        ProductStore.open(tmp_path, readonly=True) as store,
        ProductGroups.open(tmp_path, readonly=True) as groups,
    ):
        service = SearchService(store, groups, encoder_loader=_no_models)
        client = await aiohttp_client(create_app(service, warm=False))
        found = await (await client.get("/search", params={"gtin": GTIN})).json()
        product_id = found["products"][0]["product_id"]
        body = await (await client.get(f"/products/{product_id}")).json()
        html = await (await client.get(f"/p/{product_id}")).text()
    (conflict,) = body["spec_conflicts"]
    assert (conflict["shop"], conflict["field"], conflict["page"], conflict["image"]) == (
        "alpha",
        "voltage_v",
        18,
        36,
    )
    assert "Page and photo disagree" in html
    assert 'data-shop="alpha" data-spec="voltage_v"' in html and "Voltage (V)" in html


def _no_models():
    raise AssertionError("these queries must not load models")


async def test_a_bad_ranking_option_on_the_product_page_is_a_400(aiohttp_client, tmp_path):
    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(tmp_path)
        groups.assign(store, store.upsert(_record("alpha", []), {}).offer_id, {})
        groups.close()
    with (
        ProductStore.open(tmp_path, readonly=True) as store,
        ProductGroups.open(tmp_path, readonly=True) as groups,
    ):
        service = SearchService(store, groups, encoder_loader=_no_models)
        client = await aiohttp_client(create_app(service, warm=False))
        product_id = groups.products_with_gtin(GTIN)[0]
        reply = await client.get(f"/products/{product_id}", params={"rank_by": "cheapest"})
        page = await client.get(f"/p/{product_id}", params={"ship_to": "Germany"})
        good = await client.get(f"/products/{product_id}", params={"rank_by": "total"})
    assert (reply.status, page.status) == (400, 400)
    assert "rank by must be one of" in (await reply.json())["error"]
    assert (await good.json())["ranking"]["by"] == "total"
