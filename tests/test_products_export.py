"""`cumpair products`: every product of a real store with its offers, cheapest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cumpair.cli import main as cumpair_main
from cumpair.index import OfferRecord, ProductStore, StoreOptions
from cumpair.search.export import product_dicts
from cumpair.search.products import ProductGroups
from cumpair.search.service import SearchService

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GTIN = "4000000000013"


def _offer(shop: str, price: str | None, **fields) -> OfferRecord:
    return OfferRecord(
        shop=shop,
        url=f"https://{shop}.example/canon-eos-80d",
        title=fields.pop("title", "Canon EOS 80D DSLR Camera (Body)"),
        price=None if price is None else Decimal(price),
        currency=None if price is None else "USD",
        brand="Canon",
        gtin=fields.pop("gtin", GTIN),
        seen_at=fields.pop("seen_at", T0),
        **fields,
    )


@pytest.fixture
def store(tmp_path):
    """Three shops sell one camera (one without a price); a lens stands alone; one offer is in
    the store but not grouped yet."""
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    with ProductGroups.open(tmp_path) as groups:
        for record in (
            _offer("aden", "1199.00"),
            _offer("fumfie", None),
            _offer("uniquephoto", "1049.00"),
            _offer("eisf", "399.00", title="Canon EF 17-40mm f/4L USM", gtin=None),
        ):
            groups.assign(store, store.upsert(record).offer_id)
    store.upsert(_offer("aden", "1150.00", seen_at=T0 + timedelta(days=1)))  # a price change
    store.upsert(_offer("newshop", "999.00", gtin=None, title="Sony Alpha a5100"))  # ungrouped
    yield store
    store.close()


def _export(store) -> list[dict]:
    with ProductGroups.open(store.path, readonly=True) as groups:
        return list(product_dicts(store, groups))


def test_every_product_has_its_identity_and_offers_cheapest_first(store):
    camera, lens, _ungrouped = _export(store)
    assert {"product_id", "title", "brand", "model", "gtin", "offers"} <= set(camera)
    assert camera["gtin"] == GTIN and camera["brand"] == "Canon"
    assert [o["shop"] for o in camera["offers"]] == ["uniquephoto", "aden", "fumfie"]
    assert [o["price"] for o in camera["offers"]] == ["1049.00", "1150.00", None]
    aden = camera["offers"][1]
    assert {"offer_id", "shop", "url", "price", "currency", "availability"} <= set(aden)
    assert (aden["previous_price"], aden["change"]) == ("1199.00", "-49.00")
    assert lens["title"] == "Canon EF 17-40mm f/4L USM" and len(lens["offers"]) == 1
    assert "score" not in camera and "reasons" not in camera
    json.dumps(camera)  # JSON-ready values only


def test_an_offer_without_price_is_never_the_cheapest(store):
    with ProductGroups.open(store.path, readonly=True) as groups:
        camera_id = next(p["product_id"] for p in product_dicts(store, groups) if p["gtin"])
        view = SearchService(store, groups).product(camera_id)
    assert view.offers[-1].price is None
    assert view.lowest_price == Decimal("1049.00")


def test_offers_not_grouped_yet_are_exported_alone(store):
    ungrouped = _export(store)[-1]
    assert ungrouped["product_id"] is None
    assert [o["shop"] for o in ungrouped["offers"]] == ["newshop"]
    assert sum(len(p["offers"]) for p in _export(store)) == 5


def test_cli_writes_one_json_object_per_line(store, capsys):
    assert cumpair_main(["products", "--index", str(store.path), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["product_id"] for line in lines][-1] is None
    assert len(lines) == 3
    assert cumpair_main(["products", "--index", str(store.path)]) == 0
    assert "3 offer(s)\tfrom 1049.00 USD\tCanon EOS 80D" in capsys.readouterr().out


def test_cli_without_an_index_is_a_clear_error(tmp_path, capsys):
    assert cumpair_main(["products", "--path", str(tmp_path / "none"), "--json"]) == 1
    assert "no index" in capsys.readouterr().err
