"""Append-only files of raw float32 vectors, one per space: the store's bulk vector storage.

Row ``r`` of a log lives at byte ``r * dim * 4``. SQLite records which row holds which vector id
and how many rows are committed (``vector_logs.rows``); bytes past that count are leftovers of an
append whose transaction never committed and are overwritten by the next append. Rows are written
*before* the SQLite commit that makes them reachable, so a process killed at any moment leaves
every committed row readable (``fsync`` first as well when the store runs ``synchronous=FULL``).

Keeping megabytes of vectors out of SQLite's B-tree is what makes bulk loads fast: a 10^5 x 512
batch costs one sequential write here, against seconds as per-row BLOBs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

_SUFFIX = ".f32"


def log_name(space: str, epoch: int) -> str:
    """File name of a space's log; compaction writes the next epoch and switches to it."""
    return f"vectors.{space}.e{epoch:04d}{_SUFFIX}"


def is_log_name(name: str) -> bool:
    return name.startswith("vectors.") and name.endswith(_SUFFIX)


def log_epoch(name: str) -> int:
    return int(name[: -len(_SUFFIX)].rsplit(".e", 1)[1])


class VectorLog:
    """Positional reads and writes of one log file (thread-safe: pread/pwrite, no shared offset)."""

    def __init__(self, path: Path, dim: int, *, writable: bool) -> None:
        self.path = path
        self.dim = dim
        self.row_bytes = dim * 4
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        self._fd = os.open(path, flags, 0o644)
        self._map: np.ndarray | None = None
        self._map_lock = threading.Lock()

    def write(self, start_row: int, matrix: np.ndarray) -> None:
        """Write rows ``start_row ..`` (whatever lies there is an uncommitted leftover)."""
        data = memoryview(np.ascontiguousarray(matrix, dtype=np.float32)).cast("B")
        offset = start_row * self.row_bytes
        while len(data):
            written = os.pwrite(self._fd, data, offset)
            data, offset = data[written:], offset + written

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, rows: int) -> None:
        os.ftruncate(self._fd, rows * self.row_bytes)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows by number, as a new ``(len(rows), dim)`` array."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty((0, self.dim), dtype=np.float32)
        return np.array(self._mapped(int(rows.max()) + 1)[rows])

    def _mapped(self, rows_needed: int) -> np.ndarray:
        # The file only grows while mapped (compaction writes a new file), so a mapping that
        # covers the rows asked for stays valid; remap only when it is too short.
        current = self._map
        if current is not None and len(current) >= rows_needed:
            return current
        with self._map_lock:
            current = self._map
            if current is None or len(current) < rows_needed:
                size = os.fstat(self._fd).st_size // self.row_bytes
                if size < rows_needed:
                    raise OSError(f"{self.path}: {size} rows on disk, row {rows_needed - 1} wanted")
                current = np.memmap(self.path, dtype=np.float32, mode="r", shape=(size, self.dim))
                self._map = current
            return current

    def close(self) -> None:
        self._map = None
        os.close(self._fd)
