"""The watch book: ``alerts.sqlite`` beside the store's offers, owned by this module alone.

Three tables: `watches` (what a user asked to be told about), `told` (per watch and offer, the
price last notified while it stays at or under the target: what makes a drop notify once) and
`notices` (the outbox: a notice is written before it is sent, so a crash or a dead webhook
loses nothing, and delivery never holds up the crawl that found the price).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from cumpair.identifiers import normalize_gtin

DB_NAME = "alerts.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('product', 'gtin', 'url')),
    reference TEXT NOT NULL,
    below TEXT, drop_pct REAL, webhook TEXT, email TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS told (
    watch_id INTEGER NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
    offer_id INTEGER NOT NULL, price TEXT NOT NULL, told_at TEXT NOT NULL,
    PRIMARY KEY (watch_id, offer_id));
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id INTEGER NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
    offer_id INTEGER NOT NULL, shop TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL,
    price TEXT NOT NULL, currency TEXT, seen_at TEXT, reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    created_at TEXT NOT NULL, sent_at TEXT);
CREATE INDEX IF NOT EXISTS notices_pending ON notices (status) WHERE status = 'pending';
"""

Kind = Literal["product", "gtin", "url"]


class AlertError(ValueError):
    """A watch that cannot be made or found (bad reference, no target, no channel, unknown id)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Watch:
    """Tell `webhook` or `email` when an offer of `reference` is at or below `below`, or
    `drop_pct` percent under its shop's recent trend (`cumpair.search.views.recent_trend`)."""

    id: int | None
    kind: Kind
    reference: str
    below: Decimal | None = None
    drop_pct: float | None = None
    webhook: str | None = None
    email: str | None = None
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "reference": self.reference,
            "below": None if self.below is None else str(self.below),
            "drop_pct": self.drop_pct,
            "webhook": self.webhook,
            "email": self.email,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Notice:
    """One drop to tell one watch about: the shop, price and link, and its delivery state."""

    id: int
    watch_id: int
    offer_id: int
    shop: str
    title: str
    url: str
    price: Decimal
    currency: str | None
    seen_at: str | None
    reason: str
    status: str
    attempts: int

    def payload(self, watch: Watch) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {
            "event": "price_drop",
            "watch": watch.to_dict(),
            "offer_id": self.offer_id,
            "shop": self.shop,
            "title": self.title,
            "url": self.url,
            "price": str(self.price),
            "currency": self.currency,
            "seen_at": self.seen_at,
            "reason": self.reason,
        }


