"""The SQLite half of the product store: offers, price history, raw vectors and the op sequence.

SQLite is the store's source of truth and its write-ahead log: every upsert/remove commits the
offer rows *and* the raw vectors in one transaction stamped with a sequence number, so FAISS files
are only snapshots that can be rebuilt or brought up to date by replaying rows with a newer
``seq``. Schema changes go through `MIGRATIONS` (append a step; never edit an applied one).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from cumpair.index.records import (
    OfferRecord,
    PricePoint,
    SearchFilters,
    SpaceSpec,
)

# Each step runs once, in order; PRAGMA user_version records how many ran. Other parts (issue 6
# product grouping) extend the schema by appending a step here.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO state VALUES ('seq', 0), ('generation', 0), ('purged_seq', 0);
    CREATE TABLE spaces (
        name TEXT PRIMARY KEY, dim INTEGER NOT NULL, encoder TEXT NOT NULL,
        version TEXT NOT NULL, normalize INTEGER NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE offers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        shop TEXT NOT NULL, url TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
        price TEXT, price_num REAL, currency TEXT, availability TEXT,
        brand TEXT, model TEXT, sku TEXT, gtin TEXT, category TEXT,
        image_paths TEXT NOT NULL DEFAULT '[]', image_urls TEXT NOT NULL DEFAULT '[]',
        specs TEXT NOT NULL DEFAULT '{}',
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        product_id INTEGER,
        UNIQUE (shop, url));
    CREATE INDEX offers_shop_gtin ON offers (shop, gtin) WHERE gtin IS NOT NULL;
    CREATE INDEX offers_product ON offers (product_id) WHERE product_id IS NOT NULL;
    CREATE TABLE price_history (
        id INTEGER PRIMARY KEY,
        offer_id INTEGER NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
        price TEXT, currency TEXT, availability TEXT, seen_at TEXT NOT NULL);
    CREATE INDEX price_history_offer ON price_history (offer_id, seen_at);
    CREATE TABLE vectors (
        space TEXT NOT NULL, vector_id INTEGER NOT NULL, offer_id INTEGER NOT NULL,
        ordinal INTEGER NOT NULL, seq INTEGER NOT NULL, vec BLOB NOT NULL,
        PRIMARY KEY (space, vector_id));
    CREATE INDEX vectors_seq ON vectors (space, seq);
    CREATE INDEX vectors_offer ON vectors (offer_id);
    CREATE TABLE tombstones (
        space TEXT NOT NULL, vector_id INTEGER NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (space, vector_id));
    CREATE INDEX tombstones_seq ON tombstones (space, seq);
    CREATE TABLE snapshots (
        space TEXT NOT NULL, generation INTEGER NOT NULL, file TEXT NOT NULL,
        seq INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        index_type TEXT NOT NULL, params TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (space, generation));
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_OFFER_COLUMNS = (
    "id, shop, url, title, price, currency, availability, brand, model, sku, gtin, category, "
    "image_paths, image_urls, specs, first_seen, last_seen, product_id"
)


@dataclass(frozen=True)
class SnapshotRow:
    """A committed FAISS snapshot file of one space (the newest per space is the current one)."""

    space: str
    generation: int
    file: str
    seq: int
    sha256: str
    size: int
    index_type: str
    params: dict[str, Any]
    created_at: str


def connect(path: Path, *, readonly: bool, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open the metadata database (WAL: readers never block the writer nor see partial rows)."""
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=30,
            isolation_level=None,
        )
    else:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; refuse a database written by a newer version of this code."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"metadata schema {current} is newer than this code ({SCHEMA_VERSION})")
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _split_sql(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' (the schema has no literals with ;)
    return [part.strip() for part in script.split(";") if part.strip()]


def state(conn: sqlite3.Connection, key: str) -> int:
    return int(conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0])


