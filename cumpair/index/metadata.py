"""The SQLite half of the product store: offers, price history, raw vectors and the op sequence.

SQLite is the store's source of truth and its write-ahead log: every upsert/remove commits the
offer rows *and* the vector rows in one transaction stamped with a sequence number, so FAISS files
are only snapshots that can be rebuilt or brought up to date by replaying rows with a newer
``seq``. A vector row points at its checksummed values in the space's append-only log file
(vectorlog.py), written before the commit. Schema changes go through `MIGRATIONS` (append a step;
never edit an applied one).

numpy and the vector log (which imports numpy) are imported by the functions that handle
vectors: the row reads (`OfferRows`: GTIN look-ups, price histories) import this module alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cumpair.index import lostfound
from cumpair.index.records import (
    OfferRecord,
    PricePoint,
    SearchFilters,
    SpaceSpec,
    StoreError,
    utcnow,
)

if TYPE_CHECKING:
    import numpy as np

DB_NAME = "meta.sqlite"  # the database's file in a store directory
Migration = str | Callable[[sqlite3.Connection, Path], None]


def _move_vectors_to_logs(conn: sqlite3.Connection, directory: Path) -> None:
    """Schema 2: raw vectors leave SQLite for one append-only log file per space.

    Runs inside the migration's transaction; the log files are written before it commits, and a
    kill before the commit leaves the old schema in place to migrate again (files overwritten).
    """
    from cumpair.index import vectorlog

    for statement in _split_sql(
        """
        CREATE TABLE vector_logs (
            space TEXT PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL);
        CREATE TABLE vectors_v2 (
            space TEXT NOT NULL, vector_id INTEGER NOT NULL, offer_id INTEGER NOT NULL,
            ordinal INTEGER NOT NULL, seq INTEGER NOT NULL, row INTEGER NOT NULL,
            PRIMARY KEY (space, vector_id))
        """
    ):
        conn.execute(statement)
    for (space,) in conn.execute("SELECT name FROM spaces").fetchall():
        name = vectorlog.legacy_log_name(space, 1)  # raw float32 rows; schema 3 converts them
        rows = 0
        with open(directory / name, "wb") as log:
            cursor = conn.execute(
                "SELECT vector_id, offer_id, ordinal, seq, vec FROM vectors WHERE space = ?"
                " ORDER BY vector_id",
                (space,),
            )
            while batch := cursor.fetchmany(4096):
                log.write(b"".join(r[4] for r in batch))
                conn.executemany(
                    "INSERT INTO vectors_v2 VALUES (?, ?, ?, ?, ?, ?)",
                    [(space, *r[:4], rows + i) for i, r in enumerate(batch)],
                )
                rows += len(batch)
            log.flush()
            os.fsync(log.fileno())
        conn.execute("INSERT INTO vector_logs VALUES (?, ?, ?)", (space, name, rows))
    for statement in _split_sql(
        """
        DROP TABLE vectors;
        ALTER TABLE vectors_v2 RENAME TO vectors;
        CREATE INDEX vectors_seq ON vectors (space, seq);
        CREATE INDEX vectors_offer ON vectors (offer_id)
        """
    ):
        conn.execute(statement)


def _checksum_vector_logs(conn: sqlite3.Connection, directory: Path) -> None:
    """Schema 3: every space's raw float32 log becomes a checksummed log (vectorlog.py).

    The live rows are copied, in row order, into the next epoch's file with their ids and
    CRCs; a row the old file had already lost (cut short) is written as a row that fails its
    check, so the damage stays visible. Bytes past the committed rows are kept under
    ``lost+found/``. The old file is swept once this commits; a kill before leaves it current.
    """
    import numpy as np

    from cumpair.index import vectorlog

    for space, dim in conn.execute("SELECT name, dim FROM spaces").fetchall():
        dim = int(dim)
        file, committed = vector_log(conn, space)
        ids, rows = live_vector_rows(conn, space)
        order = np.argsort(rows, kind="stable")
        ids, rows = ids[order], rows[order]
        old_path = directory / file
        size = old_path.stat().st_size if old_path.exists() else 0
        row_bytes = dim * 4
        legacy = (
            np.memmap(old_path, dtype=np.float32, mode="r", shape=(size // row_bytes, dim))
            if size >= row_bytes
            else np.empty((0, dim), np.float32)
        )
        if size > committed * row_bytes:
            with open(old_path, "rb") as fh:
                fh.seek(committed * row_bytes)
                lostfound.keep_bytes(directory, f"{file}.after-row-{committed}", fh.read())
        new_file = vectorlog.log_name(space, vectorlog.log_epoch(file) + 1)
        new = vectorlog.VectorLog(directory / new_file, dim, writable=True, create=True)
        try:
            new.truncate(0)
            for start in range(0, len(rows), 65536):
                part, part_ids = rows[start : start + 65536], ids[start : start + 65536].copy()
                present = part < len(legacy)
                values = np.zeros((len(part), dim), dtype=np.float32)
                values[present] = legacy[part[present]]
                part_ids[~present] = vectorlog.MISSING_ID
                new.write(start, part_ids, values)
            new.sync()
        finally:
            new.close()
        conn.executemany(
            "UPDATE vectors SET row = ? WHERE space = ? AND vector_id = ?",
            [(n, space, vid) for n, vid in enumerate(ids.tolist())],
        )
        set_vector_log(conn, space, new_file, len(ids))


def _title_terms_table(conn: sqlite3.Connection, directory: Path) -> None:
    """Schema 6: the title-term index (title_terms.py), empty; the store's next writable open
    fills it from the offers in committed chunks (`title_terms.backfill`, resumable). A store
    with no offers is complete at once."""
    from cumpair.index import title_terms

    for statement in _split_sql(title_terms.SCHEMA):
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM offers LIMIT 1").fetchone() is None:
        set_state(conn, "title_backfill", -1)


LEGACY_PRODUCTS = "products.sqlite"  # the grouping's own database before schema 5

_PRODUCT_TABLES = """
CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT '', brand TEXT, model TEXT, gtin TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE memberships (
    offer_id INTEGER PRIMARY KEY REFERENCES offers (id) ON DELETE CASCADE,
    match_gtin TEXT, brand_key TEXT, models TEXT NOT NULL DEFAULT '',
    spec_values TEXT NOT NULL DEFAULT '{}',
    rule TEXT NOT NULL, score REAL NOT NULL, matched_offer INTEGER,
    evidence TEXT NOT NULL DEFAULT '{}', assigned_at TEXT NOT NULL);
