"""`cumpair index recover`: keep every data file of a store whose database is gone, with an
inventory, so the directory can start afresh without destroying evidence.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cumpair.index import lostfound, snapshots, vectorlog
from cumpair.index.locks import WriterLock
from cumpair.index.records import ORDINAL_BITS, StoreError
from cumpair.index.store.base import DB_NAME
from cumpair.index.store.opening import _data_files


def recover(path: str | os.PathLike[str], lock_timeout_s: float = 10.0) -> dict[str, Any]:
    """`cumpair index recover`: keep every data file of a store whose database is gone.

    Offer records (shop, URL, price history) exist only in the database, so nothing can rebuild
    them; the files are moved, untouched, to ``lost+found/recovered-<time>/`` beside an
    ``inventory.json`` of what they hold (per log: space, dimension, rows, rows whose checksum
    holds, distinct offer ids; per snapshot: space, generation, bytes). The directory is then
    ready for a fresh store, which a re-crawl refills; restoring the database from a backup
    and moving the files back restores the old one.
    """
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"no store directory at {path}")
    lock = WriterLock(path)
    lock.acquire(lock_timeout_s)
    try:
        if (path / DB_NAME).exists():
            raise StoreError(
                f"{path / DB_NAME} exists: nothing to recover (`cumpair index check` verifies it)"
            )
        found = _data_files(path)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = path / lostfound.FOLDER / f"recovered-{stamp}"
        inventory: dict[str, Any] = {"from": str(path), "kept_in": None, "files": {}}
        if not found:
            return inventory
        folder.mkdir(parents=True)
        inventory["kept_in"] = str(folder)
        for name in found:
            inventory["files"][name] = _inventory_entry(path / name)
            os.replace(path / name, folder / name)
        (folder / "inventory.json").write_text(json.dumps(inventory, indent=2))
        snapshots.fsync_dir(path)
        return inventory
    finally:
        lock.release()


def _inventory_entry(file: Path) -> dict[str, Any]:
    """What one data file holds, as far as it can be read without the database."""
    entry: dict[str, Any] = {"bytes": file.stat().st_size}
    if vectorlog.is_log_name(file.name):
        entry["space"] = vectorlog.log_space(file.name)
        try:
            vectors_log = vectorlog.VectorLog.existing(file)
        except StoreError as exc:  # a schema-2 log, or a damaged header
            entry["error"] = str(exc)
            return entry
        try:
            total = vectors_log.rows_on_disk()
            offers: set[int] = set()
            intact = 0
            for start in range(0, total, 65536):
                ids, ok = vectors_log.read_ids(start, min(total, start + 65536))
                intact += int(ok.sum())
                offers.update((ids[ok] >> ORDINAL_BITS).tolist())
        finally:
            vectors_log.close()
        entry.update(dim=vectors_log.dim, rows=total, rows_intact=intact, offers=len(offers))
    elif file.suffix == ".faiss":
        generation = snapshots.generation_of(file.name)
        entry.update(space=file.name.rsplit(".", 3)[0], generation=generation)
    return entry
