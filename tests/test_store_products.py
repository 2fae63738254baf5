"""Products in the store's database: membership in offers.product_id, one writer, migration."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cumpair.index import OfferRecord, ProductStore, StoreLockedError, StoreOptions, metadata
from cumpair.search.cli import open_service
from cumpair.search.products import ProductGroups

OPTIONS = StoreOptions(duplicate_threshold=None)
T = "2026-11-25T00:00:00+00:00"
# The grouping's own database before schema 5 (what search/products.py created until then).
LEGACY_SCHEMA = """
CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT '', brand TEXT, model TEXT, gtin TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE members (
    offer_id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id),
    shop TEXT NOT NULL, url TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    gtin TEXT, brand TEXT, models TEXT NOT NULL DEFAULT '', specs TEXT NOT NULL DEFAULT '{}',
    rule TEXT NOT NULL, score REAL NOT NULL, matched_offer INTEGER,
    evidence TEXT NOT NULL DEFAULT '{}', assigned_at TEXT NOT NULL);
CREATE TABLE model_codes (
    code TEXT NOT NULL, offer_id INTEGER NOT NULL, PRIMARY KEY (code, offer_id));
"""


def _schema_4_store(path: Path, offers: list[tuple[int, str, str]]) -> None:
    """A store as the code before products moved in wrote it: schema 4, offers only."""
    path.mkdir()
    conn = sqlite3.connect(path / "meta.sqlite", isolation_level=None)
    for step in metadata.MIGRATIONS[:4]:
        conn.execute("BEGIN")
        if isinstance(step, str):
            for statement in metadata._split_sql(step):
                conn.execute(statement)
        else:
            step(conn, path)
        conn.execute("COMMIT")
    conn.executemany(
        "INSERT INTO offers (id, shop, url, title, gtin, first_seen, last_seen)"
        " VALUES (?, ?, ?, 'Kettle', '4006381333931', ?, ?)",
        [(i, shop, url, T, T) for i, shop, url in offers],
    )
    conn.execute("PRAGMA user_version=4")
    conn.close()


def _legacy_products(path: Path, members: list[tuple[int, int, str, str]]) -> None:
    conn = sqlite3.connect(path / "products.sqlite")
    conn.executescript(LEGACY_SCHEMA)
    conn.execute("INSERT INTO products VALUES (7, 'Kettle', 'Acme', 'K1', '4006381333931', ?, ?)",
                 (T, T))  # fmt: skip
    conn.execute("INSERT INTO products VALUES (8, 'Gone', NULL, NULL, NULL, ?, ?)", (T, T))
    evidence = json.dumps({"rule": "gtin"})
    conn.executemany(
        "INSERT INTO members VALUES (?, ?, ?, ?, 'Kettle', '4006381333931', 'acme', 'k1', '{}',"
        " 'gtin', 1.0, NULL, ?, ?)",
        [(*m, evidence, T) for m in members],
    )
    conn.executemany("INSERT INTO model_codes VALUES ('k1', ?)", [(m[0],) for m in members])
    conn.commit()
    conn.close()


def test_an_old_products_sqlite_moves_into_the_store_and_stale_rows_are_dropped(tmp_path):
    path = tmp_path / "old"
    _schema_4_store(
        path, [(1, "a", "http://a/1"), (2, "b", "http://b/1"), (3, "c", "http://c/new")]
    )
    _legacy_products(
        path,
        [(1, 7, "a", "http://a/1"), (2, 7, "b", "http://b/1"),
         (3, 7, "c", "http://c/old"),  # the offer's URL changed since: stale
         (4, 8, "d", "http://d/1")],  # the offer is gone: stale, and product 8 with it
    )  # fmt: skip
    with ProductStore.open(path, {}, OPTIONS) as store:
        assert store.health()["schema_version"] == metadata.SCHEMA_VERSION == 6
        assert [store.get_offers([i])[i].product_id for i in (1, 2, 3)] == [7, 7, None]
        with ProductGroups.open(path) as groups:
            assert groups.count() == (1, 2)
            assert groups.offers_of(7) == [1, 2] and groups.product(8) is None
            assert groups.membership(2).rule == "gtin"
            assert groups.membership(2).evidence == {"rule": "gtin"}
            assert groups.membership(3) is None
            assert groups.products_with_gtin("4006381333931") == [7]
            assert groups.products_with_model("k1") == [7]
            assert groups.offers_with_url("http://b/1") == [2]
    assert not (path / "products.sqlite").exists()
    assert (path / "products.sqlite.migrated").is_file()
    with ProductGroups.open(path, readonly=True) as groups:  # a search after the migration
        assert groups.offers_of(7) == [1, 2]


def test_an_old_store_without_products_sqlite_opens_ungrouped(tmp_path):
    path = tmp_path / "old"
    _schema_4_store(path, [(1, "a", "http://a/1")])
    with ProductStore.open(path, {}, OPTIONS):
        pass
    with ProductGroups.open(path, readonly=True) as groups:
        assert groups.count() == (0, 0) and groups.membership(1) is None


def test_grouping_writes_offers_product_id_and_removal_drops_the_membership(tmp_path):
    with ProductStore.open(tmp_path, {}, OPTIONS) as store, ProductGroups.open(tmp_path) as groups:
        ids = [
            store.upsert(OfferRecord(shop=s, url=f"http://{s}/1", title="Kettle K1",
                                     gtin="4006381333931")).offer_id
            for s in ("a", "b")
        ]  # fmt: skip
        product = {groups.assign(store, i, {}).product_id for i in ids}
        assert len(product) == 1
        assert {store.get_offers(ids)[i].product_id for i in ids} == product
        store.remove(ids[0])
        assert groups.membership(ids[0]) is None and groups.offers_of(product.pop()) == [ids[1]]
    assert not (tmp_path / "products.sqlite").exists()


def test_grouping_joins_the_store_writer_of_its_process_and_holds_the_lock(tmp_path):
    store = ProductStore.open(tmp_path, {}, OPTIONS)
    groups = ProductGroups.open(tmp_path, lock_timeout_s=0)  # shares the store's lock
    store.close()  # the grouping still writes: the lock stays held for it
    with pytest.raises(StoreLockedError):
        ProductStore.open(tmp_path, {}, StoreOptions(lock_timeout_s=0))
    groups.close()
    ProductStore.open(tmp_path, {}, StoreOptions(lock_timeout_s=0)).close()


HOLDER = """
import sys
from cumpair.index import ProductStore
with ProductStore.open(sys.argv[1], {}):
    print("ready", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_writable_grouping_is_refused_while_another_process_writes_the_store(
    tmp_path, monkeypatch
):
    ProductStore.open(tmp_path, {}).close()
    # `cumpair search --regroup` waits ProductGroups.open's default 10 s for the lock before it
    # refuses; the refusal is the same after any wait, so here the default is 0.2 s.
    opened = ProductGroups.open.__func__
    monkeypatch.setattr(
        ProductGroups,
        "open",
        classmethod(lambda cls, d, **kw: opened(cls, d, **{"lock_timeout_s": 0.2, **kw})),
    )
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError):
            ProductGroups.open(tmp_path, lock_timeout_s=0)
        with pytest.raises(SystemExit, match="cannot regroup now"):  # `cumpair search --regroup`
            open_service(argparse.Namespace(index=str(tmp_path), encoders="offline"), regroup=True)
        with ProductGroups.open(tmp_path, readonly=True) as groups:  # searches take no lock
            assert groups.count() == (0, 0)
    finally:
        holder.communicate("", timeout=60)


