"""Offer condition, shipping and spec conflicts: stored, read back, validated, migrated in."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from cumpair.index import InvalidOfferError, OfferRecord, ProductStore, SpaceSpec, metadata
from cumpair.ingest.stages import offer_record

SPACES = {"image": SpaceSpec(4, "test-image", "1")}
SHIPPING = [
    {"country": "DE", "rate": "4.99", "currency": "EUR", "days": [1, 3]},
    {"country": "AT", "rate": "0", "currency": "EUR", "min_order": "50"},
]
CONFLICTS = [{"field": "capacity_l", "page": 1.7, "image": 1.5, "image_url": "http://n/a.jpg"}]


def offer(url: str = "http://n/p/1", **fields) -> OfferRecord:
    return OfferRecord(shop="northwind", url=url, price=Decimal("19.99"), **fields)


def test_condition_shipping_and_spec_conflicts_round_trip(tmp_path: Path):
    with ProductStore.open(tmp_path / "s", SPACES) as store:
        oid = store.upsert(
            offer(condition="https://schema.org/UsedCondition", shipping=SHIPPING,
                  spec_conflicts=CONFLICTS)
        ).offer_id  # fmt: skip
        plain = store.upsert(offer(url="http://n/p/2")).offer_id
        got = store.get_offers([oid, plain])
    assert got[oid].condition == "Used"
    assert got[oid].shipping == SHIPPING and got[oid].spec_conflicts == CONFLICTS
    assert (got[plain].condition, got[plain].shipping, got[plain].spec_conflicts) == (None, [], [])


def test_a_sighting_older_than_the_last_adds_its_point_and_changes_nothing_else(tmp_path: Path):
    """Sightings are stamped with their crawl time, so one can arrive after a later one (a
    crawler's spool drained late): the offer keeps the later sighting's fields."""
    from datetime import UTC, datetime

    def day(d: int) -> datetime:
        return datetime(2026, 1, d, 12, tzinfo=UTC)

    def sighting(seen_at: datetime, title: str, price: str) -> OfferRecord:
        return OfferRecord(
            shop="northwind", url="http://n/p/1", title=title, price=Decimal(price), seen_at=seen_at
        )

    with ProductStore.open(tmp_path / "s", SPACES) as store:
        oid = store.upsert(sighting(day(2), "new", "8.00")).offer_id
        store.upsert(sighting(day(1), "old", "10.00"))
        got = store.get_offers([oid])[oid]
        history = store.price_history(oid)
    assert (got.title, got.price) == ("new", Decimal("8.00"))
    assert (got.first_seen, got.last_seen) == (day(1), day(2))
    assert [(p.price, p.seen_at) for p in history] == [
        (Decimal("10.00"), day(1)),
        (Decimal("8.00"), day(2)),
    ]


def test_a_recrawl_replaces_the_offer_fields(tmp_path: Path):
    with ProductStore.open(tmp_path / "s", SPACES) as store:
        oid = store.upsert(offer(condition="New", shipping=SHIPPING)).offer_id
        store.upsert(offer(condition="RefurbishedCondition"))
        got = store.get_offers([oid])[oid]
    assert (got.condition, got.shipping) == ("Refurbished", [])


@pytest.mark.parametrize(
    "fields",
    [
        {"condition": "Mint"},
        {"condition": 3},
        {"shipping": {"country": "DE"}},
        {"shipping": ["free"]},
        {"spec_conflicts": [{"page": 1, "image": 2}]},
        {"spec_conflicts": "capacity_l"},
    ],
)
def test_bad_offer_fields_raise_clear_errors_and_store_nothing(tmp_path: Path, fields):
    with ProductStore.open(tmp_path / "s", SPACES) as store:
        with pytest.raises(InvalidOfferError, match=next(iter(fields))):
            store.upsert(offer(**fields))
        assert store.get_offers([1]) == {}


def test_a_schema_3_store_gains_the_columns_and_keeps_its_offers(tmp_path: Path):
    path = tmp_path / "old"
    path.mkdir()
    conn = sqlite3.connect(path / "meta.sqlite", isolation_level=None)
    for step in metadata.MIGRATIONS[:3]:
        conn.execute("BEGIN")
        if isinstance(step, str):
            for statement in metadata._split_sql(step):
                conn.execute(statement)
        else:
            step(conn, path)
        conn.execute("COMMIT")
    conn.execute(
        "INSERT INTO offers (id, shop, url, first_seen, last_seen) VALUES (1, 'a', 'http://a/1',"
        " '2026-11-25T00:00:00+00:00', '2026-11-25T00:00:00+00:00')"
    )
    conn.execute("PRAGMA user_version=3")
    conn.close()
    with ProductStore.open(path, SPACES) as store:
        old = store.get_offers([1])[1]
        assert (old.url, old.condition, old.shipping, old.spec_conflicts) == (
            "http://a/1",
            None,
            [],
            [],
        )
        oid = store.upsert(OfferRecord(shop="a", url="http://a/1", condition="New")).offer_id
        assert oid == 1 and store.get_offers([1])[1].condition == "New"
        assert store.health()["schema_version"] == metadata.SCHEMA_VERSION


def test_offer_record_carries_the_item_fields():
    item = {"shop": "n", "url": "http://n/1", "condition": "NewCondition", "shipping": SHIPPING,
            "spec_conflicts": CONFLICTS}  # fmt: skip
    record = offer_record(item, ["full/a.jpg"])
    assert (record.condition, record.shipping, record.spec_conflicts) == (
        "NewCondition",
        SHIPPING,
        CONFLICTS,
    )
    bare = offer_record({"shop": "n", "url": "http://n/2"}, [])
    assert (bare.condition, bare.shipping, bare.spec_conflicts) == (None, [], [])


BAD_TIMES = ["yesterday", "2026-13-01T00:00:00", 12345, "9999-12-31T23:00:00-02:00",
             "0001-01-01T00:30:00+01:00", "2999-01-01T00:00:00"]  # fmt: skip


@pytest.mark.parametrize("value", BAD_TIMES)
def test_a_crawled_at_that_is_no_time_the_store_can_keep_is_an_invalid_offer(value):
    """Not ISO, past the years a UTC datetime holds, or in the future: refused as invalid
    (the indexer and the spool drain keep such an entry aside and go on) rather than a bare
    ValueError or OverflowError that stops them at the same entry on every restart."""
    with pytest.raises(InvalidOfferError, match="crawled_at"):
        offer_record({"shop": "n", "url": "http://n/1", "crawled_at": value}, [])


def test_crawled_at_is_the_same_instant_in_utc_after_the_store_round_trip(tmp_path: Path):
    """Naive text (UTC, as the crawl writes it), an offset, a Z and microseconds all come back
    from the store as the same instant: the indexer's exact-time test holds for each."""
    values = ["2026-01-01T10:00:00", "2026-01-01T12:00:00+02:00", "2026-01-01T10:00:00Z",
              "2026-01-01T10:00:00.123456-03:30"]  # fmt: skip
    with ProductStore.open(tmp_path / "s", SPACES) as store:
        for n, value in enumerate(values):
            record = offer_record({"shop": "n", "url": f"http://n/{n}", "crawled_at": value}, [])
            assert record.seen_at.utcoffset() is not None
            oid = store.upsert(record).offer_id
            assert [p.seen_at for p in store.price_history(oid)] == [record.seen_at]
