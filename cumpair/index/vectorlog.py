"""Append-only files of checksummed vectors, one per space: the store's bulk vector storage.

A log starts with a 16-byte header (magic, format, dimension); row ``r`` follows at byte
``16 + r * (12 + dim * 4)`` and holds the vector id (int64), the float32 values and a CRC32 of
both, so a flipped byte, a torn write or a row that points at another vector is detected on
every read instead of being searched (re-ranking `gather`s candidates unchecked and checks the
rows it returns). SQLite records which row holds which vector id and how many rows are
committed (``vector_logs.rows``); bytes past that count belong to an append whose transaction
never committed (or whose commit was lost). Rows are written *before* the SQLite
commit that makes them reachable (``fsync`` first as well when the store runs
``synchronous=FULL``).

A handle is never closed under a reader: compaction only drops the store's reference, and the
descriptor closes when the last reader lets go of the handle. Reads go through a mapping of that
descriptor, so a handle always reads the file it was opened on, even once that file is unlinked.

Keeping megabytes of vectors out of SQLite's B-tree is what makes bulk loads fast: a 10^5 x 512
batch costs one sequential write here, against seconds as per-row BLOBs.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import threading
import weakref
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cumpair.index.records import StoreIOError, VectorLogError

_SUFFIX = ".vlog"
_LEGACY_SUFFIX = ".f32"  # schema 2: raw float32 rows, no header or checksums
_MAGIC = b"CUMPVLOG"
_FORMAT = 1
HEADER_BYTES = 16
MISSING_ID = -1  # id of a row written in place of one that was already lost (never matches)
_NAME = re.compile(r"vectors\.(.+)\.e(\d{4,})(?:\.vlog|\.f32)")


def log_name(space: str, epoch: int) -> str:
    """File name of a space's log; compaction writes the next epoch and switches to it."""
    return f"vectors.{space}.e{epoch:04d}{_SUFFIX}"


def legacy_log_name(space: str, epoch: int) -> str:
    """Name of a schema-2 log (raw float32), which the schema-3 migration converts."""
    return f"vectors.{space}.e{epoch:04d}{_LEGACY_SUFFIX}"


def is_log_name(name: str) -> bool:
    """A name `log_name` or `legacy_log_name` gives (other files are left alone)."""
    return _NAME.fullmatch(name) is not None


def log_epoch(name: str) -> int:
    return int(_NAME.fullmatch(name)[2])


def log_space(name: str) -> str:
    return _NAME.fullmatch(name)[1]


def row_dtype(dim: int) -> np.dtype:
    """One row on disk: vector id, values, CRC32 of the two (packed, little-endian)."""
    return np.dtype([("vid", "<i8"), ("vec", "<f4", (dim,)), ("crc", "<u4")])


def _checksums(records: np.ndarray) -> np.ndarray:
    """CRC32 of each row's id and values (the bytes before its ``crc`` field)."""
    raw = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)[:, :-4]
    return np.fromiter((zlib.crc32(row) for row in raw), dtype=np.uint32, count=len(records))


def _disk_error(path: Path, what: str, exc: OSError) -> StoreIOError:
    return StoreIOError(exc.errno or errno.EIO, f"{what} {path} failed: {exc.strerror or exc}")


class LogRead(NamedTuple):
    """Rows read back: values (zeros where damaged) and which rows passed their checks."""

    vectors: np.ndarray
    ok: np.ndarray


