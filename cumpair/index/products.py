"""The product tables of the store's database: products, memberships and model codes.

Grouping (cumpair.search.products) decides which offers are one product; this module keeps its
rows, in the store's own database under the store's migrations (schema 5), with an offer's
product in ``offers.product_id``. A writable open shares the writer lock of a `ProductStore`
writer of the same process, or takes it: the one-writer rule holds for products too, and
read-only opens (searches, `cumpair serve`) take no lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from cumpair.index import metadata
from cumpair.index.metadata import DB_NAME
from cumpair.index.records import StoreError, utcnow

if TYPE_CHECKING:
    from cumpair.index.locks import WriterLock


class MemberRow(NamedTuple):
    """One offer's membership with the grouping's match keys (`OfferFeatures` fields)."""

    offer_id: int
    product_id: int
    gtin: str | None
    brand: str | None
    models: tuple[str, ...]
    specs: dict[str, Any]
    rule: str
    score: float
    matched_offer: int | None
    evidence: dict[str, Any]


class ProductTables:
    """Rows of the product tables; not thread-safe (callers hold their own lock)."""

    def __init__(self, conn: sqlite3.Connection, lock: WriterLock | None) -> None:
        self._conn = conn
        self._lock = lock
        self.readonly = lock is None

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        readonly: bool = False,
        lock_timeout_s: float = 10.0,
    ) -> Self:
        """Open the product tables of the store at `directory`.

        Read-only needs a store a writer has migrated (`StoreError` otherwise). Writable joins
        the process's writer lock of the directory or takes it (`StoreLockedError` when another
        process writes), and creates and migrates the database when there is none yet.
        """
        path = Path(directory)
        db = path / DB_NAME
        if readonly:
            if not db.is_file():
                raise StoreError(f"no product store at {path}")
            conn = metadata.connect(db, readonly=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < metadata.SCHEMA_VERSION:
                conn.close()
                raise StoreError(
                    f"{db} has schema {version}, products need {metadata.SCHEMA_VERSION}: open"
                    " it once as a writer to migrate it (a crawl, `cumpair search --regroup`)"
                )
            return cls(conn, None)
        from cumpair.index.locks import WriterLock  # filelock: readers take no lock

        path.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(path)
        lock.join(lock_timeout_s)
        try:
            if not db.exists():
                from cumpair.index.store.opening import _refuse_without_database  # numpy, FAISS

                _refuse_without_database(path)
            conn = metadata.connect(db, readonly=False)
            try:
                metadata.migrate(conn, path)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.release()
            raise
        return cls(conn, lock)

    def close(self) -> None:
        self._conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ reading
    def product(self, product_id: int) -> tuple | None:
        """(id, title, brand, model, gtin) of a product."""
        return self._conn.execute(
            "SELECT id, title, brand, model, gtin FROM products WHERE id = ?", (product_id,)
        ).fetchone()

    def offers_of(self, product_id: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT id FROM offers WHERE product_id = ? ORDER BY id", (product_id,)
        )
        return [r[0] for r in rows]

    def product_of(self, offer_ids: Iterable[int]) -> dict[int, int]:
        ids = [int(i) for i in offer_ids]
        out: dict[int, int] = {}
        for chunk in metadata._chunks(ids):
            marks = ",".join("?" * len(chunk))
            out.update(
                (int(o), int(p))
                for o, p in self._conn.execute(
                    f"SELECT id, product_id FROM offers WHERE id IN ({marks})"
                    " AND product_id IS NOT NULL",
                    chunk,
                )
            )
        return out

    def members(self, offer_ids: Iterable[int]) -> dict[int, tuple[MemberRow, str, str]]:
        """Memberships of grouped offers with each offer's shop and title."""
        ids = [int(i) for i in offer_ids]
        out: dict[int, tuple[MemberRow, str, str]] = {}
        for chunk in metadata._chunks(ids):
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                "SELECT m.offer_id, o.product_id, m.match_gtin, m.brand_key, m.models,"
                " m.spec_values, m.rule, m.score, m.matched_offer, m.evidence, o.shop, o.title"
                f" FROM memberships m JOIN offers o ON o.id = m.offer_id"
                f" WHERE m.offer_id IN ({marks})",
                chunk,
            ):
                member = MemberRow(
                    row[0], row[1], row[2], row[3], tuple(row[4].split()), json.loads(row[5]),
                    row[6], row[7], row[8], json.loads(row[9]),
                )  # fmt: skip
                out[int(row[0])] = (member, row[10], row[11])
        return out

    def products_with_gtin(self, gtin: str, limit: int | None = None) -> list[int]:
        """Products with an offer of GTIN `gtin`, by id (at most `limit` of them: the read
        stops there, so a GTIN on many products costs no more than one on few)."""
        rows = self._conn.execute(
            "SELECT DISTINCT o.product_id FROM memberships m JOIN offers o ON o.id = m.offer_id"
            " WHERE m.match_gtin = ? LIMIT ?",
            (gtin, -1 if limit is None else limit),
        )
        return sorted(r[0] for r in rows)

    def products_with_model(self, code: str, limit: int | None = None) -> list[int]:
        """Products with an offer of model code `code`, by id (at most `limit`, as above)."""
        rows = self._conn.execute(
            "SELECT DISTINCT o.product_id FROM model_codes c JOIN offers o ON o.id = c.offer_id"
            " WHERE c.code = ? AND o.product_id IS NOT NULL LIMIT ?",
            (code, -1 if limit is None else limit),
        )
        return sorted(r[0] for r in rows)

    def grouped_with_url(self, url: str) -> list[int]:
        rows = self._conn.execute(
            "SELECT id FROM offers WHERE url = ? AND product_id IS NOT NULL ORDER BY id", (url,)
        )
        return [r[0] for r in rows]

    def identity_rows(self, product_id: int) -> list[tuple[str | None, str | None, str]]:
        """(match GTIN, brand key, model codes) of each offer of a product."""
        return self._conn.execute(
            "SELECT m.match_gtin, m.brand_key, m.models FROM memberships m"
            " JOIN offers o ON o.id = m.offer_id WHERE o.product_id = ?",
            (product_id,),
        ).fetchall()

    def count(self) -> tuple[int, int]:
        """(products, grouped offers)."""
        products = self._conn.execute("SELECT COUNT(*) FROM products").fetchone()[0]
        offers = self._conn.execute(
            "SELECT COUNT(*) FROM offers WHERE product_id IS NOT NULL"
        ).fetchone()[0]
        return int(products), int(offers)

    def offers_with_gtin(self, gtin: str, limit: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT offer_id FROM memberships WHERE match_gtin = ? LIMIT ?", (gtin, limit)
        )
        return [r[0] for r in rows]

    def offers_with_code(self, code: str, limit: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT offer_id FROM model_codes WHERE code = ? LIMIT ?", (code, limit)
        )
        return [r[0] for r in rows]

    def shop_titles(self, shop: str, limit: int) -> list[str]:
        """Up to `limit` titles of `shop`'s offers (one read of the (shop, url) index)."""
        rows = self._conn.execute("SELECT title FROM offers WHERE shop = ? LIMIT ?", (shop, limit))
        return [r[0] or "" for r in rows]

    def product_ids(self) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT id FROM products")]

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT: readers see the grouping before or after, never a mix."""
        self._require_writer()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def new_product(
        self, title: str, brand: str | None, model: str | None, gtin: str | None
    ) -> int:
        now = utcnow().isoformat()
        cur = self._conn.execute(
            "INSERT INTO products (title, brand, model, gtin, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (title, brand, model, gtin, now, now),
        )
        return int(cur.lastrowid)

    def put_member(self, member: MemberRow, brand: str | None, model: str | None) -> None:
        """Write a membership, point the offer at its product and fill the product's missing
        brand, model and GTIN from the offer (`brand`, `model`: the offer's own)."""
        now = utcnow().isoformat()
        self._conn.execute(
            "INSERT OR REPLACE INTO memberships (offer_id, match_gtin, brand_key, models,"
            " spec_values, rule, score, matched_offer, evidence, assigned_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                member.offer_id, member.gtin, member.brand, " ".join(member.models),
                json.dumps(member.specs), member.rule, member.score, member.matched_offer,
                json.dumps(member.evidence), now,
            ),
        )  # fmt: skip
        self._conn.execute(
            "UPDATE offers SET product_id = ? WHERE id = ?", (member.product_id, member.offer_id)
        )
        self._conn.execute("DELETE FROM model_codes WHERE offer_id = ?", (member.offer_id,))
        self._conn.executemany(
            "INSERT INTO model_codes (code, offer_id) VALUES (?, ?)",
            [(code, member.offer_id) for code in member.models],
        )
        self._conn.execute(
            "UPDATE products SET gtin = COALESCE(gtin, ?), brand = COALESCE(brand, ?),"
            " model = COALESCE(model, ?), updated_at = ? WHERE id = ?",
            (member.gtin, brand, model, now, member.product_id),
        )

    def drop_members(self, offer_ids: Iterable[int] | None = None) -> None:
        """Ungroup some offers (None: every offer)."""
        if offer_ids is None:
            self._conn.execute("DELETE FROM memberships")
            self._conn.execute("DELETE FROM model_codes")
            self._conn.execute("UPDATE offers SET product_id = NULL WHERE product_id IS NOT NULL")
            return
        ids = [(int(i),) for i in offer_ids]
        self._conn.executemany("DELETE FROM memberships WHERE offer_id = ?", ids)
        self._conn.executemany("DELETE FROM model_codes WHERE offer_id = ?", ids)
        self._conn.executemany("UPDATE offers SET product_id = NULL WHERE id = ?", ids)

    def drop_empty_products(self, product_ids: Iterable[int]) -> None:
        """Delete those of `product_ids` that no offer belongs to any more."""
        self._conn.executemany(
            "DELETE FROM products WHERE id = ?"
            " AND NOT EXISTS (SELECT 1 FROM offers WHERE product_id = ?)",
            [(p, p) for p in product_ids],
        )

    def _require_writer(self) -> None:
        if self.readonly:
            raise StoreError("the product tables were opened read-only")
