"""Durability of the product store: flush, replay, backups, corruption fallback, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions

SPACES = {"image": SpaceSpec(16, "test-image", "1")}


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fill(store: ProductStore, rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    images = unit(rng, n, 16)
    store.upsert_many(
        [
            (OfferRecord("northwind", f"http://n/{start + i}", price=Decimal(i)), {"image": v})
            for i, v in enumerate(images)
        ]
    )
    return images


def snapshot_files(path: Path) -> list[Path]:
    return sorted(path.glob("image.g*.faiss"))


def test_unflushed_upserts_survive_reopen_by_replay(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "s"
    store = ProductStore.open(path, SPACES)
    fill(store, rng, 0, 100)
    store.flush()
    late = fill(store, rng, 100, 50)
    store.remove(1)
    store._release()  # simulate a crash: no final flush
    with ProductStore.open(path, SPACES) as reopened:
        assert reopened.count("image") == 149
        assert reopened.search("image", late[-1], 1)[0][0].offer_id == 150
        assert reopened.health()["spaces"]["image"]["pending_unflushed"] == 51


def test_flush_keeps_n_timestamped_backups_and_writes_nothing_when_clean(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, StoreOptions(backups_keep=2)) as store:
        for round_ in range(5):
            fill(store, rng, round_ * 10, 10)
            assert store.flush() == 1
        assert store.flush() == 0
        health = store.health()["spaces"]["image"]
    files = snapshot_files(path)
    assert len(files) == 3 and len(health["backups"]) == 2
    assert health["snapshot"] == files[-1].name and health["pending_unflushed"] == 0


def test_maybe_flush_waits_for_the_interval(tmp_path, monkeypatch):
    """On a clock the test moves (a slept interval failed on a busy machine)."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    rng = np.random.default_rng(3)
    with ProductStore.open(tmp_path / "s", SPACES, StoreOptions(flush_interval_s=60)) as store:
        fill(store, rng, 0, 5)
        now[0] += 59
        assert store.maybe_flush() is False
        now[0] += 2
        assert store.maybe_flush() is True
        assert store.maybe_flush() is False


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupt_newest_snapshot_falls_back_to_backup_and_reports_it(tmp_path, damage):
    rng = np.random.default_rng(4)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES) as store:
        fill(store, rng, 0, 40)
        store.flush()
        last = fill(store, rng, 40, 40)
    newest = snapshot_files(path)[-1]
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[:100])
    elif damage == "garbage":
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 0xFF
        newest.write_bytes(bytes(data))
    else:
        newest.unlink()
    with ProductStore.open(path, SPACES) as store:
        assert store.count("image") == 80  # backup + replay of the rows after it
        assert store.search("image", last[0], 1)[0][0].offer_id == 41
        recovery = store.health()["last_recovery"]
    assert recovery["space"] == "image" and newest.name in recovery["failed"][0]
    assert recovery["used"] != newest.name


def test_all_snapshots_corrupt_rebuilds_from_sqlite(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES) as store:
        images = fill(store, rng, 0, 30)
        store.flush()
    for file in snapshot_files(path):
        file.write_bytes(b"not a faiss index")
    with ProductStore.open(path, SPACES) as store:
        assert store.count("image") == 30
        assert store.search("image", images[7], 1)[0][0].offer_id == 8
        assert store.health()["last_recovery"]["used"] == "a rebuild from SQLite"


def test_compact_drops_tombstones_and_keeps_removed_offers_gone(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES) as store:
        fill(store, rng, 0, 50)
        store.flush()
        for offer_id in range(1, 21):
            store.remove(offer_id)
        report = store.compact()
        assert report["tombstones_dropped"] == 20
    snapshot_files(path)[-1].unlink()  # only backups from before the compaction are left
    with ProductStore.open(path, SPACES) as store:
        assert store.count("image") == 30  # they are not trusted: rebuilt from SQLite instead
        assert "older than the last compaction" in store.health()["last_recovery"]["failed"][1]


# --------------------------------------------------------------------------- kill -9
_WRITER = r"""
import sys, numpy as np
from decimal import Decimal
from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions
path, start = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(start)
options = StoreOptions(backups_keep=2, duplicate_threshold=None)
store = ProductStore.open(path, {"image": SpaceSpec(64, "t", "1")}, options)
i = start
while True:
    n = 5000 if i == 0 else 50  # a few MB of index, so flushes take long enough to be hit
    batch = [(OfferRecord("s", f"u{j}", price=Decimal(j)), {"image": rng.standard_normal(64)})
             for j in range(i, i + n)]
    store.upsert_many(batch)
    i += n
    print(i, flush=True)          # every offer below i has been committed
    store.flush()                 # continuous flushing: most kills land inside a flush
    print("F", flush=True)
"""


@pytest.mark.slow
def test_kill_9_at_any_moment_loses_no_committed_upsert(tmp_path):
    """25 real processes killed by SIGKILL mid-write/mid-flush; every reopen is exact."""
    path = tmp_path / "s"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    rand = random.Random(42)
    committed = 0
    in_flush = 0
    for _round in range(25):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(committed)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines = []
        deadline = time.monotonic() + 60
        while len(lines) < 2 and time.monotonic() < deadline:  # let it get going
            lines.append(proc.stdout.readline().strip())
        time.sleep(rand.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()
        proc.wait()
        lines += rest
        numbers = [int(x) for x in lines if x.isdigit()]
        assert numbers, f"writer produced nothing: {lines}"
        in_flush += lines[-1] != "F"
        acknowledged = numbers[-1]
        with ProductStore.open(path, {"image": SpaceSpec(64, "t", "1")}) as store:
            count = store.count("image")
            offers = store.health()["offers"]
            # every acknowledged upsert is there; at most the one unacknowledged batch beyond
            assert acknowledged <= count <= acknowledged + 50
            assert offers == count and count % 50 == 0
            probe = store.get_offers([count])[count]
            assert probe.url == f"u{count - 1}"
        committed = count
    assert in_flush >= 5, f"only {in_flush} of 25 kills landed during a flush"
    assert committed >= 5000 + 24 * 50
