"""HTTP validators (ETag, Last-Modified) of the product images the crawl stored.

`ProductImagesPipeline` saves them when an image is downloaded and sends them back
(If-None-Match, If-Modified-Since) once Scrapy's IMAGES_EXPIRES says the stored file is due
for a fresh look, so an unchanged image costs a 304 instead of its bytes. One small SQLite file
(`validators.sqlite` in the images store), opened only here; the pipeline runs on the reactor
thread, so one connection serves it. Commits are not synced (WAL, synchronous=NORMAL): each
stored photo commits on the reactor thread, where an fsync per photo stalls the crawl, and a
validator lost to a power cut only costs that photo's full download next time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "validators.sqlite"


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies the stored bytes; either may be absent."""

    etag: str | None
    last_modified: str | None

    def headers(self) -> dict[str, str]:
        """The conditional request headers these validators make."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class ImageValidators:
    """Validators by stored image path (Scrapy's `full/<sha1 of URL>.jpg`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS validators (path TEXT PRIMARY KEY, etag TEXT,"
            " last_modified TEXT)"
        )
        self._conn.commit()

    def get(self, path: str) -> Validators | None:
        row = self._conn.execute(
            "SELECT etag, last_modified FROM validators WHERE path = ?", (path,)
        ).fetchone()
        return Validators(*row) if row else None

    def put(self, path: str, validators: Validators) -> None:
        """Remember `validators` for `path`; none at all forgets the path's old ones."""
        if validators.etag or validators.last_modified:
            self._conn.execute(
                "INSERT OR REPLACE INTO validators VALUES (?, ?, ?)",
                (path, validators.etag, validators.last_modified),
            )
        else:
            self._conn.execute("DELETE FROM validators WHERE path = ?", (path,))
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()
