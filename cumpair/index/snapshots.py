"""Atomic FAISS snapshot files: serialise, write to a temp file, fsync, rename, verify on load.

A snapshot only becomes current when its row is committed to SQLite (after the rename), so a
kill at any moment leaves either the previous snapshot current or the new one complete; stray
files from an interrupted flush are swept by the next writer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np


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


def serialize(index: faiss.Index) -> np.ndarray:
    """An in-memory copy of the index (fast; lets the slow file write run without locks)."""
    return faiss.serialize_index(index)


def write_atomic(directory: Path, name: str, data: np.ndarray) -> WrittenFile:
    """Write `data` to ``directory/name`` so that the name only ever points at complete bytes."""
    final = directory / name
    tmp = directory / f".{name}.tmp"
    view = memoryview(data).cast("B")
    with open(tmp, "wb") as fh:
        fh.write(view)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(directory)
    return WrittenFile(name, hashlib.sha256(view).hexdigest(), len(view))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(directory: Path, name: str, sha256: str, size: int) -> faiss.Index:
    """Read and verify a snapshot; any mismatch raises `SnapshotCorruptError`, never a crash."""
    path = directory / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SnapshotCorruptError(f"{path}: {exc}") from exc
    if len(raw) != size:
        raise SnapshotCorruptError(f"{path}: {len(raw)} bytes, expected {size}")
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise SnapshotCorruptError(f"{path}: checksum mismatch")
    try:
        return faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
    except RuntimeError as exc:  # FAISS reports unreadable data as RuntimeError
        raise SnapshotCorruptError(f"{path}: {exc}") from exc
