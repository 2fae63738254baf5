"""`POST /match` of `cumpair serve`: the matcher's verdict on two offers over HTTP."""

from __future__ import annotations

import math

import pytest

from cumpair.index import ProductStore, StoreOptions
from cumpair.search.products import ProductGroups
from cumpair.search.server import create_app
from cumpair.search.service import SearchService


def _no_models():
    raise AssertionError("matching two offers must not load the encoders")


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    service = SearchService(store, groups, encoder_loader=_no_models)
    yield await aiohttp_client(create_app(service, warm=False))
    groups.close()
    store.close()


async def test_match_returns_the_verdict_and_each_signals_contribution(client):
    left = {"title": "Skagen SKW2075 Watch", "brand": "Skagen"}
    right = {"title": "Skagen Nicoline damski SKW2075", "brand": "SKAGEN A/S"}
    response = await client.post("/match", json={"left": left, "right": right})
    assert response.status == 200
    data = await response.json()
    assert data["same_product"] and data["rule"] == "learned"
    assert data["signals"]["code_exact"] == 1.0 and data["signals"]["brand_agree"] == 1.0
    assert data["contributions"]["code_exact"] > 0
    # the JSON rounds every figure to 4 decimals: ~33 contributions and a score near 1, whose
    # log-odds that rounding moves by up to 0.00005 / (p (1 - p))
    assert data["base"] + sum(data["contributions"].values()) == pytest.approx(
        math.log(data["score"] / (1 - data["score"])), abs=5e-3
    )
    assert data["model"]["kind"] in ("gradient-boosted-trees", "logistic-regression")


async def test_match_answers_a_gtin_pair_by_its_rule(client):
    offer = {"title": "Acme drill", "gtin": "4006381333931"}
    response = await client.post("/match", json={"left": offer, "right": offer})
    data = await response.json()
    assert data["rule"] == "gtin" and data["reasons"] == ["same GTIN 4006381333931"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "send JSON"),
        ('{"left": {"title": "x"}}', "send JSON"),
        ('{"left": {"title": "x"}, "right": "y"}', "an offer must be a JSON object"),
        ('{"left": {"title": "x"}, "right": {"brand": "y"}}', "needs a title or a gtin"),
    ],
)
async def test_bad_match_requests_get_400_with_a_message(client, body, message):
    response = await client.post("/match", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert message in (await response.json())["error"]