CREATE INDEX memberships_gtin ON memberships (match_gtin) WHERE match_gtin IS NOT NULL;
CREATE TABLE model_codes (
    code TEXT NOT NULL,
    offer_id INTEGER NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    PRIMARY KEY (code, offer_id));
CREATE INDEX model_codes_offer ON model_codes (offer_id);
CREATE INDEX offers_url ON offers (url)
"""


def _products_into_store(conn: sqlite3.Connection, directory: Path) -> None:
    """Schema 5: products live in this database; an offer's product is ``offers.product_id``.

    ``memberships`` says why an offer is in its product and keeps the grouping's match keys
    (normalised GTIN, brand key, model codes, numeric specs); shop, URL and title are read from
    ``offers``. A ``products.sqlite`` of an older store is copied in: memberships whose offer is
    gone or now has another shop or URL are stale and dropped (those offers, like any not
    grouped yet, wait for the next regroup), then the file is renamed ``*.migrated``.
    """
    for statement in _split_sql(_PRODUCT_TABLES):
        conn.execute(statement)
    legacy = directory / LEGACY_PRODUCTS
    if not legacy.is_file():
        return
    old = sqlite3.connect(legacy)  # read-write, so rows still in its WAL are read too
    try:
        members = old.execute(
            "SELECT offer_id, product_id, shop, url, gtin, brand, models, specs, rule, score,"
            " matched_offer, evidence, assigned_at FROM members"
        ).fetchall()
        products = {
            r[0]: r
            for r in old.execute(
                "SELECT id, title, brand, model, gtin, created_at, updated_at FROM products"
            )
        }
        codes = old.execute("SELECT code, offer_id FROM model_codes").fetchall()
    except sqlite3.DatabaseError as exc:  # not a grouping we know: left as it is, regroup
        record_event(conn, utcnow().isoformat(), "products_migrated", {"error": str(exc)})
        return
    finally:
        old.close()
    offers = {
        int(r[0]): (r[1], r[2])
        for chunk in _chunks([m[0] for m in members])
        for r in conn.execute(
            f"SELECT id, shop, url FROM offers WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
    }
    kept = [m for m in members if offers.get(m[0]) == (m[2], m[3]) and m[1] in products]
    conn.executemany(
        "INSERT INTO products (id, title, brand, model, gtin, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [products[p] for p in sorted({m[1] for m in kept})],
    )
    conn.executemany(
        "INSERT INTO memberships VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(m[0], *m[4:]) for m in kept],
    )
    conn.executemany("UPDATE offers SET product_id = ? WHERE id = ?", [(m[1], m[0]) for m in kept])
    grouped = {m[0] for m in kept}
    conn.executemany(
        "INSERT OR IGNORE INTO model_codes VALUES (?, ?)", [c for c in codes if c[1] in grouped]
    )
    record_event(
        conn,
        utcnow().isoformat(),
        "products_migrated",
        {"memberships": len(kept), "stale": len(members) - len(kept)},
    )
    os.replace(legacy, legacy.with_name(legacy.name + ".migrated"))


# Each step runs once, in order; PRAGMA user_version records how many ran. A step is SQL, or a
# function of (connection, store directory) for steps that move data into files.
MIGRATIONS: list[Migration] = [
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
    _move_vectors_to_logs,
    _checksum_vector_logs,
    # 4: what an offer says beyond its price: schema.org condition, shipping rules as the item
    # gives them (JSON list of objects), and where page and photo specs disagreed (JSON list).
    """
    ALTER TABLE offers ADD COLUMN condition TEXT;
    ALTER TABLE offers ADD COLUMN shipping TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE offers ADD COLUMN spec_conflicts TEXT NOT NULL DEFAULT '[]'
    """,
    _products_into_store,
    _title_terms_table,
]
SCHEMA_VERSION = len(MIGRATIONS)

_OFFER_COLUMNS = (
    "id, shop, url, title, price, currency, availability, brand, model, sku, gtin, category, "
    "image_paths, image_urls, specs, first_seen, last_seen, product_id, condition, shipping, "
    "spec_conflicts"
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


def migrate(conn: sqlite3.Connection, directory: Path) -> int:
    """Apply pending migrations; refuse a database written by a newer version of this code."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(f"metadata schema {current} is newer than this code ({SCHEMA_VERSION})")
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step = MIGRATIONS[version]
            if isinstance(step, str):
                for statement in _split_sql(step):
                    conn.execute(statement)
            else:
                step(conn, directory)
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
    from cumpair.index.vectorlog import log_name

    conn.execute(
        "INSERT INTO spaces VALUES (?, ?, ?, ?, ?, ?)",
        (name, spec.dim, spec.encoder, spec.version, int(spec.normalize), now),
    )
    conn.execute("INSERT INTO vector_logs VALUES (?, ?, 0)", (name, log_name(name, 1)))


