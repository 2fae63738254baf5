"""A content-addressed, bounded, durable cache of what images and texts yielded.

An unchanged image costs a lookup on a recrawl instead of OCR, colour analysis and a model
call. Entries are keyed by (kind, version, SHA-256 of the content): `kind` says what was
computed ("ocr", "colors", "image-vector", "text-vector"), `version` names everything that
decides the answer (the OCR chain and its engines' versions, the encoder's name and version),
so a new engine or model never reads an old answer. The specs of an image are not stored:
they are re-derived from the cached OCR text (milliseconds), so a better spec extractor takes
effect on the next crawl without invalidating anything.

One SQLite file, `vision_cache.sqlite` under INDEX_DATA_DIR; this module is the only one that
opens it. It is bounded by `max_bytes` (least recently used entries go first, checked every
`EVICT_EVERY` writes). Every write commits, so a crash loses at most the entry being written;
a damaged file raises `VisionCacheError` naming it (delete it: the cache only saves time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cumpair.vision.ocr_types import CHAIN_REVISION, OcrOptions, OcrResult, OcrWord

if TYPE_CHECKING:
    from cumpair.vision.color import DominantColor

FILE_NAME = "vision_cache.sqlite"
EVICT_EVERY = 256  # writes between two size checks: the bound is exceeded by at most these
_ENGINE_DISTRIBUTIONS = {"tesseract": "tesserocr", "rapidocr": "rapidocr", "easyocr": "easyocr"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    value BLOB NOT NULL,
    used_at REAL NOT NULL,
    PRIMARY KEY (kind, version, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_used_at ON entries (used_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class VisionCacheError(RuntimeError):
    """The cache file cannot be opened or read (damaged, not a database, not writable)."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What `cumpair index stats` reports: entries, their bytes, and the bound."""

    path: str
    entries: int
    bytes: int
    max_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "entries": self.entries, "bytes": self.bytes,
                "max_bytes": self.max_bytes}  # fmt: skip


def content_digest(content: bytes | str) -> str:
    """The key of some content: SHA-256 of the bytes (a text's UTF-8 encoding)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def ocr_chain_version(options: OcrOptions) -> str:
    """Everything that decides an OCR answer: the chain's revision, options, engine versions."""
    engines = [f"{name}={_distribution_version(name)}" for name in options.engine_order]
    return (
        f"chain{CHAIN_REVISION};{','.join(engines)};conf={options.min_confidence:g};"
        f"variants={options.max_variants};lang={options.language};wl={options.whitelist or ''};"
        f"charset={int(options.charset)};len={options.min_len}-{options.max_len};"
        f"case={int(options.case_sensitive)};phrase={int(options.phrase)};calc={int(options.calc)}"
    )


def _distribution_version(engine: str) -> str:
    try:
        return importlib.metadata.version(_ENGINE_DISTRIBUTIONS.get(engine, engine))
    except importlib.metadata.PackageNotFoundError:
        return "missing"


