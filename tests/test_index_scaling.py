"""Scaling and concurrency of the product store: real IVF-PQ upgrade, threads, processes, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from functools import partial
from pathlib import Path

import faiss
import numpy as np
import pytest

from cumpair.index import (
    OfferRecord,
    ProductStore,
    SearchFilters,
    SpaceSpec,
    StoreLockedError,
    StoreOptions,
)
from tests import vector_fixtures

DIM = 32
SPACES = {"image": SpaceSpec(DIM, "test-image", "1")}
ROOT = Path(__file__).resolve().parents[1]


clustered = partial(vector_fixtures.clustered, dim=DIM, clusters=50)


def items(vectors: np.ndarray, start: int = 0, shop: str = "northwind"):
    return [
        (OfferRecord(shop, f"http://{shop}/{start + i}", price=Decimal(i % 100)), {"image": v})
        for i, v in enumerate(vectors)
    ]


def test_flat_space_upgrades_to_tuned_ivfpq_past_the_threshold(tmp_path):
    """A real IVF-PQ train at a 5 000-vector threshold: tuned recall, updates, reopen."""
    data, queries = np.split(clustered(6200), [6000])  # queries: same clusters, not stored
    options = StoreOptions(upgrade_threshold=5000, duplicate_threshold=None)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, options) as store:
        store.upsert_many(items(data[:4000]))
        assert store.health()["spaces"]["image"]["index_type"] == "flat"
        store.upsert_many(items(data[4000:], start=4000))  # crosses the threshold
        store.wait_for_upgrades()
        space = store.health()["spaces"]["image"]
        assert space["index_type"] == "ivfpq" and space["vectors"] == 6000
        assert space["measured_recall"] >= 0.95
        assert space["index_bytes_per_vector"] <= 64
        params = space["index"]
        assert params["nlist"] >= 16 and params["nprobe"] >= 1 and params["k_factor"] > 0
        # recall of the store itself against exact search, on queries it never saw
        _, truth = faiss.knn(queries, data, 10, metric=faiss.METRIC_INNER_PRODUCT)
        hits = store.search("image", queries, 10)
        found = [{h.offer_id - 1 for h in row} for row in hits]
        recall = np.mean([len(f & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall >= 0.9
        # update and delete by id work on the IVF-PQ index too
        moved = clustered(1, seed=5)[0]
        store.upsert(items([moved], start=10)[0][0], {"image": moved})
        assert store.search("image", moved, 1)[0][0].offer_id == 11
        store.remove(11)
        assert store.count("image") == 5999
        assert all(h.offer_id != 11 for h in store.search("image", moved, 10)[0])
        # a selective filter still finds the few matching offers exactly
        store.upsert(OfferRecord("rare", "http://rare/1"), {"image": data[0]})
        rare = store.search("image", data[0], 5, SearchFilters(shops=("rare",)))[0]
        assert [h.offer_id for h in rare] == [6001]
    with ProductStore.open(path, SPACES, options) as store:
        assert store.health()["spaces"]["image"]["index_type"] == "ivfpq"
        assert store.count("image") == 6000


def test_ivfpq_is_retrained_once_the_space_outgrows_its_training(tmp_path):
    """Past ``retrain_growth`` x the vectors it was trained on, the index is trained again."""
    data = clustered(9000, seed=2)
    options = StoreOptions(upgrade_threshold=1000, retrain_growth=4.0, duplicate_threshold=None)
    with ProductStore.open(tmp_path / "s", SPACES, options) as store:
        store.upsert_many(items(data[:1000]))
        store.wait_for_upgrades()
        first = store.health()["spaces"]["image"]["index"]
        assert first["kind"] == "ivfpq" and first["trained_on"] == 1000
        store.upsert_many(items(data[1000:3900], start=1000))  # 3.9x: not yet
        store.wait_for_upgrades()
        assert store.health()["spaces"]["image"]["index"]["trained_on"] == 1000
        store.upsert_many(items(data[3900:], start=3900))
        store.wait_for_upgrades()
        second = store.health()["spaces"]["image"]
        assert second["index"]["trained_on"] == 9000 and second["vectors"] == 9000
        assert second["index"]["nlist"] > first["nlist"]
        assert second["measured_recall"] >= 0.95
        assert store.search("image", data[8999], 1)[0][0].offer_id == 9000


def test_searches_run_while_a_writer_adds_and_counts_match(tmp_path):
    data = clustered(3000, seed=1)
    with ProductStore.open(tmp_path / "s", SPACES, StoreOptions(duplicate_threshold=None)) as store:
        store.upsert_many(items(data[:500]))
        errors: list[BaseException] = []
        done = threading.Event()
        searches = [0]

        def reader() -> None:
            try:
                while not done.is_set():
                    hits = store.search("image", data[:5], 3)
                    assert all(len(row) == 3 for row in hits)
                    searches[0] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for thread in threads:
            thread.start()
        for start in range(500, 3000, 100):
            store.upsert_many(items(data[start : start + 100], start=start))
            if start % 1000 == 0:
                store.flush()
        done.set()
        for thread in threads:
            thread.join()
        assert not errors and searches[0] > 0
        assert store.count("image") == 3000 == store.health()["offers"]


def test_second_writer_process_is_refused_and_reader_sees_new_rows(tmp_path):
    path = tmp_path / "s"
    data = clustered(20, seed=2)
    options = StoreOptions(lock_timeout_s=0.2, reader_refresh_s=0.0)
    with ProductStore.open(path, SPACES, options) as writer:
        writer.upsert_many(items(data[:10]))
        code = (
            "import sys; from cumpair.index import *\n"
            "try:\n"
            f"    ProductStore.open({str(path)!r}, options=StoreOptions(lock_timeout_s=0.2))\n"
            "except StoreLockedError as e:\n"
            "    print('locked', e); sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 3, proc.stderr
        assert "pid" in proc.stdout
        with pytest.raises(StoreLockedError):
            ProductStore.open(path, SPACES, options)
        reader = ProductStore.open(path, readonly=True, options=options)
        assert reader.count("image") == 10
        writer.upsert_many(items(data[10:], start=10))  # not flushed: reader replays SQLite rows
        assert reader.search("image", data[15], 1)[0][0].offer_id == 16
        assert reader.count("image") == 20
        reader.close()


def test_cli_stats_save_and_compact(tmp_path):
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES) as store:
        store.upsert_many(items(clustered(30, seed=3)))
        store.remove(1)

    def cumpair(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cumpair.cli", "index", *args, "--path", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    stats = cumpair("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    health = json.loads(stats.stdout)
    assert health["offers"] == 29 and health["spaces"]["image"]["vectors"] == 29
    assert "search_latency_ms" in health["spaces"]["image"]
    assert "vectors:    29 image (flat" in cumpair("stats").stdout
    assert json.loads(cumpair("save", "--json").stdout) == {"files_written": 0}
    assert json.loads(cumpair("compact", "--json").stdout)["tombstones_dropped"] == 1
    assert cumpair("optimize", "--json").returncode == 0
    missing = cumpair("stats")
    assert missing.returncode == 0
    nowhere = subprocess.run(
        [sys.executable, "-m", "cumpair.cli", "index", "stats", "--path", str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nowhere.returncode == 1 and "no product store" in nowhere.stderr
