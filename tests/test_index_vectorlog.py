"""Vector logs: batched upserts equal one-by-one ones; logs compact, recover and migrate."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import (
    OfferRecord,
    ProductStore,
    SpaceSpec,
    StoreError,
    StoreOptions,
    metadata,
    vector_id,
)
from cumpair.index.locks import WriterLock
from cumpair.index.vectorlog import HEADER_BYTES, VectorLog

SPACES = {"image": SpaceSpec(16, "test-image", "1"), "text": SpaceSpec(8, "test-text", "1")}
OPTIONS = StoreOptions(duplicate_threshold=None)


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def log_files(path: Path, space: str = "image") -> list[Path]:
    return sorted(path.glob(f"vectors.{space}.*.vlog"))


def log_bytes(rows: int, dim: int = 16) -> int:
    """Size of a log of `rows` rows: header, then id + values + CRC per row."""
    return HEADER_BYTES + rows * (8 + dim * 4 + 4)


def messy_batch(rng: np.random.Generator, n: int) -> list[tuple[OfferRecord, dict]]:
    """Offers that repeat URLs and GTINs inside the batch, change images and drop some."""
    items = []
    for i in range(n):
        url = f"http://s/{rng.integers(0, n // 3)}"
        gtin = f"40063813{rng.integers(0, n // 4):05d}" if rng.random() < 0.5 else None
        offer = OfferRecord(
            str(rng.choice(["a", "b"])), url, title=f"t{i}", price=Decimal(int(rng.integers(1, 9))),
            currency="EUR", gtin=gtin,
        )  # fmt: skip
        vectors = {"image": unit(rng, int(rng.integers(0, 4)), 16)}
        if rng.random() < 0.7:
            vectors["text"] = unit(rng, 8)
        items.append((offer, vectors))
    return items


def dump(store: ProductStore) -> tuple:
    conn = store._read_conn()
    offers = conn.execute(
        "SELECT id, shop, url, title, price, gtin FROM offers ORDER BY id"
    ).fetchall()
    history = conn.execute("SELECT offer_id, price FROM price_history ORDER BY id").fetchall()
    vectors = {
        name: {int(i): m.tobytes() for ids, mat in store.iter_vectors(name)
               for i, m in zip(ids, mat, strict=True)}
        for name in SPACES
    }  # fmt: skip
    return offers, history, vectors


def test_gather_read_and_check_take_each_row_whole_and_fail_the_rows_they_should(tmp_path):
    """Rows are copied out whole (id, values and CRC in one pass): each comes back with its own
    values; a row past the end or holding another id fails `gather`; a garbled one passes
    `gather` (no CRC there) but fails `read` and `check`."""
    rng = np.random.default_rng(5)
    path = tmp_path / "v.vlog"
    log = VectorLog(path, 16, writable=True, create=True)
    values = unit(rng, 6, 16)
    log.write(0, np.arange(100, 106), values)
    rows = np.array([4, 0, 5, 2, 9, 1])
    ids = np.array([104, 100, 105, 999, 109, 101])
    got = log.gather(rows, ids)
    assert got.ok.tolist() == [True, True, True, False, False, True]
    assert np.array_equal(got.vectors[[0, 1, 2, 5]], values[[4, 0, 5, 1]])
    assert not got.vectors[[3, 4]].any()
    with open(path, "r+b") as fh:  # one bit of row 5's values flipped
        fh.seek(HEADER_BYTES + 5 * (8 + 16 * 4 + 4) + 8 + 20)
        byte = fh.read(1)[0]
        fh.seek(-1, 1)
        fh.write(bytes([byte ^ 1]))
    fresh = VectorLog(path, 16, writable=False)
    assert fresh.gather(rows[:3], ids[:3]).ok.all()
    assert fresh.read(rows, ids).ok.tolist() == [True, True, False, False, False, True]
    assert fresh.check(rows, ids).tolist() == [True, True, False, False, False, True]
    assert np.array_equal(fresh.read(rows[:2], ids[:2]).vectors, values[[4, 0]])


def test_upsert_many_gives_the_results_of_upserting_one_by_one(tmp_path):
    items = messy_batch(np.random.default_rng(3), 300)
    with ProductStore.open(tmp_path / "one", SPACES, OPTIONS) as one:
        expected = [one.upsert(offer, vectors) for offer, vectors in items]
        expected_state = dump(one)
    with ProductStore.open(tmp_path / "many", SPACES, OPTIONS) as many:
        got = many.upsert_many(items[:150]) + many.upsert_many(items[150:])
        assert got == expected
        assert dump(many) == expected_state
        assert {r.matched_by for r in got} == {"new", "url", "gtin"}


def test_compaction_rewrites_the_log_without_replaced_and_removed_vectors(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        offers = [OfferRecord("a", f"http://a/{i}", price=Decimal(i)) for i in range(40)]
        store.upsert_many([(o, {"image": unit(rng, 2, 16)}) for o in offers])
        final = unit(rng, 20, 16)
        store.upsert_many([(o, {"image": final[i]}) for i, o in enumerate(offers[:20])])
        for offer_id in range(21, 31):
            store.remove(offer_id)
        old_log = log_files(path)[0]
        before = old_log.stat().st_size
        report = store.compact()
        # 100 rows written (40 offers x 2 images, 20 replaced); 40 live (20 x 1, 10 x 2)
        assert report["log_rows_dropped"] == 100 - 40
        (new_log,) = log_files(path)
        assert new_log != old_log and new_log.stat().st_size == log_bytes(40) < before
        hits = store.search("image", final[:5], k=1)
        assert [h[0].offer_id for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)
        state = dump(store)
    with ProductStore.open(path, SPACES, OPTIONS) as reopened:
        assert dump(reopened) == state
        assert reopened.count("image") == 40


def test_log_bytes_of_an_uncommitted_append_are_kept_aside_and_cut_on_open(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "s"
    images = unit(rng, 10, 16)
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.upsert_many(
            [(OfferRecord("a", f"http://a/{i}"), {"image": v}) for i, v in enumerate(images)]
        )
    log = path / "vectors.image.e0001.vlog"
    extra = unit(rng, 3, 16).tobytes() + b"\x01\x02"
    with open(log, "ab") as fh:  # what a kill between the log write and the commit leaves
        fh.write(extra)
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        assert log.stat().st_size == log_bytes(10)
        (kept,) = (path / "lost+found").iterdir()  # the evidence of a maybe-lost commit
        assert kept.read_bytes() == extra
        damage = store.health()["damage"]
        assert damage["found"] and damage["lost_and_found"] == {kept.name: len(extra)}
        assert damage["last_kept_aside"]["files"][0]["file"] == log.name
        store.upsert(OfferRecord("a", "http://a/new"), {"image": images[0] * -1})
        assert store.search("image", images[3], k=1)[0][0].offer_id == 4
        assert store.search("image", -images[0], k=1)[0][0].offer_id == 11


def test_a_schema_1_store_with_vectors_in_sqlite_is_migrated_to_logs(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "old"
    path.mkdir()
    images = unit(rng, 5, 16)
    conn = sqlite3.connect(path / "meta.sqlite", isolation_level=None)
    for statement in metadata._split_sql(metadata.MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO spaces VALUES ('image', 16, 'test-image', '1', 1, 'x')")
    for i, image in enumerate(images, start=1):
        conn.execute(
            "INSERT INTO offers (id, shop, url, first_seen, last_seen) VALUES (?, 'a', ?, ?, ?)",
            (i, f"http://a/{i}", "2026-11-25T00:00:00+00:00", "2026-11-25T00:00:00+00:00"),
        )
        conn.execute(
            "INSERT INTO vectors VALUES ('image', ?, ?, 0, ?, ?)",
            (vector_id(i, 0), i, i, image.tobytes()),
        )
    conn.execute("UPDATE state SET value = 5 WHERE key = 'seq'")
    conn.close()
    held = WriterLock(path)
    held.acquire(1)
    try:  # a writer holds the store: the reader neither waits nor migrates
        with pytest.raises(StoreError, match=r"has schema 1.*cannot be migrated now.*as a writer"):
            ProductStore.open(path, readonly=True)
    finally:
        held.release()
    with ProductStore.open(path, readonly=True) as reader:  # no writer: the reader migrates it
        assert reader.count("image") == 5
        assert [h[0].offer_id for h in reader.search("image", images, k=1)] == [1, 2, 3, 4, 5]
    with ProductStore.open(path, {"image": SPACES["image"]}, OPTIONS) as store:
        assert store.count("image") == 5
        assert [h[0].offer_id for h in store.search("image", images, k=1)] == [1, 2, 3, 4, 5]
        columns = [r[1] for r in store._read_conn().execute("PRAGMA table_info(vectors)")]
        assert "vec" not in columns and "row" in columns
    (log,) = log_files(path)  # converted to a checksummed log; the raw one swept
    assert log.stat().st_size == log_bytes(5)
    assert not list(path.glob("*.f32"))