class OfferRow(NamedTuple):
    """An offer's column values as stored: price exact as text, plus a REAL copy for filters."""

    shop: str
    url: str
    title: str
    price: str | None
    price_num: float | None
    currency: str | None
    availability: str | None
    brand: str | None
    model: str | None
    sku: str | None
    gtin: str | None
    category: str | None
    image_paths: str
    image_urls: str
    specs: str
    condition: str | None
    shipping: str
    spec_conflicts: str


_ROW_COLUMNS = ", ".join(OfferRow._fields)
# An update never changes the shop (every match is within one shop) and sets the URL only when
# it moved: an indexed column left out of SET costs SQLite no index writes (-4 us an offer).
_UPDATE_NEW_URL = ", ".join(f"{c} = ?" for c in OfferRow._fields if c != "shop")
_UPDATE_KEEP_URL = ", ".join(f"{c} = ?" for c in OfferRow._fields if c not in ("shop", "url"))


def offer_row(
    offer: OfferRecord, price: Decimal | None, currency: str | None, condition: str | None
) -> OfferRow:
    """Column values of `offer`, with its price, currency and condition already validated."""
    return OfferRow(
        offer.shop,
        offer.url,
        offer.title or "",
        None if price is None else str(price),
        None if price is None else float(price),
        currency,
        offer.availability,
        offer.brand,
        offer.model,
        offer.sku,
        offer.gtin,
        offer.category,
        _json_list(offer.image_paths),
        _json_list(offer.image_urls),
        json.dumps(offer.specs, sort_keys=True, default=str) if offer.specs else "{}",
        condition,
        _json_list(offer.shipping, default=str),
        _json_list(offer.spec_conflicts, default=str),
    )


