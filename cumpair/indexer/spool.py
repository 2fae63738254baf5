"""A durable local queue of embedded offers that wait for their store's one writer process.

Without Redis, crawl processes sharing a store (two scrapyd jobs, say) take turns: the store
admits one writer process at a time, so a process that finds it held `put`s each embedded
offer here instead (an SQLite file in WAL mode, committed before `put` returns, so a killed
process loses none it spooled). Whichever process holds the store `take`s them in order,
upserts each, and only then marks it `done`: a writer killed in between finds the offer again
(the store keys offers by shop and URL, so that upsert updates it). Offers travel as the
indexer's JSON item documents (`messages.encode_item`) with their vectors as ``.npy`` arrays;
never pickles. Never imports Scrapy.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cumpair.indexer.messages import MessageError, decode_item, encode_item

#: The spool's file, under the store directory's ``spool/`` folder unless told otherwise.
SPOOL_NAME = "offers.sqlite"


def default_spool_path(store_dir: str | Path) -> Path:
    """Where the processes sharing the store at `store_dir` spool, unless told otherwise."""
    return Path(store_dir) / "spool" / SPOOL_NAME


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    item TEXT NOT NULL,
    refs TEXT NOT NULL,
    vectors BLOB NOT NULL,
    spooled_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class SpooledOffer:
    """One spooled offer: its row id (to mark `done`), the process that spooled it, the item,
    the references of its photos and its vectors by space; or, for a row that cannot be read
    back, `error` (such a row stays in the spool for a person to look at)."""

    id: int
    source: str
    item: dict[str, Any] | None
    references: list[str]
    vectors: dict[str, np.ndarray]
    error: str | None = None


class OfferSpool:
    """The spool at `path` (created on first use); safe for the threads of one process and for
    many processes at once (SQLite's own locking, waiting up to `busy_timeout_s`)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # a put survives power loss too
            self._conn.execute(_SCHEMA)

    def put(
        self,
        item: Mapping[str, Any],
        references: Sequence[str],
        vectors: Mapping[str, np.ndarray],
        source: str,
    ) -> int:
        """Spool one offer of process `source`; durable when it returns (its row id)."""
        row = (source, encode_item(item), json.dumps(list(references)), _pack(vectors))
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO spooled (source, item, refs, vectors, spooled_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*row, time.time()),
            )
        return int(cursor.lastrowid)

    def take(self, limit: int, after: int = 0) -> list[SpooledOffer]:
        """Up to `limit` offers spooled after row `after`, oldest first (they stay spooled
        until `done`); a row that is not a spooled offer comes with its `error`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, source, item, refs, vectors FROM spooled WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        offers = []
        for row_id, source, item, refs, vectors in rows:
            try:
                offer = SpooledOffer(row_id, source, decode_item(item), json.loads(refs),
                                     _unpack(vectors))  # fmt: skip
            except (MessageError, ValueError, OSError) as exc:
                offer = SpooledOffer(row_id, source, None, [], {}, f"not a spooled offer: {exc}")
            offers.append(offer)
        return offers

    def done(self, ids: Sequence[int]) -> None:
        """Forget offers the store now holds."""
        if ids:
            with self._lock:
                self._conn.executemany("DELETE FROM spooled WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM spooled").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> OfferSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pack(vectors: Mapping[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    np.savez(out, **{name: np.asarray(v, dtype=np.float32) for name, v in vectors.items()})
    return out.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


__all__ = ["SPOOL_NAME", "OfferSpool", "SpooledOffer", "default_spool_path"]
