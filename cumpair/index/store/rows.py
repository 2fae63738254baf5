"""A store's offer rows read without its vector spaces: `OfferRows`, and `connect_reader`.

A GTIN look-up or a price history reads offers and prices only. `ProductStore` needs numpy and
FAISS (every part of it handles vectors): importing them was a third of such a command's CPU
time (bench/bench_startup.py, `search --gtin`). This module imports neither; the store's
readers open their connection through `connect_reader` too, so both answer an old or missing
database the same way.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from cumpair.index import metadata
from cumpair.index.metadata import DB_NAME
from cumpair.index.records import OfferRecord, PricePoint, StoreError, StoreLockedError
from cumpair.index.store.directory import migrate_locked


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database of the store at `path`, at this code's schema.

    Refuses a missing database (`MissingDatabaseError` when data files remain, else
    `StoreError`), one no writer initialised and one of a newer schema; an older one is
    migrated first when no writer holds the store (`_migrate_for_reader`).
    """
    db_path = path / DB_NAME
    if not db_path.exists():
        from cumpair.index.store.opening import _refuse_without_database  # numpy: only here

        _refuse_without_database(path)
        raise StoreError(f"no product store at {path} ({DB_NAME} missing)")
    conn = metadata.connect(db_path, readonly=True)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == metadata.SCHEMA_VERSION:
        return conn
    conn.close()
    if version == 0:
        raise StoreError(f"{db_path} has not been initialised by a writer yet")
    if version > metadata.SCHEMA_VERSION:
        raise StoreError(
            f"{db_path} has schema {version}, newer than this code reads"
            f" ({metadata.SCHEMA_VERSION}): it was written by a newer Cumpair"
        )
    _migrate_for_reader(path, version)
    return metadata.connect(db_path, readonly=True)


def _migrate_for_reader(path: Path, version: int) -> None:
    """Bring an older store to this code's schema for a reader, when no writer holds it.

    A search after upgrading Cumpair would otherwise fail until the next crawl. Migrating is
    a write, so it takes the writer lock for its duration, never waiting: a running writer has
    migrated on opening already (unless it runs older code), and a reader without write access
    to the directory gets the error it would have had.
    """
    from cumpair.index.locks import WriterLock  # filelock: only to migrate

    lock = WriterLock(path)
    try:
        lock.acquire(0)
    except (StoreLockedError, OSError) as exc:
        raise StoreError(
            f"{path / DB_NAME} has schema {version}, this code reads {metadata.SCHEMA_VERSION},"
            f" and it cannot be migrated now ({exc}): open it once as a writer (a crawl,"
            " `cumpair index save`, or `cumpair reindex`)"
        ) from None
    try:
        migrate_locked(path)
    finally:
        lock.release()


class OfferRows:
    """The offer rows of a store, read-only: the row reads of `OfferStore` (`get_offers`,
    `price_history`, `offers_with_url`) and nothing of its vectors. Takes no lock, so it
    reads beside a crawl that writes; safe across threads (one connection, under a lock)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.readonly = True
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """The rows of the store at `path` (errors as `ProductStore.open(readonly=True)`)."""
        return cls(Path(path), connect_reader(Path(path)))

    def get_offers(self, ids: Iterable[int]) -> dict[int, OfferRecord]:
        """Offer records by id (ids that do not exist are absent from the result)."""
        with self._lock:
            return metadata.get_offers(self._conn, ids)

    def price_history(self, offer_id: int) -> list[PricePoint]:
        """Every recorded (price, currency, availability, seen_at) of an offer, oldest first."""
        with self._lock:
            return metadata.price_history(self._conn, offer_id)

    def offers_with_url(self, url: str) -> list[int]:
        """Ids of the offers at `url` (any shop)."""
        with self._lock:
            return metadata.offers_with_url(self._conn, url)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
