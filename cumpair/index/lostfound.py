"""``lost+found/`` of a store directory: data files and bytes the database does not account for.

Opening a store never deletes what might be the only trace of a commit the database lost (log
rows past the committed count, snapshots or logs newer than it knows); they are moved or copied
here, recorded, and reported by `health`. Nothing here is read back by the store; the operator
decides what to do with it (`cumpair index check` lists it).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cumpair.index.records import StoreIOError

FOLDER = "lost+found"


def _target(directory: Path, name: str) -> Path:
    folder = directory / FOLDER
    folder.mkdir(exist_ok=True)
    target, n = folder / name, 1
    while target.exists():
        n += 1
        target = folder / f"{name}.{n}"
    return target


def keep_bytes(directory: Path, name: str, data: bytes) -> Path:
    """Save `data` as ``lost+found/<name>`` (a numbered name when taken), fsynced."""
    target = _target(directory, name)
    try:
        with open(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise StoreIOError(
            exc.errno or errno.EIO, f"keeping {name} in {target.parent}: {exc}"
        ) from exc
    return target


def move(path: Path, directory: Path) -> Path:
    """Move a whole file into ``lost+found/`` (same file system: a rename, nothing copied)."""
    target = _target(directory, path.name)
    os.replace(path, target)
    return target


def listing(directory: Path) -> dict[str, int]:
    """What lies in ``lost+found/``: relative name -> bytes."""
    folder = directory / FOLDER
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.stat().st_size for p in files}
