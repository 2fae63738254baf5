"""HTTP validators (ETag, Last-Modified) and freshness of the product images the crawl stored.

`ProductImagesPipeline` saves them when an image is downloaded or revalidated. A stored image
still fresh by its response's own Cache-Control max-age or Expires (RFC 9111 section 4.2, as a
private cache reckons it: `fresh_until`) is used without a request; a stale one is asked for
conditionally (If-None-Match, If-Modified-Since), so an unchanged image costs a 304 instead of
its bytes. A response with no-cache, no-store or no freshness of its own is stale at once (no
heuristic freshness: a photo replaced under the same URL is seen on the next crawl). One small
SQLite file (`validators.sqlite` in the images store), opened only here; the pipeline runs on
the reactor thread, so one connection serves it. Commits are not synced (WAL,
synchronous=NORMAL): each stored photo commits on the reactor thread, where an fsync per photo
stalls the crawl, and a validator lost to a power cut only costs that photo's request next time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path

FILE_NAME = "validators.sqlite"


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies the stored bytes, and until when (epoch seconds) they
    may be used without asking; any may be absent."""

    etag: str | None
    last_modified: str | None
    fresh_until: float | None = None

    def headers(self) -> dict[str, str]:
        """The conditional request headers these validators make."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def fresh(self, now: float) -> bool:
        return self.fresh_until is not None and now < self.fresh_until


def fresh_until(
    header: Callable[[str], str | None], received_at: float, latency: float = 0.0
) -> float | None:
    """Until when (epoch seconds) a response is fresh for a private cache (RFC 9111 4.2): its
    freshness lifetime (Cache-Control max-age, else Expires minus Date) less its age when
    received (the larger of Age plus the request's `latency` and `received_at` minus Date).
    None when it has no lifetime: no-cache, no-store, neither max-age nor a valid Expires.
    `header(name)` is the response's header value or None."""
    directives = _directives(header("Cache-Control") or "")
    if "no-cache" in directives or "no-store" in directives:
        return None
    date = _http_date(header("Date"))
    lifetime: float | None = None
    if "max-age" in directives:
        lifetime = _seconds(directives["max-age"])
    elif header("Expires") is not None:  # an invalid Expires means already expired (5.3)
        expires = _http_date(header("Expires"))
        since = date if date is not None else received_at
        lifetime = max(0.0, expires - since) if expires is not None else 0.0
    if not lifetime:
        return None
    # Age is one value; of a list, the first member counts (RFC 9111 5.1).
    age = (_seconds((header("Age") or "0").split(",")[0].strip()) or 0.0) + max(0.0, latency)
    if date is not None:
        age = max(age, received_at - date)
    return received_at - age + lifetime if lifetime > age else None


def _directives(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = argument.strip().strip('"')
    return out


def _seconds(value: str) -> float | None:
    """A delta-seconds value (RFC 9111 1.2.2: ASCII digits only); None when it is not one."""
    return float(value) if value.isascii() and value.isdigit() else None


def _http_date(value: str | None) -> float | None:
    """An HTTP-date's epoch seconds; it is always UTC (RFC 9110 5.6.7), also in the asctime
    form, which names no zone (Python reads it as naive, that is local time)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class ImageValidators:
    """Validators by stored image path (Scrapy's `full/<sha1 of URL>.jpg`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS validators (path TEXT PRIMARY KEY, etag TEXT,"
            " last_modified TEXT, fresh_until REAL)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(validators)")}
        if "fresh_until" not in columns:  # a file from before freshness was kept
            self._conn.execute("ALTER TABLE validators ADD COLUMN fresh_until REAL")
        self._conn.commit()

    def get(self, path: str) -> Validators | None:
        row = self._conn.execute(
            "SELECT etag, last_modified, fresh_until FROM validators WHERE path = ?", (path,)
        ).fetchone()
        return Validators(*row) if row else None

    def put(self, path: str, validators: Validators) -> None:
        """Remember `validators` for `path`; none at all forgets the path's old ones."""
        if validators.etag or validators.last_modified or validators.fresh_until is not None:
            self._conn.execute(
                "INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)",
                (path, validators.etag, validators.last_modified, validators.fresh_until),
            )
        else:
            self._conn.execute("DELETE FROM validators WHERE path = ?", (path,))
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()
