"""Near-neighbour searches (`SearchEffort.near`, grouping's): the upgrade tunes the lists they
probe for ``near_recall_target`` of the neighbours at ``near_cosine`` or above, a search asking
for them probes those, an index built before that tuning searches as tuned and is rebuilt by
`optimize`, and health keeps their latencies apart from full searches'."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from cumpair.index import ProductStore, SearchEffort, SpaceSpec, StoreOptions, ivf
from cumpair.search.products import grouping_effort
from tests.vector_fixtures import text_items

DIM = 32
SPACES = {"text": SpaceSpec(DIM, "test-text", "1")}
OPTIONS = StoreOptions(upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None)


def offers(n: int, seed: int = 5) -> np.ndarray:
    """Unit vectors clustered as offer titles are: families of 8 products (cosine ~0.6 between
    them), three offers a product (cosine ~0.9 within), as bench_grouping's `offer_vectors`."""
    rng = np.random.default_rng(seed)
    products = n // 3 + 1
    families = rng.standard_normal((products // 8 + 1, DIM)).astype(np.float32)
    families /= np.linalg.norm(families, axis=1, keepdims=True)
    centres = families[np.arange(products) // 8]
    noise = rng.standard_normal(centres.shape).astype(np.float32)
    centres += 0.8 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[np.arange(n) // 3] + 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _near_recall(store: ProductStore, data: np.ndarray, queries: np.ndarray, effort) -> float:
    """Share of each query's exact neighbours at cosine 0.8 or above that the search finds."""
    scores, rows = faiss.knn(queries, data, 10, faiss.METRIC_INNER_PRODUCT)
    hits = store.search("text", queries, k=10, effort=effort)
    found = total = 0
    for row_scores, row_ids, row_hits in zip(scores, rows, hits, strict=True):
        near = {int(i) + 1 for s, i in zip(row_scores, row_ids, strict=True) if s >= 0.8}
        total += len(near)
        found += len(near & {h.offer_id for h in row_hits})
    return found / total


def test_near_searches_probe_the_lists_tuned_for_their_recall(tmp_path, probes):
    data = offers(6000)
    held = np.arange(len(data)) % 20 == 0  # queries the index never holds: 300
    stored, held_out = data[~held], data[held]
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
        store.upsert_many(text_items(stored))
        params = store.health()["spaces"]["text"]["index"]
        assert params["kind"] == "ivfpq" and params["near_cosine"] == OPTIONS.near_cosine
        assert 1 <= params["near_nprobe"] <= params["nlist"]
        # never fewer than near_min_lists (32), or the tuned nprobe when that is lower
        assert params["near_nprobe"] >= min(params["nprobe"], OPTIONS.near_min_lists)
        assert params["near_recall"] >= OPTIONS.near_recall_target
        probes.clear()
        recall = _near_recall(store, stored, held_out, SearchEffort(near=True))
        assert probes == [params["near_nprobe"]]
        assert recall >= 0.98  # 0.99 tuned, on 300 unseen queries' ~600 near neighbours
        # grouping asks for them: no fixed list count, and a cap still caps
        assert grouping_effort() == SearchEffort(near=True)
        store.search("text", held_out[:3], k=5, effort=SearchEffort(lists=1, near=True))
        assert probes[-1] == 1


def test_an_index_without_the_near_tuning_searches_as_tuned_and_optimize_rebuilds_it(tmp_path):
    data = offers(3600)
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
        store.upsert_many(text_items(data))
        before = ivf.IndexParams.from_dict(store.health()["spaces"]["text"]["index"])
    untuned = ivf.IndexParams.from_dict(
        {k: v for k, v in before.to_dict().items() if not k.startswith("near_")}
    )  # what an index built before the near tuning records
    assert untuned.probes_for(near=True) == untuned.nprobe
    assert untuned.probes_for(near=True, lists=1) == 1
    assert ivf.near_untuned(untuned, OPTIONS) and not ivf.near_untuned(before, OPTIONS)
    assert not ivf.outdated_codes(before, OPTIONS)
    other = StoreOptions(
        upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None,
        near_cosine=0.95,
    )  # fmt: skip
    with ProductStore.open(tmp_path, SPACES, other) as store:  # tuned for another cosine
        assert ivf.near_untuned(before, other)
        store.optimize()
        after = store.health()["spaces"]["text"]["index"]
        assert after["near_cosine"] == 0.95 and after["near_nprobe"] >= 1
        assert store.count("text") == 3600
        assert store.search("text", data[7], 1, effort=SearchEffort(near=True))[0][0].offer_id == 8


def test_health_reports_searches_with_an_effort_apart(tmp_path):
    data = offers(300)
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
        store.upsert_many(text_items(data))
        store.search("text", data[:4], k=3)
        for row in data[:6]:
            store.search("text", row, k=3, effort=SearchEffort(near=True))
        health = store.health()["spaces"]["text"]
        assert health["search_latency_ms"]["count"] == 1
        assert health["effort_search_latency_ms"]["count"] == 6


@pytest.mark.parametrize(
    "bad", [{"near_cosine": 1.5}, {"near_recall_target": 0.0}, {"near_min_lists": 0}]
)
def test_near_options_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="near_"):
        StoreOptions(**bad)


READER = StoreOptions(reader_refresh_s=3600.0)  # refreshed by hand below


def test_a_reader_reloading_a_rebuilt_space_keeps_both_latency_records(tmp_path):
    data = offers(3600)
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
        store.upsert_many(text_items(data[:300]))
    reader = ProductStore.open(tmp_path, readonly=True, options=READER)
    try:
        reader.search("text", data[:2], k=3)
        for row in data[:5]:
            reader.search("text", row, k=3, effort=SearchEffort(near=True))
        with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
            store.upsert_many(text_items(data[300:], start=300))  # past the threshold: IVF-PQ
        reader.refresh()
        health = reader.health()["spaces"]["text"]
        assert health["index"]["kind"] == "ivfpq"  # the reader took the rebuilt space
        assert health["search_latency_ms"]["count"] == 1
        assert health["effort_search_latency_ms"]["count"] == 5
    finally:
        reader.close()


def _store_tuned_for_another_cosine(path) -> np.ndarray:
    """3600 offers at `path`, their IVF-PQ index tuned for near neighbours at cosine 0.95 (not
    OPTIONS' 0.8, so `optimize` with OPTIONS re-tunes it); returns their vectors."""
    data = offers(3600)
    other = StoreOptions(
        upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None,
        near_cosine=0.95,
    )  # fmt: skip
    with ProductStore.open(path, SPACES, other) as store:
        store.upsert_many(text_items(data))
    return data


def test_a_reader_takes_a_space_rebuilt_with_the_same_layout(tmp_path):
    """optimize re-tuning an index for near neighbours keeps its factory and its codes (only
    its parameters change): the reader must still load the new near probe count, not keep
    searching with the old one."""
    data = _store_tuned_for_another_cosine(tmp_path)
    reader = ProductStore.open(tmp_path, readonly=True, options=READER)
    try:
        before = reader.health()["spaces"]["text"]["index"]
        assert before["near_cosine"] == 0.95
        with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:
            store.optimize()  # tuned for another cosine: re-tuned, same index
            after = store.health()["spaces"]["text"]["index"]
        assert after["factory"] == before["factory"] and after["near_cosine"] == 0.8
        reader.refresh()
        assert reader.health()["spaces"]["text"]["index"] == after
        assert reader.search("text", data[7], 1, effort=SearchEffort(near=True))[0][0].offer_id == 8
    finally:
        reader.close()


def test_optimize_adds_the_near_tuning_without_rebuilding_the_index(tmp_path, monkeypatch):
    data = _store_tuned_for_another_cosine(tmp_path)
    with ProductStore.open(tmp_path, readonly=True) as store:
        before = store.health()["spaces"]["text"]["index"]
    builds = []
    real = ivf.build_ivfpq
    monkeypatch.setattr(ivf, "build_ivfpq", lambda *a, **k: builds.append(1) or real(*a, **k))
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:  # asks for cosine 0.8
        index = store._spaces["text"].index
        store.optimize()
        assert store._spaces["text"].index is index and not builds  # tuned, not rebuilt
        after = store.health()["spaces"]["text"]["index"]
    assert after["near_cosine"] == 0.8 and after["near_recall"] >= OPTIONS.near_recall_target
    kept = ("factory", "nlist", "nprobe", "k_factor", "trained_on", "build_s")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    with ProductStore.open(tmp_path, SPACES, OPTIONS) as store:  # saved: nothing left to do
        assert store.health()["spaces"]["text"]["index"] == after
        saved = ivf.IndexParams.from_dict(after)
        assert not ivf.outdated_codes(saved, OPTIONS) and not ivf.near_untuned(saved, OPTIONS)
        data_hit = store.search("text", data[7], 1, effort=SearchEffort(near=True))
        assert data_hit[0][0].offer_id == 8
