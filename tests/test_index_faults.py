"""Faults of the product store: a lost database, compaction under searches, damaged logs, a full
disk, and the settings that build its options."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scrapy.settings import Settings

from cumpair.index import (
    MissingDatabaseError,
    OfferRecord,
    ProductStore,
    SpaceSpec,
    StoreError,
    StoreIOError,
    StoreOptions,
    cli,
    metadata,
    snapshots,
    vector_id,
    vectorlog,
)
from cumpair.index.vectorlog import HEADER_BYTES

DIM = 16
SPACES = {"image": SpaceSpec(DIM, "test-image", "1")}
OPTIONS = StoreOptions(duplicate_threshold=None)
ROW_BYTES = 8 + DIM * 4 + 4


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fill(store: ProductStore, vectors: np.ndarray, shop: str = "a", start: int = 0) -> None:
    store.upsert_many(
        [
            (OfferRecord(shop, f"http://{shop}/{start + i}", price=Decimal(1)), {"image": v})
            for i, v in enumerate(vectors)
        ]
    )


def data_files(path: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in path.iterdir()
        if p.is_file() and (p.suffix in (".faiss", ".vlog") or p.name.startswith("meta.sqlite-"))
    }


def index_cli(capsys, command: str, path: Path) -> tuple[int, dict]:
    status = cli.run(argparse.Namespace(index_command=command, index=str(path), json=True))
    out = capsys.readouterr().out
    return status, json.loads(out) if out.startswith("{") else {"message": out}


# ------------------------------------------------------------------ 1. a missing meta.sqlite
def test_a_missing_database_is_refused_and_recover_keeps_every_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        fill(store, unit(rng, 30, DIM))
        store.flush()
        fill(store, unit(rng, 10, DIM), start=30)  # rows past the snapshot, in the log only
    (path / "meta.sqlite").unlink()
    before = data_files(path)
    assert any(name.endswith(".faiss") for name in before)
    for readonly in (False, True):
        with pytest.raises(MissingDatabaseError) as refused:
            ProductStore.open(path, SPACES, OPTIONS, readonly=readonly)
        assert all(name in str(refused.value) for name in before)
        assert "cumpair index recover" in str(refused.value)
    assert data_files(path) == before  # nothing deleted, truncated or created
    assert not (path / "meta.sqlite").exists()

    status, inventory = index_cli(capsys, "recover", path)
    assert status == 0
    kept = Path(inventory["kept_in"])
    assert {p.name: p.read_bytes() for p in kept.iterdir() if p.name in before} == before
    (log_name,) = [n for n in before if n.endswith(".vlog")]
    assert inventory["files"][log_name] | {"bytes": 0} == {
        "bytes": 0, "space": "image", "dim": DIM, "rows": 40, "rows_intact": 40, "offers": 40,
    }  # fmt: skip
    assert json.loads((kept / "inventory.json").read_text()) == inventory
    with ProductStore.open(path, SPACES, OPTIONS) as fresh:  # a fresh store beside the evidence
        assert fresh.count("image") == 0
        assert fresh.health()["damage"]["found"]  # lost+found is not empty
    assert index_cli(capsys, "recover", path)[0] == 1  # the database exists again
    assert index_cli(capsys, "recover", tmp_path / "nowhere")[0] == 1


# ------------------------------------------------------------------ 2. compaction vs searches
def test_searches_never_fail_or_read_another_file_while_compactions_run(tmp_path, monkeypatch):
    """Searches re-rank from the vector log (IVF-PQ) while each compaction switches files.

    Log reads are slowed down (a cold disk) to widen the window in which a compaction can
    replace the file a search has just been handed.
    """
    read = vectorlog.VectorLog.read

    def slow_read(*args, **kwargs):
        time.sleep(0.002)
        return read(*args, **kwargs)

    monkeypatch.setattr(vectorlog.VectorLog, "read", slow_read)
    rng = np.random.default_rng(2)
    stable = unit(rng, 1000, DIM)
    options = StoreOptions(
        upgrade_threshold=1000, max_code_bytes=4, background_upgrade=False, duplicate_threshold=None
    )
    with ProductStore.open(tmp_path / "s", SPACES, options) as store:
        fill(store, stable)
        assert store.health()["spaces"]["image"]["index_type"] == "ivfpq"
        churn = unit(rng, 50, DIM)
        fill(store, churn, shop="b")
        errors: list[BaseException] = []
        searches = [0, 0]
        done = threading.Event()

        def search(seed: int) -> None:
            local = np.random.default_rng(seed)
            try:
                while not done.is_set():
                    queries = stable[local.integers(0, len(stable), 8)]
                    for query, hits in zip(queries, store.search("image", queries, 5), strict=True):
                        for hit in hits:  # every re-ranked score is the true one of that offer
                            if hit.offer_id <= len(stable):
                                exact = float(stable[hit.offer_id - 1] @ query)
                                assert hit.score == pytest.approx(exact, abs=1e-4), hit
                    searches[0] += 1
            except BaseException as exc:
                errors.append(exc)
                done.set()

        def scan() -> None:
            try:
                while not done.is_set():
                    ids = np.concatenate([ids for ids, _ in store.iter_vectors("image")])
                    assert len(ids) == len(stable) + len(churn)
                    searches[1] += 1
            except BaseException as exc:
                errors.append(exc)
                done.set()

        threads = [threading.Thread(target=search, args=(n,)) for n in range(3)]
        threads.append(threading.Thread(target=scan))
        for thread in threads:
            thread.start()
        try:
            for _round in range(12):
                if done.is_set():
                    break
                fill(store, unit(rng, len(churn), DIM), shop="b")  # replaced rows to drop
                assert store.compact()["log_rows_dropped"] == len(churn)
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[:3]
        assert searches[0] > 0 and searches[1] > 0
        assert len(list(tmp_path.glob("s/vectors.image.*"))) == 1


# ------------------------------------------------------------------ 3. damage
def _crash_after(path: Path, vectors: np.ndarray) -> None:
    """Upserts committed, no snapshot of them: the next open replays them from the log."""
    store = ProductStore.open(path, SPACES, OPTIONS)
    fill(store, vectors)
    store._release()


def test_flipped_bytes_in_a_log_row_are_never_searched_and_are_reported(tmp_path, capsys):
    rng = np.random.default_rng(3)
    path = tmp_path / "s"
    images = unit(rng, 50, DIM)
    _crash_after(path, images)
    log = path / "vectors.image.e0001.vlog"
    with open(log, "r+b") as fh:  # 4 bytes of offer 7's vector
        fh.seek(HEADER_BYTES + 6 * ROW_BYTES + 8 + 20)
        fh.write(b"\x7f\x7f\x7f\x7f")
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 49
        tops = [hits[0].offer_id for hits in store.search("image", unit(rng, 200, DIM), 1)]
        assert 7 not in tops
        assert store.search("image", images[7], 1)[0][0].offer_id == 8
        damage = store.health()["damage"]
        assert damage["found"] and damage["damaged_vector_ids"] == {"image": [vector_id(7, 0)]}
        assert store.health()["spaces"]["image"]["damaged_vectors"] == 1
    status, report = index_cli(capsys, "check", path)
    assert status == 1 and not report["ok"]
    assert report["spaces"]["image"]["damaged_offers"] == [7]
    with ProductStore.open(path, SPACES, OPTIONS) as store:  # a re-crawl of the offer heals it
        store.upsert(OfferRecord("a", "http://a/0", price=Decimal(1)), {"image": -images[0]})
        with pytest.raises(StoreError, match="damaged vector rows"):
            store.compact()  # copying the row would launder the damage
        store.upsert(OfferRecord("a", "http://a/6", price=Decimal(1)), {"image": images[6]})
        assert store.search("image", images[6], 1)[0][0].offer_id == 7
        assert store.check()["ok"]
        assert not store.health()["damage"]["found"]
        store.compact()


def test_damage_inside_a_snapshot_is_found_by_check(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        fill(store, unit(rng, 20, DIM))
    with open(path / "vectors.image.e0001.vlog", "r+b") as fh:
        fh.seek(HEADER_BYTES + 3 * ROW_BYTES)  # offer 4's id: another vector's now
        fh.write(b"\x01")
    snapshot = next(path.glob("*.faiss"))
    raw = bytearray(snapshot.read_bytes())
    raw[-1] ^= 0xFF
    snapshot.write_bytes(bytes(raw))
    with ProductStore.open(path, SPACES, OPTIONS, readonly=True) as store:
        report = store.check()
    assert not report["ok"] and report["spaces"]["image"]["damaged_offers"] == [4]
    assert "checksum mismatch" in report["spaces"]["image"]["snapshots"][snapshot.name]


def test_a_log_cut_by_two_bytes_costs_only_the_torn_row(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "s"
    images = unit(rng, 20, DIM)
    _crash_after(path, images)
    log = path / "vectors.image.e0001.vlog"
    os.truncate(log, log.stat().st_size - 2)
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 19
        assert [h[0].offer_id for h in store.search("image", images[:19], 1)] == list(range(1, 20))
        damage = store.health()["damage"]
        assert damage["log_rows_missing"] == {"image": 1}
        assert damage["damaged_vector_ids"] == {"image": [vector_id(20, 0)]}
        fill(store, unit(rng, 5, DIM), start=20)  # appends go on after the torn row
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 24


def test_a_schema_2_store_with_a_torn_raw_log_migrates_and_opens(tmp_path):
    """An existing store (raw float32 log, no checksums) becomes a checksummed one."""
    rng = np.random.default_rng(6)
    path = tmp_path / "old"
    path.mkdir()
    images = unit(rng, 6, DIM)
    conn = sqlite3.connect(path / "meta.sqlite", isolation_level=None)
    for statement in metadata._split_sql(metadata.MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO spaces VALUES ('image', ?, 'test-image', '1', 1, 'x')", (DIM,))
    for i, image in enumerate(images, start=1):
        conn.execute(
            "INSERT INTO offers (id, shop, url, first_seen, last_seen) VALUES (?, 'a', ?, ?, ?)",
            (i, f"http://a/{i}", "2026-11-25T00:00:00+00:00", "2026-11-25T00:00:00+00:00"),
        )
        conn.execute(
            "INSERT INTO vectors VALUES ('image', ?, ?, 0, 1, ?)",
            (vector_id(i, 0), i, image.tobytes()),
        )
    conn.execute("UPDATE state SET value = 1 WHERE key = 'seq'")
    conn.execute("BEGIN")
    metadata.MIGRATIONS[1](conn, path)
    conn.execute("COMMIT")
    conn.execute("PRAGMA user_version=2")
    conn.close()
    legacy = path / "vectors.image.e0001.f32"
    assert legacy.stat().st_size == 6 * DIM * 4
    os.truncate(legacy, legacy.stat().st_size - 2)
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 5
        assert [h[0].offer_id for h in store.search("image", images[:5], 1)] == [1, 2, 3, 4, 5]
        assert store.health()["damage"]["damaged_vector_ids"] == {"image": [vector_id(6, 0)]}
        assert store.health()["schema_version"] == metadata.SCHEMA_VERSION == 6
    assert not legacy.exists() and (path / "vectors.image.e0002.vlog").exists()


def test_restoring_an_older_database_keeps_newer_rows_and_snapshots_aside(tmp_path):
    """What a lost WAL leaves: files newer than the database. They are evidence, not litter."""
    rng = np.random.default_rng(7)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        first = unit(rng, 10, DIM)
        fill(store, first)
    shutil.copy(path / "meta.sqlite", tmp_path / "backup.sqlite")
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        fill(store, unit(rng, 5, DIM), start=10)
    newest = sorted(path.glob("*.faiss"))[-1]
    for stale in path.glob("meta.sqlite*"):
        stale.unlink()
    shutil.copy(tmp_path / "backup.sqlite", path / "meta.sqlite")
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 10
        assert store.search("image", first[3], 1)[0][0].offer_id == 4
        kept = store.health()["damage"]["lost_and_found"]
    assert newest.name in kept
    assert kept["vectors.image.e0001.vlog.after-row-10"] == 5 * ROW_BYTES


def test_opening_some_spaces_keeps_the_snapshots_of_the_others(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "s"
    both = {**SPACES, "text": SpaceSpec(8, "test-text", "1")}
    with ProductStore.open(path, both, OPTIONS) as store:
        vectors = {"image": unit(rng, DIM), "text": unit(rng, 8)}
        store.upsert(OfferRecord("a", "http://a/1"), vectors)
    text_snapshot = next(path.glob("text.*.faiss"))
    with ProductStore.open(path, SPACES, OPTIONS):
        pass
    assert text_snapshot.exists()
    with ProductStore.open(path, both, OPTIONS) as store:
        assert store.count("text") == 1 and store.health()["last_recovery"] is None


# ------------------------------------------------------------------ 4. a full disk
class _FullDisk:
    """A file whose write stores part of the data, then fails like a full disk."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def write(self, data) -> int:
        self._fh.write(bytes(memoryview(data)[:4096]))
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_snapshot_write_on_a_full_disk_removes_its_temp_file_and_raises_a_store_error(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(8)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        fill(store, unit(rng, 200, DIM))

        def full_disk(*args) -> _FullDisk:
            return _FullDisk(open(*args))  # closed by _FullDisk.__exit__

        monkeypatch.setattr(snapshots, "open", full_disk, False)
        with pytest.raises(StoreIOError) as full:
            store.flush()
        assert full.value.errno == errno.ENOSPC and isinstance(full.value, StoreError)
        assert sorted(p.name for p in path.iterdir() if p.name.endswith((".tmp", ".faiss"))) == []
        monkeypatch.undo()
        assert store.flush() == 1  # the space stayed dirty: the next flush writes it


def test_a_vector_log_write_on_a_full_disk_raises_a_store_error_and_commits_nothing(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(9)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        fill(store, unit(rng, 5, DIM))

        def full(fd: int, data, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full)
        with pytest.raises(StoreIOError, match="No space left"):
            fill(store, unit(rng, 5, DIM), start=5)
        monkeypatch.undo()
        assert store.health()["offers"] == 5 and store.count("image") == 5
        fill(store, unit(rng, 5, DIM), start=5)
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert store.count("image") == 10 and store.check()["ok"]


def test_a_full_database_raises_a_store_error_and_the_store_stays_usable(tmp_path):
    rng = np.random.default_rng(10)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        fill(store, unit(rng, 5, DIM))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
        with pytest.raises(StoreIOError) as full:
            fill(store, unit(rng, 500, DIM), start=5)
        assert full.value.errno == errno.ENOSPC and "meta.sqlite" in str(full.value)
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        assert store.health()["offers"] == 5 and store.count("image") == 5
        fill(store, unit(rng, 500, DIM), start=5)
        assert store.count("image") == 505


# ------------------------------------------------------------------ 5. settings
def test_every_store_option_is_a_cumpair_index_setting_with_its_default():
    from cumpair_scraper import settings as project
    from cumpair_scraper.pipelines.index import store_options_from_settings

    settings = Settings()
    settings.setmodule(project)
    declared = {name for name in dir(project) if name.startswith("CUMPAIR_INDEX_")}
    assert declared == {f"CUMPAIR_INDEX_{f.name.upper()}" for f in fields(StoreOptions)}
    assert store_options_from_settings(settings) == StoreOptions()
    for name, value in {
        "CUMPAIR_INDEX_LOCK_TIMEOUT_S": "2.5",
        "CUMPAIR_INDEX_SYNCHRONOUS": "FULL",
        "CUMPAIR_INDEX_USE_OPQ": "false",
        "CUMPAIR_INDEX_DUPLICATE_THRESHOLD": "None",
        "CUMPAIR_INDEX_UPGRADE_THRESHOLD": "5000",
    }.items():
        settings.set(name, value, priority="cmdline")  # what `-s NAME=value` gives
    options = store_options_from_settings(settings)
    assert (options.lock_timeout_s, options.synchronous, options.use_opq) == (2.5, "FULL", False)
    assert options.duplicate_threshold is None and options.upgrade_threshold == 5000
    settings.set("CUMPAIR_INDEX_BACKUPS_KEEP", "three", priority="cmdline")
    with pytest.raises(ValueError, match="CUMPAIR_INDEX_BACKUPS_KEEP"):
        store_options_from_settings(settings)
    old = Settings({"INDEX_FLUSH_INTERVAL": "60"})
    with pytest.raises(
        ValueError, match="INDEX_FLUSH_INTERVAL is now CUMPAIR_INDEX_FLUSH_INTERVAL_S"
    ):
        store_options_from_settings(old)