def _kettle(n: int, shop: str, gtin: str | None) -> OfferRecord:
    return OfferRecord(
        shop=shop, url=f"http://{shop}/1", title=f"Acme Kettle K{n}00", brand="Acme",
        model=f"K{n}00", gtin=gtin,
    )  # fmt: skip


def test_every_lookup_grouping_runs_per_offer_searches_an_index(tmp_path):
    """What an offer costs grouping must not grow with the store: each statement `assign`
    runs (on the product tables, and its read of the offer through the store) and the
    GTIN/model look-ups run reads through an index, none scans a table."""
    with ProductStore.open(tmp_path, {}, OPTIONS) as store, ProductGroups.open(tmp_path) as groups:
        ids = [
            store.upsert(_kettle(n, s, gtin)).offer_id
            for n, (s, gtin) in enumerate([("a", "4006381333931"), ("b", "4006381333931"),
                                           ("c", None), ("d", None)])
        ]  # fmt: skip
        traced = {"grouping": groups._tables._conn, "store": store._read_conn()}
        statements: dict[str, list[str]] = {name: [] for name in traced}
        for name, conn in traced.items():
            conn.set_trace_callback(statements[name].append)
        for offer_id in ids + ids[:1]:  # the last: an offer grouped already
            groups.assign(store, offer_id, {})
        changed = store.upsert(_kettle(9, "d", "4006381333931")).offer_id  # its identity changed
        groups.assign(store, changed, {})
        groups.products_with_gtin("4006381333931", 5)
        groups.products_with_model("k100", 5)
        groups.offers_of(groups.product_of(ids[:1])[ids[0]])
        for conn in traced.values():
            conn.set_trace_callback(None)
        reads = {
            (name, s)
            for name, run in statements.items()
            for s in run
            if s.split()[0].upper() in ("SELECT", "UPDATE", "DELETE", "WITH")
        }
        assert any(name == "store" for name, _ in reads)
        assert any(s.startswith("DELETE FROM memberships WHERE") for _, s in reads)
        assert len(reads) >= 8
        for name, statement in reads:
            plan = [row[-1] for row in traced[name].execute("EXPLAIN QUERY PLAN " + statement)]
            scans = [step for step in plan if step.startswith("SCAN")]
            assert not scans, (statement, plan)
