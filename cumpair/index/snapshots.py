"""Atomic FAISS snapshot files: serialise, write to a temp file, fsync, rename, verify on load.

A snapshot only becomes current when its row is committed to SQLite (after the rename), so a
kill at any moment leaves either the previous snapshot current or the new one complete; stray
files from an interrupted flush are swept by the next writer. A write that fails (disk full)
removes its temp file and raises `StoreIOError`, never a bare `OSError`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from cumpair.index.records import StoreIOError


class SnapshotCorruptError(Exception):
    """A snapshot file is missing, truncated, or does not match its recorded checksum."""


@dataclass(frozen=True)
class WrittenFile:
    name: str
    sha256: str
    size: int


def snapshot_name(space: str, generation: int, stamp: str) -> str:
    """Timestamped file name, e.g. ``image.g00000012.20261125T101500Z.faiss``."""
    return f"{space}.g{generation:08d}.{stamp}.faiss"


def generation_of(name: str) -> int | None:
    """The generation in a `snapshot_name` (None for a name this code did not write)."""
    parts = name.rsplit(".", 3)
    if len(parts) == 4 and parts[1][:1] == "g" and parts[1][1:].isdigit():
        return int(parts[1][1:])
    return None


def serialize(index: faiss.Index) -> np.ndarray:
    """An in-memory copy of the index (fast; lets the slow file write run without locks)."""
    return faiss.serialize_index(index)


def write_atomic(directory: Path, name: str, data: np.ndarray) -> WrittenFile:
    """Write `data` to ``directory/name`` so that the name only ever points at complete bytes."""
    final = directory / name
    tmp = directory / f".{name}.tmp"
    view = memoryview(data).cast("B")
    try:
        with open(tmp, "wb") as fh:
            fh.write(view)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(directory)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreIOError(
            exc.errno, f"writing snapshot {final} failed: {exc.strerror or exc}"
        ) from exc
    return WrittenFile(name, hashlib.sha256(view).hexdigest(), len(view))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(directory: Path, name: str, sha256: str, size: int) -> faiss.Index:
    """Read and verify a snapshot; any mismatch raises `SnapshotCorruptError`, never a crash."""
    raw = _read_verified(directory / name, sha256, size)
    try:
        return faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
    except RuntimeError as exc:  # FAISS reports unreadable data as RuntimeError
        raise SnapshotCorruptError(f"{directory / name}: {exc}") from exc


def verify(directory: Path, name: str, sha256: str, size: int) -> None:
    """Check a snapshot's size and checksum without loading it (`cumpair index check`)."""
    _read_verified(directory / name, sha256, size)


def _read_verified(path: Path, sha256: str, size: int) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SnapshotCorruptError(f"{path}: {exc}") from exc
    _verify(path, raw, sha256, size)
    return raw


def _verify(path: Path, raw: bytes, sha256: str, size: int) -> None:
    if len(raw) != size:
        raise SnapshotCorruptError(f"{path}: {len(raw)} bytes, expected {size}")
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise SnapshotCorruptError(f"{path}: checksum mismatch")
