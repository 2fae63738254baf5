"""A search effort below the store's tuning: it reaches FAISS as fewer IVF lists, a flat index
ignores it, and grouping asks for it (`grouping_effort`) in assign and the incremental reach."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial

import pytest

from cumpair.index import (
    OfferRecord,
    ProductStore,
    SearchEffort,
    SearchFilters,
    SpaceSpec,
    StoreOptions,
)
from cumpair.index.store import searching
from cumpair.search import products
from cumpair.search.candidates import touched_reach
from cumpair.search.products import GroupingError, ProductGroups, grouping_effort
from tests import vector_fixtures
from tests.vector_fixtures import text_items

DIM = 32
SPACES = {"text": SpaceSpec(DIM, "test-text", "1")}
IVF = StoreOptions(upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None)
FLAT = StoreOptions(upgrade_threshold=10**9, background_upgrade=False, duplicate_threshold=None)
clustered = partial(vector_fixtures.clustered, dim=DIM, clusters=40)


def test_a_bounded_effort_probes_fewer_ivf_lists_and_still_finds_the_nearest(tmp_path, probes):
    data = clustered(3200)
    with ProductStore.open(tmp_path, SPACES, IVF) as store:
        store.upsert_many(text_items(data))
        params = store.health()["spaces"]["text"]["index"]
        assert params["nlist"] > 1 and params["nprobe"] > 1  # an IVF index, tuned past one list
        probes.clear()  # the upgrade's own tuning searches
        queries = data[:20]
        tuned = store.search("text", queries, k=5)
        assert probes == [params["nprobe"]]
        bounded = store.search("text", queries, k=5, effort=SearchEffort(lists=1))
        assert probes[-1] == 1
        # an offer's own vector sits in its nearest list: the one list probed still finds it
        assert [row[0].offer_id for row in bounded] == [row[0].offer_id for row in tuned]
        store.search("text", queries, k=5, effort=SearchEffort(lists=10**6))
        assert probes[-1] == params["nprobe"]  # a cap above the tuning searches as tuned


def test_a_flat_index_ignores_the_effort(tmp_path, probes):
    data = clustered(300)
    with ProductStore.open(tmp_path, SPACES, FLAT) as store:
        store.upsert_many(text_items(data))
        assert store.health()["spaces"]["text"]["index_type"] == "flat"
        exact = store.search("text", data[:10], k=8)
        assert store.search("text", data[:10], k=8, effort=SearchEffort(lists=1)) == exact
        assert probes == []  # no IVF parameters were made at all


@pytest.mark.parametrize("lists", [0, -3, 2.5, True, "8"])
def test_an_effort_of_no_positive_int_lists_is_refused(lists):
    with pytest.raises(ValueError, match="lists must be a positive int"):
        SearchEffort(lists=lists)


def test_grouping_effort_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("CUMPAIR_GROUP_SEARCH_LISTS", raising=False)
    assert products.GROUP_SEARCH_LISTS == 0  # no cap: the lists the store tuned for them
    assert grouping_effort() == SearchEffort(near=True)
    monkeypatch.setenv("CUMPAIR_GROUP_SEARCH_LISTS", "3")
    assert grouping_effort() == SearchEffort(lists=3, near=True)
    monkeypatch.setenv("CUMPAIR_GROUP_SEARCH_LISTS", "0")
    assert grouping_effort() == SearchEffort(near=True)
    for bad in ("eight", "-1"):
        monkeypatch.setenv("CUMPAIR_GROUP_SEARCH_LISTS", bad)
        with pytest.raises(GroupingError, match="CUMPAIR_GROUP_SEARCH_LISTS"):
            grouping_effort()


def test_assign_and_the_incremental_reach_search_with_grouping_effort(
    tmp_path, probes, monkeypatch
):
    monkeypatch.setenv("CUMPAIR_GROUP_SEARCH_LISTS", "1")
    data = clustered(3200)
    with ProductStore.open(tmp_path, SPACES, IVF) as store:
        results = store.upsert_many(text_items(data))
        tuned = store.health()["spaces"]["text"]["index"]["nprobe"]
        assert tuned > 1  # (the tuning times its candidates: not always the same nprobe)
        efforts: list[SearchEffort | None] = []
        search = store.search

        def recorded(space, queries, k=10, filters=None, effort=None):
            efforts.append(effort)
            return search(space, queries, k, filters, effort)

        monkeypatch.setattr(store, "search", recorded)
        with ProductGroups.open(tmp_path) as groups:
            offer_id = results[0].offer_id
            groups.assign(store, offer_id, {"text": data[0]})
            assert efforts == [SearchEffort(lists=1, near=True)] and probes[-1] == 1
            touched_reach(store, groups, {offer_id})
            assert efforts[-1] == SearchEffort(lists=1, near=True) and probes[-1] == 1


def test_an_effort_holds_beside_filters_and_through_asearch(tmp_path, probes, monkeypatch):
    data = clustered(3200)
    items = [
        (OfferRecord(("northwind", "contoso")[i % 2], f"http://shop/{i}", price=Decimal(1)), v)
        for i, (_, v) in enumerate(text_items(data))
    ]
    one_list = SearchEffort(lists=1)
    with ProductStore.open(tmp_path, SPACES, IVF) as store:
        results = store.upsert_many(items)
        contoso = {
            r.offer_id
            for r, (record, _) in zip(results, items, strict=True)
            if record.shop == "contoso"
        }
        only = SearchFilters(shops=("contoso",))
        queries = data[:6]
        # a filter this wide leaves the IVF search (a selector) in place of the exact one
        monkeypatch.setattr(searching, "_EXACT_FILTERED", 0)
        probes.clear()
        found = store.search("text", queries, k=5, filters=only, effort=one_list)
        assert probes == [1]
        assert {hit.offer_id for row in found for hit in row} <= contoso
        assert [row[0].offer_id for row in found[1::2]] == [results[i].offer_id for i in (1, 3, 5)]
        assert asyncio.run(store.asearch("text", queries, 5, effort=one_list)) == store.search(
            "text", queries, 5, effort=one_list
        )
        assert probes[-2:] == [1, 1]