def set_state(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("UPDATE state SET value = ? WHERE key = ?", (value, key))


def space_specs(conn: sqlite3.Connection) -> dict[str, SpaceSpec]:
    rows = conn.execute("SELECT name, dim, encoder, version, normalize FROM spaces").fetchall()
    return {r[0]: SpaceSpec(int(r[1]), r[2], r[3], bool(r[4])) for r in rows}


def add_space(conn: sqlite3.Connection, name: str, spec: SpaceSpec, now: str) -> None:
    conn.execute(
        "INSERT INTO spaces VALUES (?, ?, ?, ?, ?, ?)",
        (name, spec.dim, spec.encoder, spec.version, int(spec.normalize), now),
    )


def _iso(value: datetime) -> str:
    return value.isoformat()


def offer_row_values(offer: OfferRecord) -> dict[str, Any]:
    """Column values of an offer (price exact as text, plus a REAL copy for range filters)."""
    return {
        "shop": offer.shop,
        "url": offer.url,
        "title": offer.title or "",
        "price": None if offer.price is None else str(offer.price),
        "price_num": None if offer.price is None else float(offer.price),
        "currency": offer.currency,
        "availability": offer.availability,
        "brand": offer.brand,
        "model": offer.model,
        "sku": offer.sku,
        "gtin": offer.gtin,
        "category": offer.category,
        "image_paths": json.dumps(list(offer.image_paths)),
        "image_urls": json.dumps(list(offer.image_urls)),
        "specs": json.dumps(offer.specs, sort_keys=True, default=str),
    }


def insert_offer(conn: sqlite3.Connection, offer: OfferRecord, seen: datetime) -> int:
    values = offer_row_values(offer)
    values["first_seen"] = values["last_seen"] = _iso(seen)
    cols = ", ".join(values)
    marks = ", ".join(f":{c}" for c in values)
    cur = conn.execute(f"INSERT INTO offers ({cols}) VALUES ({marks})", values)
    return int(cur.lastrowid)


def update_offer(
    conn: sqlite3.Connection, offer_id: int, offer: OfferRecord, seen: datetime, keep_url: bool
) -> None:
    values = offer_row_values(offer)
    if keep_url:
        del values["url"]
    values["last_seen"] = _iso(seen)
    assignments = ", ".join(f"{c} = :{c}" for c in values)
    values["id"] = offer_id
    conn.execute(f"UPDATE offers SET {assignments} WHERE id = :id", values)


def append_price(conn: sqlite3.Connection, offer_id: int, offer: OfferRecord, seen: datetime):
    conn.execute(
        "INSERT INTO price_history (offer_id, price, currency, availability, seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            offer_id,
            None if offer.price is None else str(offer.price),
            offer.currency,
            offer.availability,
            _iso(seen),
        ),
    )


def find_offer(conn: sqlite3.Connection, shop: str, url: str) -> int | None:
    row = conn.execute("SELECT id FROM offers WHERE shop = ? AND url = ?", (shop, url)).fetchone()
    return None if row is None else int(row[0])


def find_offer_by_gtin(conn: sqlite3.Connection, shop: str, gtin: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM offers WHERE shop = ? AND gtin = ? ORDER BY id LIMIT 1", (shop, gtin)
    ).fetchone()
    return None if row is None else int(row[0])