def _json_list(values, default: Callable[[Any], Any] | None = None) -> str:
    return json.dumps(list(values), default=default) if values else "[]"


def offers_by_url(
    conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Offer ids by (shop, url), for the keys that exist (shop and URL are unique together)."""
    return _offers_by(conn, "url", "id", keys)


def offers_by_gtin(
    conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The oldest offer id per (shop, gtin), for the keys that exist."""
    return _offers_by(conn, "gtin", "MIN(id)", keys, group=True)


def _offers_by(
    conn: sqlite3.Connection,
    column: str,
    offer_id: str,
    keys: Iterable[tuple[str, str]],
    group: bool = False,
) -> dict[tuple[str, str], int]:
    # One query per shop and 900 values, on the (shop, url) and (shop, gtin) indexes.
    keys = list(keys)
    shops = {shop for shop, _ in keys}
    if len(shops) == 1:  # a crawl's batch: no grouping per key
        by_shop = {shops.pop(): {value for _, value in keys}}
    else:
        by_shop = {}
        for shop, value in keys:
            by_shop.setdefault(shop, set()).add(value)
    found: dict[tuple[str, str], int] = {}
    for shop, values in by_shop.items():
        for chunk in _chunks(sorted(values)):  # sorted: each query reads one stretch of the index
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {column}, {offer_id} FROM offers WHERE shop = ? AND {column} IN ({marks})"
                + (f" GROUP BY {column}" if group else ""),
                [shop, *chunk],
            ).fetchall()
            found.update({(shop, value): found_id for value, found_id in rows})
    return found


def current_prices(
    conn: sqlite3.Connection, offer_ids: Iterable[int]
) -> dict[int, tuple[str | None, str | None]]:
    """(price text, currency) of existing offers."""
    found: dict[int, tuple[str | None, str | None]] = {}
    for chunk in _chunks(list(offer_ids)):
        marks = ",".join("?" * len(chunk))
        for offer_id, price, currency in conn.execute(
            f"SELECT id, price, currency FROM offers WHERE id IN ({marks})", chunk
        ):
            found[int(offer_id)] = (price, currency)
    return found


