"""The fast-scan IVF-PQ layout of large spaces: upgrade from the vector log, tuned nprobe and
re-rank depth, retrain, remove/update, damaged rows, recovery, and stores of the 8-bit layout."""

from __future__ import annotations

import gc
import io
import sys
import weakref
from dataclasses import replace
from decimal import Decimal
from functools import partial
from pathlib import Path

import faiss
import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions, ivf, vector_id
from cumpair.index.cli import _optimize_with_progress
from cumpair.index.store import upgrade as upgrade_module
from cumpair.index.vectorlog import HEADER_BYTES, VectorLog
from tests import vector_fixtures

DIM = 32
SPACES = {"image": SpaceSpec(DIM, "test-image", "1")}
ROW_BYTES = 8 + DIM * 4 + 4
OPTIONS = StoreOptions(upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None)


clustered = partial(vector_fixtures.clustered, dim=DIM, clusters=40)


def items(vectors: np.ndarray, start: int = 0, shop: str = "northwind"):
    return [
        (OfferRecord(shop, f"http://{shop}/{start + i}", price=Decimal(1)), {"image": v})
        for i, v in enumerate(vectors)
    ]


def recall(store: ProductStore, queries: np.ndarray, data: np.ndarray) -> float:
    _, truth = faiss.knn(queries, data, 10, metric=faiss.METRIC_INNER_PRODUCT)
    found = [{h.offer_id - 1 for h in row} for row in store.search("image", queries, 10)]
    return float(np.mean([len(f & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def test_upgrade_builds_fast_scan_codes_in_chunks_and_tunes_nprobe_with_depth(
    tmp_path, monkeypatch
):
    """Adds arrive in several chunks from the log; the tuned pair reaches the recall target."""
    monkeypatch.setattr(upgrade_module, "_CHUNK", 1000)
    added: list[int] = []
    build = ivf.build_ivfpq

    def counting_build(sample, chunks, params, seed=1234):
        def counted():
            for ids, vectors in chunks:
                added.append(len(ids))
                yield ids, vectors

        return build(sample, counted(), params, seed)

    monkeypatch.setattr(ivf, "build_ivfpq", counting_build)
    data, queries = np.split(clustered(3400), [3200])
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many(items(data))
        space = store.health()["spaces"]["image"]
        params = space["index"]
        assert space["index_type"] == "ivfpq" and params["fast_scan"]
        assert params["factory"].endswith(f"PQ{params['m']}x4fs") and params["nbits"] == 4
        assert added == [1000, 1000, 1000, 200]  # never every vector at once
        assert 2 <= params["k_factor"] <= OPTIONS.refine_k_factor
        assert 1 <= params["nprobe"] <= params["nlist"]
        assert space["measured_recall"] >= 0.95
        assert space["index_bytes_per_vector"] <= 32
        assert recall(store, queries, data) >= 0.9  # queries it never saw
        assert "x4fs, nprobe" in ivf.IndexParams.from_dict(params).describe()


def test_remove_and_update_work_on_the_fast_scan_index_and_survive_reopen(tmp_path):
    data = clustered(3200, seed=1)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.upsert_many(items(data))
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
        moved = clustered(3201, seed=1)[3200]  # a new photo, like the others (unseen)
        store.upsert(items([moved], start=10)[0][0], {"image": moved})
        assert store.search("image", moved, 1)[0][0].offer_id == 11
        assert store.remove(21)
        assert all(h.offer_id != 21 for h in store.search("image", data[20], 10)[0])
        store.flush()
        store.remove(31)  # after the snapshot: replayed on open
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
        assert store.count("image") == 3198
        assert store.search("image", moved, 1)[0][0].offer_id == 11
        assert all(h.offer_id not in (21, 31) for h in store.search("image", data[30], 10)[0])


def test_fast_scan_index_is_retrained_once_the_space_outgrows_its_training(tmp_path):
    data = clustered(4200, seed=2)
    options = StoreOptions(
        upgrade_threshold=1000, retrain_growth=4.0, background_upgrade=False,
        duplicate_threshold=None,
    )  # fmt: skip
    with ProductStore.open(tmp_path / "s", SPACES, options) as store:
        store.upsert_many(items(data[:1000]))
        first = store.health()["spaces"]["image"]["index"]
        assert first["fast_scan"] and first["trained_on"] == 1000
        store.upsert_many(items(data[1000:], start=1000))
        second = store.health()["spaces"]["image"]
        assert second["index"]["fast_scan"] and second["index"]["trained_on"] == 4200
        assert second["index"]["nlist"] > first["nlist"]
        assert second["measured_recall"] >= 0.95
        assert store.search("image", data[4199], 1)[0][0].offer_id == 4200


def test_damaged_log_rows_are_left_out_of_the_build_and_of_re_ranking(tmp_path):
    """A row damaged before the upgrade is never indexed; one damaged after it never returned."""
    data = clustered(3200, seed=3)
    path = tmp_path / "s"
    options = StoreOptions(upgrade_threshold=4000, duplicate_threshold=None)
    with ProductStore.open(path, SPACES, options) as store:
        store.upsert_many(items(data))  # Flat: below this store's threshold
    log = path / "vectors.image.e0001.vlog"
    with open(log, "r+b") as fh:  # offer 8's values
        fh.seek(HEADER_BYTES + 7 * ROW_BYTES + 8 + 20)
        fh.write(b"\x7f\x7f\x7f\x7f")
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.optimize()
        space = store.health()["spaces"]["image"]
        assert space["index"]["fast_scan"] and space["vectors"] == 3199
        assert store.health()["damage"]["damaged_vector_ids"] == {"image": [vector_id(8, 0)]}
        assert all(h.offer_id != 8 for h in store.search("image", data[7], 10)[0])
        with open(log, "r+b") as fh:  # offer 13's values, now inside the index
            fh.seek(HEADER_BYTES + 12 * ROW_BYTES + 8 + 20)
            fh.write(b"\x7f\x7f\x7f\x7f")
        hits = store.search("image", data[12], 10)[0]
        assert hits and all(h.offer_id != 13 for h in hits)
        assert vector_id(13, 0) in store.health()["damage"]["damaged_vector_ids"]["image"]


def test_all_snapshots_corrupt_rebuilds_and_upgrades_to_fast_scan_again(tmp_path):
    data = clustered(3200, seed=4)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.upsert_many(items(data))
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
    for file in path.glob("*.faiss"):
        file.write_bytes(b"not a faiss index")
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.health()["last_recovery"]["used"] == "a rebuild from SQLite"
        assert store.count("image") == 3200
        store.optimize()
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
        assert store.search("image", data[99], 1)[0][0].offer_id == 100


def test_a_store_of_the_8_bit_layout_loads_as_it_is_and_optimize_moves_it_to_fast_scan(
    tmp_path: Path,
):
    data = clustered(3200, seed=5)
    path = tmp_path / "s"
    old = StoreOptions(
        upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None,
        fast_scan=False, max_code_bytes=16,
    )  # fmt: skip
    with ProductStore.open(path, SPACES, old) as store:
        store.upsert_many(items(data))
        params = store.health()["spaces"]["image"]["index"]
        assert not params["fast_scan"] and "fs" not in params["factory"]
    legacy = {k: v for k, v in params.items() if k not in ("fast_scan", "coarse")}
    assert not ivf.IndexParams.from_dict(legacy).fast_scan  # params written before the field
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.health()["spaces"]["image"]["index"]["factory"] == params["factory"]
        assert store.search("image", data[5], 1)[0][0].offer_id == 6
        store.upsert_many(items(clustered(10, seed=6), start=3200))  # no rebuild on writes
        assert not store.health()["spaces"]["image"]["index"]["fast_scan"]
        done = store.optimize()
        assert done["image"].endswith("x4fs")
        assert store.search("image", data[5], 1)[0][0].offer_id == 6
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]


@pytest.mark.parametrize("coarse_hnsw", [False, True])
def test_choose_ivfpq_fits_the_code_budget_and_names_the_layout(coarse_hnsw):
    options = StoreOptions(coarse_hnsw=coarse_hnsw)
    params = ivf.choose_ivfpq(1_000_000, 512, options)
    assert params.m * params.nbits // 8 <= options.max_code_bytes and params.nbits == 4
    assert params.nlist * 512 * 4 <= 1_000_000 * options.max_centroid_bytes
    assert (
        params.factory == (f"IVF1024{'_HNSW32' if coarse_hnsw else ''},PQ32x4fs") and not params.opq
    )
    # 256 centroids of 384-d would cost 3.9 B a vector at 10^5 (32.9 B resident in all)
    assert ivf.choose_ivfpq(100_000, 384, options).nlist == 128
    tuned = replace(params, near_nprobe=16, near_cosine=options.near_cosine)
    assert ivf.outdated_codes(tuned, StoreOptions(coarse_hnsw=not coarse_hnsw))
    assert not ivf.outdated_codes(tuned, options) and not ivf.near_untuned(tuned, options)
    assert ivf.near_untuned(params, options)  # built before near neighbours were tuned
    eight_bit = ivf.choose_ivfpq(1_000_000, 512, StoreOptions(fast_scan=False))
    assert eight_bit.factory.startswith("OPQ") and eight_bit.factory.endswith("x8")


def test_a_small_space_holds_out_tuning_queries_and_keeps_a_training_point_per_centroid():
    """20 vectors, IVF16 with 16 codes a sub-quantiser: half held out left k-means 10 points."""
    vectors = clustered(20)
    ids = np.arange(20, dtype=np.int64)

    def lookup(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return vectors[wanted], np.ones(len(wanted), bool)

    index, params = ivf.build_and_tune(
        vectors, ids, 20, lambda: iter([(ids, vectors)]), lookup, StoreOptions()
    )
    assert params.nlist == 16 and index.ntotal == 20 and params.recall is not None


def test_optimize_reports_each_phase_of_a_build_row_by_row(tmp_path, monkeypatch):
    """`cumpair index optimize` draws its bar from these reports: rows added, then tuned over."""
    monkeypatch.setattr(upgrade_module, "_CHUNK", 1000)
    path = tmp_path / "s"
    flat = StoreOptions(upgrade_threshold=10**9, background_upgrade=False, duplicate_threshold=None)
    with ProductStore.open(path, SPACES, flat) as store:  # past OPTIONS' threshold, still Flat
        store.upsert_many(items(clustered(3200, seed=4)))
    reports: list[tuple[str, str, int, int]] = []
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.optimize(lambda *report: reports.append(report))["image"].endswith("x4fs")
    added = [r for r in reports if r[1] == "add"]
    assert [r[2] for r in added] == [1000, 2000, 3000, 3200]
    assert {(r[0], r[3]) for r in reports} == {("image", 3200)}
    assert reports[-1][1:] == ("tune", 3200, 3200)  # tuning streams the rows after the add
    assert reports.index(added[-1]) < reports.index(reports[-1])


def test_the_optimize_bar_counts_the_rows_of_each_phase(tmp_path, monkeypatch):
    monkeypatch.setattr(upgrade_module, "_CHUNK", 1000)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    path = tmp_path / "s"
    flat = StoreOptions(upgrade_threshold=10**9, background_upgrade=False, duplicate_threshold=None)
    with ProductStore.open(path, SPACES, flat) as store:
        store.upsert_many(items(clustered(3200, seed=5)))
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        _optimize_with_progress(store)
    written = stream.getvalue()
    assert "index optimize image: add" in written and "index optimize image: tune" in written
    assert "3200/3200" in written


def _rss_file_bytes() -> int:
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("RssFile:"))
    return int(line.split()[1]) * 1024


def test_releasing_a_span_of_the_log_lets_go_of_its_mapped_pages(tmp_path):
    """What keeps an upgrade's memory at one span of the log, not the whole file."""
    log = VectorLog(tmp_path / "v.vlog", 256, writable=True, create=True)
    rows = 20_000  # 20 MiB of rows
    log.write(0, np.arange(rows, dtype=np.int64), np.ones((rows, 256), dtype=np.float32))
    before = _rss_file_bytes()
    assert log.read(np.arange(rows)).ok.all()
    assert _rss_file_bytes() - before > 15 * 2**20  # the mapping's pages are resident now
    log.release(0, rows)
    assert _rss_file_bytes() - before < 2 * 2**20
    assert log.read(np.arange(0, rows, 97)).ok.all()  # and read back after, as before
    log.close()


def test_an_upgrade_reads_the_log_one_span_at_a_time_and_lets_go_of_each(tmp_path, monkeypatch):
    monkeypatch.setattr(upgrade_module, "_CHUNK", 1000)
    released: list[tuple[int, int]] = []
    release = VectorLog.release

    def recording(self, start_row, stop_row):
        released.append((start_row, stop_row))
        release(self, start_row, stop_row)

    monkeypatch.setattr(VectorLog, "release", recording)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many(items(clustered(3200, seed=7)))
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
    assert released and all(0 <= start < stop <= 3200 for start, stop in released)
    assert all(stop - start <= 1000 for start, stop in released)  # one span at a time
    # the sample, the add and the tuning pass, and the re-ranks of tuning all let go
    assert {start // 1000 for start, _ in released} == {0, 1, 2, 3}


def test_search_parameters_are_made_once_per_index_and_nprobe_and_go_with_the_index():
    index = faiss.index_factory(8, "IVF4_HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
    data = np.random.default_rng(3).standard_normal((400, 8)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)  # each vector its own best match
    index.train(data)
    index.add(data)
    made = ivf.search_parameters(index, 2)
    assert ivf.search_parameters(index, 2) is made
    assert ivf.search_parameters(index, 3) is not made and made.nprobe == 2
    assert made.quantizer_params is not None  # the HNSW breadth
    chosen = ivf.search_parameters(index, 2, faiss.IDSelectorBatch(np.arange(5)))
    assert chosen is not made and ivf.search_parameters(index, 2).sel is None
    _, ids = index.search(data[:3], 1, params=made)
    assert ids[:, 0].tolist() == [0, 1, 2]
    cached = weakref.ref(made)
    del index, made
    gc.collect()
    assert cached() is None  # the cache held them for the index only


def test_a_few_queries_search_on_the_calling_thread_alone_and_its_setting_comes_back():
    """Under `ivf.SERIAL_QUERIES` queries FAISS runs with one OpenMP thread (its parallel
    region per call costs more than one query's scan); a larger batch keeps the caller's
    threads, and the caller's setting is the same after either."""
    vectors = clustered(400)
    ids = np.arange(400, dtype=np.int64)
    seen: list[int] = []

    def lookup(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(faiss.omp_get_max_threads())  # re-ranking runs inside the search
        return vectors[np.maximum(wanted, 0)], wanted >= 0

    index, params = ivf.build_and_tune(
        vectors, ids, 400, lambda: iter([(ids, vectors)]), lookup, StoreOptions()
    )
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        for queries, threads in ((vectors[:1], 1), (vectors[:64], 2)):
            seen.clear()
            _, found = ivf.search(index, params, queries, 5, lookup=lookup, k_factor=4)
            assert seen == [threads] and faiss.omp_get_max_threads() == 2
            assert found[:, 0].tolist() == ids[: len(queries)].tolist()
    finally:
        faiss.omp_set_num_threads(before)
