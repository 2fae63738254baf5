"""`ProductGroups.assign` compares a new offer with grouped offers built as a regroup builds them
(`features_from_record`), not from the few match keys the grouping stores for each member."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions
from cumpair.search.features import features_from_record
from cumpair.search.matching import compare
from cumpair.search.products import ProductGroups

# A real WDC computers valid pair labelled different: the two titles' numbers (mini 4 / 12.9,
# 2017, 64gb) tell them apart, and the stored match keys carry no numbers.
MINI = '"Apple iPad Mini 4 128GB, WiFi, Space Gray"@en WiFi 128GB Gray (MK9N2LL/A)"@en'
PRO = '"Apple iPad Pro 128GB Gris tablet"@es "Ipad 12.9 2017 Wi-fi 64gb Silver Black Friday "@es'


def _record(shop: str, title: str) -> OfferRecord:
    return OfferRecord(
        shop=shop,
        url=f"http://{shop}.test/p/1",
        title=title,
        price=Decimal("499.00"),
        currency="EUR",
        availability="InStock",
        seen_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_a_new_offer_is_compared_with_its_neighbours_as_a_regroup_compares_them(tmp_path):
    vector = {"text": np.ones((1, 4), dtype=np.float32) / 2}  # neighbours in the text space
    space = {"text": SpaceSpec(4, "test-text", "1")}
    with (
        ProductStore.open(tmp_path, space, StoreOptions(duplicate_threshold=None)) as store,
        ProductGroups.open(tmp_path) as groups,
    ):
        mini = store.upsert(_record("alpha", MINI), vector).offer_id
        first = groups.assign(store, mini, vector)
        pro = store.upsert(_record("beta", PRO), vector).offer_id
        second = groups.assign(store, pro, vector)
        records = store.get_offers([mini, pro])
        verdict = compare(features_from_record(records[pro]), features_from_record(records[mini]))
    assert not verdict.same  # what a regroup decides for the pair
    assert second.product_id != first.product_id


def test_compared_features_are_kept_per_offer_only_while_its_record_is_unchanged(tmp_path):
    with ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)) as store:
        groups = ProductGroups.open(tmp_path)
        offer_id = store.upsert(_record("alpha", MINI)).offer_id
        first = groups._record_features(store.get_offers([offer_id])[offer_id])
        assert groups._record_features(store.get_offers([offer_id])[offer_id]) is first
        store.upsert(replace(_record("alpha", PRO), seen_at=datetime(2026, 11, 2, tzinfo=UTC)))
        changed = groups._record_features(store.get_offers([offer_id])[offer_id])
        groups.close()
    assert changed.title != first.title and "12.9" in changed.title