def parse_reference(text: str) -> tuple[Kind, str]:
    """(kind, canonical reference): an http(s) URL, a GTIN (8-14 digits with a valid check
    digit, any of its forms) or a product id (any other number)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return "url", text
    if text.isdigit():
        gtin = normalize_gtin(text) if len(text) >= 8 else None
        return ("gtin", gtin) if gtin else ("product", str(int(text)))
    raise AlertError(f"{text!r} is no product id, GTIN or http(s) URL")


def make_watch(
    reference: str,
    *,
    below: Decimal | None = None,
    drop_pct: float | None = None,
    webhook: str | None = None,
    email: str | None = None,
) -> Watch:
    """A checked, unsaved watch (AlertError says what is wrong)."""
    kind, canonical = parse_reference(reference)
    if below is None and drop_pct is None:
        raise AlertError("give a target price (below) or a drop under the trend (drop_pct)")
    if below is not None and (not below.is_finite() or below < 0):
        raise AlertError("the target price must be a non-negative number")
    if drop_pct is not None and not 0 < drop_pct < 100:
        raise AlertError("drop_pct must be between 0 and 100")
    if (webhook is None) == (email is None):
        raise AlertError("give exactly one of a webhook URL or an e-mail address")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise AlertError(f"webhook {webhook!r} is not an http(s) URL")
    if email is not None and "@" not in email.strip("@"):
        raise AlertError(f"{email!r} is not an e-mail address")
    return Watch(None, kind, canonical, below, drop_pct, webhook, email)


class WatchBook:
    """The watches, what was told and the outbox of one store directory (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, directory: str | Path) -> WatchBook:
        """Open (creating) ``alerts.sqlite`` in the store `directory`."""
        directory = Path(directory)
        if not directory.is_dir():
            raise AlertError(f"no store directory at {directory}")
        path = directory / DB_NAME
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        return cls(conn, path)

    @staticmethod
    def exists(directory: str | Path) -> bool:
        return (Path(directory) / DB_NAME).is_file()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> WatchBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ watches
    def add(self, watch: Watch) -> Watch:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO watches (kind, reference, below, drop_pct, webhook, email,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    watch.kind,
                    watch.reference,
                    None if watch.below is None else str(watch.below),
                    watch.drop_pct,
                    watch.webhook,
                    watch.email,
                    _now(),
                ),
            )
        return self.watch(int(cur.lastrowid))

    def watch(self, watch_id: int) -> Watch:
        rows = self._select("SELECT * FROM watches WHERE id = ?", (watch_id,))
        if not rows:
            raise AlertError(f"no watch {watch_id}")
        return _watch(rows[0])

    def watches(self) -> list[Watch]:
        return [_watch(row) for row in self._select("SELECT * FROM watches ORDER BY id")]

    def remove(self, watch_id: int) -> None:
        with self._lock:
            cur = self._conn.execute("DELETE FROM watches WHERE id = ?", (watch_id,))
        if cur.rowcount == 0:
            raise AlertError(f"no watch {watch_id}")

    # ------------------------------------------------------------------ once per drop
    def told_price(self, watch_id: int, offer_id: int) -> Decimal | None:
        rows = self._select(
            "SELECT price FROM told WHERE watch_id = ? AND offer_id = ?", (watch_id, offer_id)
        )
        return Decimal(rows[0]["price"]) if rows else None

    def rearm(self, watch_id: int, offer_id: int) -> None:
        """The price went back over the target: its next drop notifies again."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM told WHERE watch_id = ? AND offer_id = ?", (watch_id, offer_id)
            )

    def queue(self, watch: Watch, record: Any, seen_at: str | None, reason: str) -> int:
        """Write the notice to the outbox and remember its price as told, in one transaction."""
        now = _now()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(
                    "INSERT INTO notices (watch_id, offer_id, shop, title, url, price, currency,"
                    " seen_at, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        watch.id, record.id, record.shop, record.title or "", record.url,
                        str(record.price), record.currency, seen_at, reason, now,
                    ),
                )  # fmt: skip
                self._conn.execute(
                    "INSERT OR REPLACE INTO told (watch_id, offer_id, price, told_at)"
                    " VALUES (?, ?, ?, ?)",
                    (watch.id, record.id, str(record.price), now),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return int(cur.lastrowid)

    # ------------------------------------------------------------------ the outbox
    def notices(self, status: str | None = None) -> list[Notice]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._select(f"SELECT * FROM notices {where} ORDER BY id", args)
        return [_notice(row) for row in rows]

    def mark(self, notice_id: int, status: str, attempts: int, error: str | None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE notices SET status = ?, attempts = attempts + ?, last_error = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
                (status, attempts, error, status, _now(), notice_id),
            )

    def _select(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _watch(row: dict[str, Any]) -> Watch:
    return Watch(
        row["id"],
        row["kind"],
        row["reference"],
        None if row["below"] is None else Decimal(row["below"]),
        row["drop_pct"],
        row["webhook"],
        row["email"],
        row["created_at"],
    )


def _notice(row: dict[str, Any]) -> Notice:
    return Notice(
        row["id"], row["watch_id"], row["offer_id"], row["shop"], row["title"], row["url"],
        Decimal(row["price"]), row["currency"], row["seen_at"], row["reason"], row["status"],
        row["attempts"],
    )  # fmt: skip