class VectorLog:
    """Positional reads and writes of one log file (thread-safe: pread/pwrite, no shared offset).

    ``create`` makes the file (with its header) when it does not exist; read paths leave it
    off, so a file a compaction already swept raises `FileNotFoundError` instead of coming back
    empty.
    """

    def __init__(self, path: Path, dim: int, *, writable: bool, create: bool = False) -> None:
        self.path = path
        self.dim = dim
        self.dtype = row_dtype(dim)
        self.row_bytes = self.dtype.itemsize
        flags = (os.O_RDWR | (os.O_CREAT if create else 0)) if writable else os.O_RDONLY
        self._fd = os.open(path, flags, 0o644)
        self._finalizer = weakref.finalize(self, os.close, self._fd)
        self._map: np.ndarray | None = None
        self._buffer: mmap.mmap | None = None  # what _map views
        self._mapped_bytes = -1
        self._map_lock = threading.Lock()
        try:
            self._check_header(writable)
        except BaseException:
            self._finalizer()
            raise

    @classmethod
    def existing(cls, path: Path) -> VectorLog:
        """Open a log read-only at the dimension its header records (no database needed)."""
        with open(path, "rb") as fh:
            header = fh.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:8] != _MAGIC:
            raise VectorLogError(f"{path}: not a format {_FORMAT} vector log (no header)")
        return cls(path, int(np.frombuffer(header[12:], "<u4")[0]), writable=False)

    def _check_header(self, writable: bool) -> None:
        header = os.pread(self._fd, HEADER_BYTES, 0)
        if len(header) < HEADER_BYTES and writable:  # new, or killed while writing its header
            self._pwrite(self._header(), 0, "writing the header of")
            return
        expected = self._header()
        if header[:8] != _MAGIC or header != expected:
            found = "no header" if len(header) < HEADER_BYTES else f"header {header.hex()}"
            raise VectorLogError(
                f"{self.path}: {found}; expected a format {_FORMAT} vector log of dimension"
                f" {self.dim} (header {expected.hex()})"
            )

    def _header(self) -> bytes:
        return _MAGIC + np.array([_FORMAT, self.dim], dtype="<u4").tobytes()

    def offset(self, row: int) -> int:
        return HEADER_BYTES + row * self.row_bytes

    def rows_on_disk(self) -> int:
        """Whole rows in the file (a torn last row does not count)."""
        return max(0, (os.fstat(self._fd).st_size - HEADER_BYTES) // self.row_bytes)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def write(self, start_row: int, ids: np.ndarray, matrix: np.ndarray) -> None:
        """Write rows ``start_row ..`` (whatever lies there is an uncommitted leftover)."""
        records = np.empty(len(ids), dtype=self.dtype)
        records["vid"] = ids
        records["vec"] = matrix
        records["crc"] = _checksums(records)
        self._pwrite(memoryview(records).cast("B"), self.offset(start_row), "writing to")

    def _pwrite(self, data: bytes | memoryview, offset: int, what: str) -> None:
        view = memoryview(data)
        try:
            while len(view):
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise _disk_error(self.path, what, exc) from exc

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _disk_error(self.path, "fsync of", exc) from exc

    def truncate(self, rows: int) -> None:
        """Cut the file after `rows` rows (never lengthens it: a torn tail stays visible)."""
        end = self.offset(rows)
        if self.size() > end:
            with self._map_lock:  # the next read maps the shorter file (no page past its end)
                self._map = None
                try:
                    os.ftruncate(self._fd, end)
                except OSError as exc:
                    raise _disk_error(self.path, "truncating", exc) from exc

    def tail(self, rows: int) -> bytes:
        """The bytes after the first `rows` rows (what an uncommitted append left)."""
        end = self.offset(rows)
        return os.pread(self._fd, max(0, self.size() - end), end)

    def read(self, rows: np.ndarray, ids: np.ndarray | None = None) -> LogRead:
        """Rows by number; a row fails if it is missing, fails its CRC or holds another id."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return LogRead(np.empty((0, self.dim), np.float32), np.ones(0, bool))
        found, present, good = self._checked(rows, ids)
        everything = bool(present.all())
        if everything and good.all():  # the common case: one copy of the values
            return LogRead(np.ascontiguousarray(found["vec"]), good)
        ok = np.zeros(len(rows), dtype=bool)
        ok[present] = good
        vectors = np.zeros((len(rows), self.dim), dtype=np.float32)
        vectors[present] = np.where(good[:, None], found["vec"], np.float32(0))
        return LogRead(vectors, ok)

    def check(self, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Which rows `read` would pass (present, CRC, id), without copying their values out."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.ones(0, bool)
        _, present, good = self._checked(rows, ids)
        ok = np.zeros(len(rows), dtype=bool)
        ok[present] = good
        return ok

    def _checked(
        self, rows: np.ndarray, ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the present rows' records, which rows are present, which of those pass)."""
        records = self._mapped(int(rows.max()) + 1)
        present = rows < len(records)
        everything = bool(present.all())
        found = self._take(records, rows if everything else rows[present])
        good = _checksums(found) == found["crc"]
        if ids is not None:
            expected = np.asarray(ids, dtype=np.int64)
            good &= found["vid"] == (expected if everything else expected[present])
        return found, present, good

    def gather(self, rows: np.ndarray, ids: np.ndarray) -> LogRead:
        """Rows by number for re-ranking, without their CRCs: a row fails only if it is missing
        or holds another id. The caller `check`s the few rows it keeps."""
        rows = np.asarray(rows, dtype=np.int64)
        records = self._mapped(int(rows.max()) + 1 if len(rows) else 0)
        if not len(rows) or not len(records):
            return LogRead(np.zeros((len(rows), self.dim), np.float32), np.zeros(len(rows), bool))
        present = rows < len(records)
        found = self._take(records, np.where(present, rows, 0))
        ok = present & (found["vid"] == ids)
        vectors = found["vec"]  # a view of the copy (row stride: the record's), no second copy
        if not ok.all():
            vectors[~ok] = 0
        return LogRead(vectors, ok)

    def _take(self, records: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Copies of the records at `rows`, each in one pass: the rows taken as whole float32
        words, a plain row copy (taking the ``vec`` field, a strided subarray, is about half as
        fast, and reading ``vid`` first walks every row twice). Rows are 4-byte multiples."""
        words = records.view(np.float32).reshape(len(records), self.row_bytes // 4)
        return words[rows].view(self.dtype).reshape(len(rows))

    def read_ids(self, start: int, stop: int) -> LogRead:
        """Ids stored in rows ``start .. stop`` (recovery inventories), with their checks."""
        records = self._mapped(stop)[start:stop]
        ok = _checksums(records) == records["crc"]
        return LogRead(np.where(ok, records["vid"], MISSING_ID), ok)

    def _mapped(self, rows_needed: int) -> np.ndarray:
        # Committed rows never change (compaction writes a new file), so a mapping that covers
        # the rows asked for stays valid; remap only when it is short and the file has grown.
        current = self._map
        if current is not None and len(current) >= rows_needed:
            return current
        with self._map_lock:
            size = os.fstat(self._fd).st_size
            if self._map is None or size != self._mapped_bytes:
                rows = max(0, (size - HEADER_BYTES) // self.row_bytes)
                if rows:
                    length = self.offset(rows)
                    self._buffer = mmap.mmap(self._fd, length, access=mmap.ACCESS_READ)
                    self._map = np.frombuffer(
                        self._buffer, dtype=self.dtype, count=rows, offset=HEADER_BYTES
                    )
                else:
                    self._map = np.empty(0, dtype=self.dtype)
                self._mapped_bytes = size
            return self._map

    def release(self, start_row: int, stop_row: int) -> None:
        """Drop this process's hold on the mapped pages of rows ``start_row .. stop_row`` (they
        stay in the page cache; the next read faults them back in). A read maps the cached
        pages around each row it touches too, so a build that streams or samples the whole log
        lets go of each span it has read to keep about one span resident, not the file."""
        buffer = self._buffer
        if buffer is None or buffer.closed:
            return
        start = self.offset(start_row) // mmap.PAGESIZE * mmap.PAGESIZE
        stop = min(len(buffer), self.offset(stop_row))
        if stop > start:
            buffer.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def close(self) -> None:
        """Close now (store shutdown); a handle that is only retired closes with its last user."""
        self._map = None
        self._finalizer()