class VisionCache:
    """The cache file, shared safely by the threads of one process (and by processes).

    `max_bytes` bounds the stored values' bytes (0: unbounded) and is recorded in the file, so
    `cumpair index stats` reports the bound the crawl used; None (a reader) takes the recorded
    one. Use as a context manager or call `close()`.
    """

    def __init__(self, path: Path | str, *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.path = Path(path)
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            if max_bytes is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('max_bytes', ?)", (str(max_bytes),)
                )
                self._conn.commit()
            row = self._conn.execute("SELECT value FROM meta WHERE key='max_bytes'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise VisionCacheError(
                f"vision cache {self.path} cannot be opened ({exc}); it only saves time: "
                "delete it to start afresh"
            ) from exc
        self.max_bytes = int(row[0]) if row else 0

    # -- generic entries -----------------------------------------------------------------

    def get(self, kind: str, version: str, digest: str) -> bytes | None:
        """The stored value, or None; a hit marks the entry as recently used."""
        with self._lock:
            row = self._execute(
                "SELECT value FROM entries WHERE kind=? AND version=? AND digest=?",
                (kind, version, digest),
            ).fetchone()
            if row is None:
                return None
            self._execute(
                "UPDATE entries SET used_at=? WHERE kind=? AND version=? AND digest=?",
                (time.time(), kind, version, digest),
            )
            self._conn.commit()
            return bytes(row[0])

    def put(self, kind: str, version: str, digest: str, value: bytes) -> None:
        """Store `value` (replacing an older one), evicting old entries past the bound."""
        with self._lock:
            self._execute(
                "INSERT OR REPLACE INTO entries (kind, version, digest, value, used_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (kind, version, digest, value, time.time()),
            )
            self._writes += 1
            if self.max_bytes and self._writes % EVICT_EVERY == 0:
                self._evict()
            self._conn.commit()

    def stats(self) -> CacheStats:
        with self._lock:
            entries, size = self._execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM entries"
            ).fetchone()
        return CacheStats(str(self.path), entries, size, self.max_bytes)

    def close(self) -> None:
        with self._lock:
            if self.max_bytes:
                self._evict()
                self._conn.commit()
            self._conn.close()

    def __enter__(self) -> VisionCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _evict(self) -> None:
        """Drop least recently used entries until the values fit in 90 % of the bound."""
        (size,) = self._execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM entries").fetchone()
        if size <= self.max_bytes:
            return
        target = size - int(0.9 * self.max_bytes)
        freed = 0
        doomed: list[tuple[str, str, str]] = []
        for kind, version, digest, length in self._execute(
            "SELECT kind, version, digest, LENGTH(value) FROM entries ORDER BY used_at"
        ):
            doomed.append((kind, version, digest))
            freed += length
            if freed >= target:
                break
        self._conn.executemany(
            "DELETE FROM entries WHERE kind=? AND version=? AND digest=?", doomed
        )

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise VisionCacheError(
                f"vision cache {self.path} is unreadable ({exc}); delete it to start afresh"
            ) from exc

    # -- typed entries -------------------------------------------------------------------

    def get_ocr(self, digest: str, version: str) -> OcrResult | None:
        value = self.get("ocr", version, digest)
        if value is None:
            return None
        data = json.loads(value)
        words = tuple(
            OcrWord(w["text"], w["confidence"], tuple(tuple(p) for p in w["box"]))
            for w in data["words"]
        )
        return OcrResult(data["text"], data["confidence"], data["engine"], data["variant"], words)

    def put_ocr(self, digest: str, version: str, result: OcrResult) -> None:
        self.put("ocr", version, digest, json.dumps(result.to_dict()).encode("utf-8"))

    def get_colors(self, digest: str, k: int) -> list[DominantColor] | None:
        value = self.get("colors", f"k={k}", digest)
        if value is None:
            return None
        from cumpair.vision.color import DominantColor  # OpenCV loads only where colours are read

        return [DominantColor(c["name"], c["hex"], c["fraction"]) for c in json.loads(value)]

    def put_colors(self, digest: str, k: int, colors: list[DominantColor]) -> None:
        self.put("colors", f"k={k}", digest, json.dumps([c.to_dict() for c in colors]).encode())

    def get_vector(self, kind: str, digest: str, version: str, dim: int) -> np.ndarray | None:
        """A stored float32 vector of `dim` values, or None (also for one of another size)."""
        value = self.get(kind, version, digest)
        if value is None or len(value) != 4 * dim:
            return None
        return np.frombuffer(value, dtype=np.float32).copy()

    def put_vector(self, kind: str, digest: str, version: str, vector: np.ndarray) -> None:
        self.put(kind, version, digest, np.asarray(vector, dtype=np.float32).tobytes())


def cache_stats(data_dir: Path | str) -> CacheStats | None:
    """The stats of the cache under `data_dir`, or None when no crawl made one yet."""
    path = Path(data_dir) / FILE_NAME
    if not path.exists():
        return None
    with VisionCache(path) as cache:
        return cache.stats()