def next_offer_id(conn: sqlite3.Connection) -> int:
    """The id AUTOINCREMENT would give next (ids of removed offers are never reused)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'offers'").fetchone()
    return (int(row[0]) if row else 0) + 1


def insert_offers(conn: sqlite3.Connection, offers: list[tuple[int, OfferRow, str]]) -> None:
    """Insert new offers: (id from `next_offer_id`, row, ISO sighting time)."""
    conn.executemany(
        f"INSERT INTO offers (id, {_ROW_COLUMNS}, first_seen, last_seen)"
        f" VALUES ({', '.join('?' * (len(OfferRow._fields) + 3))})",
        [(offer_id, *row, seen, seen) for offer_id, row, seen in offers],
    )


# A sighting older than the offer's last one (an indexer draining a crawler's spool late, or a
# retried copy stored after a later run's) must not turn the offer back to what it was: the
# sighting time is the crawl's (`offer_record`), so sightings can arrive out of order. It only
# adds its price point, and moves first_seen back. julianday() compares the times as instants
# whatever their ISO spelling (offsets, microseconds or none).
_NOT_OLDER = "julianday(last_seen) <= julianday(?)"


def update_offers(conn: sqlite3.Connection, offers: list[tuple[int, OfferRow, str, bool]]) -> None:
    """Overwrite offers of the same shop with a sighting at least as new as their last one:
    (id, row, ISO seen, keep the stored URL: the row's URL is the stored one, or is not to
    replace it). An older sighting leaves the offer as it is, except an earlier first_seen."""
    conn.executemany(
        f"UPDATE offers SET {_UPDATE_NEW_URL}, last_seen = ? WHERE id = ? AND {_NOT_OLDER}",
        [(*row[1:], seen, offer_id, seen) for offer_id, row, seen, keep in offers if not keep],
    )
    conn.executemany(
        f"UPDATE offers SET {_UPDATE_KEEP_URL}, last_seen = ? WHERE id = ? AND {_NOT_OLDER}",
        [(*row[2:], seen, offer_id, seen) for offer_id, row, seen, keep in offers if keep],
    )
    conn.executemany(
        "UPDATE offers SET first_seen = ? WHERE id = ? AND julianday(?) < julianday(first_seen)",
        [(seen, offer_id, seen) for offer_id, _, seen, _ in offers],
    )


def append_prices(conn: sqlite3.Connection, points: list[tuple[int, OfferRow, str]]) -> None:
    """One price-history row per sighting: (offer id, row, ISO sighting time)."""
    conn.executemany(
        "INSERT INTO price_history (offer_id, price, currency, availability, seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (offer_id, row.price, row.currency, row.availability, seen)
            for offer_id, row, seen in points
        ],
    )


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
        condition=row[18],
        shipping=json.loads(row[19]),
        spec_conflicts=json.loads(row[20]),
    )


def get_offers(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, OfferRecord]:
    found: dict[int, OfferRecord] = {}
    for chunk in _chunks([int(i) for i in ids]):
        marks = ",".join("?" * len(chunk))
        query = f"SELECT {_OFFER_COLUMNS} FROM offers WHERE id IN ({marks})"
        for row in conn.execute(query, chunk):
            found[int(row[0])] = _offer_from_row(row)
    return found


def offer_ids_after(conn: sqlite3.Connection, after: int, limit: int) -> list[int]:
    """Up to `limit` offer ids greater than `after`, ascending (a page of an offer scan)."""
    rows = conn.execute(
        "SELECT id FROM offers WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    return [int(r[0]) for r in rows]


def offers_with_url(conn: sqlite3.Connection, url: str) -> list[int]:
    """Ids of the offers at `url`, in any shop."""
    return [
        int(r[0]) for r in conn.execute("SELECT id FROM offers WHERE url = ? ORDER BY id", (url,))
    ]


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
    import numpy as np

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


def vector_log(conn: sqlite3.Connection, space: str) -> tuple[str, int]:
    """The space's current log file name and its committed row count."""
    row = conn.execute("SELECT file, rows FROM vector_logs WHERE space = ?", (space,)).fetchone()
    return row[0], int(row[1])