def current_price(conn: sqlite3.Connection, offer_id: int) -> tuple[str | None, str | None]:
    row = conn.execute("SELECT price, currency FROM offers WHERE id = ?", (offer_id,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def offer_shops(conn: sqlite3.Connection, offer_ids: Iterable[int]) -> dict[int, str]:
    ids = list(offer_ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, shop FROM offers WHERE id IN ({marks})", ids)
    return {int(i): s for i, s in rows}


def _offer_from_row(row: tuple) -> OfferRecord:
    return OfferRecord(
        id=int(row[0]),
        shop=row[1],
        url=row[2],
        title=row[3],
        price=None if row[4] is None else Decimal(row[4]),
        currency=row[5],
        availability=row[6],
        brand=row[7],
        model=row[8],
        sku=row[9],
        gtin=row[10],
        category=row[11],
        image_paths=tuple(json.loads(row[12])),
        image_urls=tuple(json.loads(row[13])),
        specs=json.loads(row[14]),
        first_seen=datetime.fromisoformat(row[15]),
        last_seen=datetime.fromisoformat(row[16]),
        seen_at=datetime.fromisoformat(row[16]),
        product_id=row[17],
    )


def get_offers(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, OfferRecord]:
    wanted = [int(i) for i in ids]
    found: dict[int, OfferRecord] = {}
    for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
        chunk = wanted[start : start + 900]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT {_OFFER_COLUMNS} FROM offers WHERE id IN ({marks})"
        for row in conn.execute(query, chunk):
            found[int(row[0])] = _offer_from_row(row)
    return found


def price_history(conn: sqlite3.Connection, offer_id: int) -> list[PricePoint]:
    rows = conn.execute(
        "SELECT price, currency, availability, seen_at FROM price_history"
        " WHERE offer_id = ? ORDER BY seen_at, id",
        (offer_id,),
    )
    return [
        PricePoint(None if p is None else Decimal(p), c, a, datetime.fromisoformat(s))
        for p, c, a, s in rows
    ]


def filtered_vector_ids(conn: sqlite3.Connection, space: str, filters: SearchFilters) -> np.ndarray:
    """Vector ids of `space` whose offers pass `filters` (for a FAISS IDSelector)."""
    clauses, params = ["v.space = ?"], [space]
    if filters.shops is not None:
        clauses.append(f"o.shop IN ({','.join('?' * len(filters.shops))})")
        params += list(filters.shops)
    for column in ("currency", "availability", "category"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"o.{column} = ?")
            params.append(value)
    if filters.min_price is not None:
        clauses.append("o.price_num >= ?")
        params.append(float(filters.min_price))
    if filters.max_price is not None:
        clauses.append("o.price_num <= ?")
        params.append(float(filters.max_price))
    rows = conn.execute(
        "SELECT v.vector_id FROM vectors v JOIN offers o ON o.id = v.offer_id WHERE "
        + " AND ".join(clauses),
        params,
    ).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def offer_vectors(conn: sqlite3.Connection, space: str, offer_id: int) -> dict[int, bytes]:
    """Current vectors of one offer in one space: ordinal -> raw float32 bytes."""
    rows = conn.execute(
        "SELECT ordinal, vec FROM vectors WHERE space = ? AND offer_id = ?", (space, offer_id)
    )
    return {int(o): bytes(v) for o, v in rows}


def put_vector(
    conn: sqlite3.Connection, space: str, vid: int, offer_id: int, ordinal: int, seq: int, vec
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO vectors (space, vector_id, offer_id, ordinal, seq, vec)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (space, vid, offer_id, ordinal, seq, vec),
    )
    conn.execute("DELETE FROM tombstones WHERE space = ? AND vector_id = ?", (space, vid))


def drop_vector(conn: sqlite3.Connection, space: str, vid: int, seq: int) -> None:
    conn.execute("DELETE FROM vectors WHERE space = ? AND vector_id = ?", (space, vid))
    conn.execute(
        "INSERT OR REPLACE INTO tombstones (space, vector_id, seq) VALUES (?, ?, ?)",
        (space, vid, seq),
    )


def count_vectors(conn: sqlite3.Connection, space: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM vectors WHERE space = ?", (space,)).fetchone()[0])


def changes_since(
    conn: sqlite3.Connection, space: str, seq: int, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What changed in `space` after `seq`: (ids to drop from an index, ids to add, their vectors).

    Every touched id is dropped first, then the live ones re-added, which makes replay idempotent
    whatever the snapshot already held.
    """
    touched = [
        r[0]
        for r in conn.execute(
            "SELECT vector_id FROM tombstones WHERE space = ? AND seq > ?", (space, seq)
        )
    ]
    add_ids: list[int] = []
    chunks: list[bytes] = []
    for vid, vec in conn.execute(
        "SELECT vector_id, vec FROM vectors WHERE space = ? AND seq > ? ORDER BY vector_id",
        (space, seq),
    ):
        add_ids.append(vid)
        chunks.append(vec)
    drop = np.array(touched + add_ids, dtype=np.int64)
    vectors = np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(len(add_ids), dim)
    return drop, np.array(add_ids, dtype=np.int64), vectors


def iter_vectors(
    conn: sqlite3.Connection, space: str, dim: int, batch: int = 65536
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All live vectors of a space in id order, as (ids, float32 matrix) batches."""
    cursor = conn.execute(
        "SELECT vector_id, vec FROM vectors WHERE space = ? ORDER BY vector_id", (space,)
    )
    while rows := cursor.fetchmany(batch):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
        yield ids, mat


def fetch_vectors(
    conn: sqlite3.Connection, space: str, ids: np.ndarray, dim: int
) -> dict[int, np.ndarray]:
    """Raw vectors by id (for exact re-ranking of IVF-PQ candidates)."""
    out: dict[int, np.ndarray] = {}
    unique = np.unique(ids[ids >= 0]).tolist()
    for start in range(0, len(unique), 900):
        chunk = unique[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for vid, vec in conn.execute(
            f"SELECT vector_id, vec FROM vectors WHERE space = ? AND vector_id IN ({marks})",
            [space, *chunk],
        ):
            out[int(vid)] = np.frombuffer(vec, dtype=np.float32)
    return out


def snapshots(conn: sqlite3.Connection, space: str) -> list[SnapshotRow]:
    """Committed snapshots of a space, newest first."""
    rows = conn.execute(
        "SELECT space, generation, file, seq, sha256, size, index_type, params, created_at"
        " FROM snapshots WHERE space = ? ORDER BY generation DESC",
        (space,),
    ).fetchall()
    return [
        SnapshotRow(r[0], int(r[1]), r[2], int(r[3]), r[4], int(r[5]), r[6], json.loads(r[7]), r[8])
        for r in rows
    ]


def add_snapshot(conn: sqlite3.Connection, row: SnapshotRow) -> None:
    conn.execute(
        "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.space,
            row.generation,
            row.file,
            row.seq,
            row.sha256,
            row.size,
            row.index_type,
            json.dumps(row.params),
            row.created_at,
        ),
    )


def delete_snapshot(conn: sqlite3.Connection, space: str, generation: int) -> None:
    conn.execute("DELETE FROM snapshots WHERE space = ? AND generation = ?", (space, generation))


def record_event(conn: sqlite3.Connection, at: str, kind: str, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO events (at, kind, detail) VALUES (?, ?, ?)", (at, kind, json.dumps(detail))
    )


def last_event(conn: sqlite3.Connection, kind: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT at, detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
    ).fetchone()
    return None if row is None else {"at": row[0], **json.loads(row[1])}