def vector_logs(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """Every space's (name, current log file, committed rows)."""
    return [
        (r[0], r[1], int(r[2])) for r in conn.execute("SELECT space, file, rows FROM vector_logs")
    ]


def set_vector_log(conn: sqlite3.Connection, space: str, file: str, rows: int) -> None:
    conn.execute("UPDATE vector_logs SET file = ?, rows = ? WHERE space = ?", (file, rows, space))


def offer_vector_rows(
    conn: sqlite3.Connection, space: str, offer_ids: Iterable[int]
) -> dict[int, dict[int, int]]:
    """Current vectors of some offers in one space: offer id -> {ordinal: log row}.

    Read through the offer index: left to itself, SQLite's planner takes ``vectors_seq`` for
    ``space = ?`` and scans every vector of the space per query (a recrawl then slows down as
    the store grows).
    """
    found: dict[int, dict[int, int]] = {}
    for chunk in _chunks(list(offer_ids)):
        marks = ",".join("?" * len(chunk))
        for offer_id, ordinal, row in conn.execute(
            "SELECT offer_id, ordinal, row FROM vectors INDEXED BY vectors_offer"
            f" WHERE space = ? AND offer_id IN ({marks})",
            [space, *chunk],
        ):
            found.setdefault(offer_id, {})[ordinal] = row
    return found


def put_vectors(conn: sqlite3.Connection, rows: list[tuple[str, int, int, int, int, int]]) -> None:
    """Insert or replace vector rows: (space, vector_id, offer_id, ordinal, seq, log row)."""
    conn.executemany(
        "INSERT OR REPLACE INTO vectors (space, vector_id, offer_id, ordinal, seq, row)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


def clear_tombstones(conn: sqlite3.Connection, space: str, vids: Iterable[int]) -> None:
    """Forget removals of ids that are live again (replay would otherwise drop them)."""
    conn.executemany(
        "DELETE FROM tombstones WHERE space = ? AND vector_id = ?", [(space, v) for v in vids]
    )


def drop_vectors(conn: sqlite3.Connection, space: str, vids: Iterable[int], seq: int) -> None:
    """Delete vector rows and record their removal at `seq` (what replay drops)."""
    vids = list(vids)
    conn.executemany(
        "DELETE FROM vectors WHERE space = ? AND vector_id = ?", [(space, v) for v in vids]
    )
    conn.executemany(
        "INSERT OR REPLACE INTO tombstones (space, vector_id, seq) VALUES (?, ?, ?)",
        [(space, v, seq) for v in vids],
    )


def changes_since(
    conn: sqlite3.Connection, space: str, seq: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What changed in `space` after `seq`: (ids to drop from an index, ids to add, their rows).

    Every touched id is dropped first, then the live ones re-added, which makes replay idempotent
    whatever the snapshot already held.
    """
    import numpy as np

    touched = [
        r[0]
        for r in conn.execute(
            "SELECT vector_id FROM tombstones WHERE space = ? AND seq > ?", (space, seq)
        )
    ]
    live = conn.execute(
        "SELECT vector_id, row FROM vectors WHERE space = ? AND seq > ? ORDER BY vector_id",
        (space, seq),
    ).fetchall()
    add_ids = np.array([r[0] for r in live], dtype=np.int64)
    drop = np.concatenate([np.array(touched, dtype=np.int64), add_ids])
    return drop, add_ids, np.array([r[1] for r in live], dtype=np.int64)


def live_vector_rows(conn: sqlite3.Connection, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Every live vector of a space in id order: (vector ids, log rows)."""
    import numpy as np

    rows = conn.execute(
        "SELECT vector_id, row FROM vectors WHERE space = ? ORDER BY vector_id", (space,)
    ).fetchall()
    data = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return data[:, 0].copy(), data[:, 1].copy()


def _chunks(values: list, size: int = 900) -> Iterable[list]:
    """Slices under SQLite's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
