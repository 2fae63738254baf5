"""What a store directory holds, asked without opening the store: is a store there, which spaces
it records, which files are the store's own, and migrating it in place under a held lock.

The only module besides the store itself that opens ``meta.sqlite``; callers outside the index
package ask these functions instead of reading the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cumpair.index import metadata
from cumpair.index.metadata import DB_NAME
from cumpair.index.records import SpaceSpec

_LOCK_FILES = ("store.lock", "writer.json")


def store_exists(path: str | os.PathLike[str]) -> bool:
    """True when `path` holds a store's database (a crawl or ingest made one)."""
    return (Path(path) / DB_NAME).is_file()


def recorded_spaces(path: str | os.PathLike[str]) -> dict[str, SpaceSpec]:
    """The vector spaces the store at `path` records (name -> spec); empty when there is none.

    Reads without loading any index (cheap: the CLI asks this before it loads models).
    """
    if not store_exists(path):
        return {}
    with contextlib.closing(metadata.connect(Path(path) / DB_NAME, readonly=True)) as conn:
        return metadata.space_specs(conn)


def is_store_file(name: str) -> bool:
    """True for the names of files the store writes in its directory: the database and its
    WAL, vector logs, snapshots, the writer lock and temp files."""
    from cumpair.index import vectorlog  # numpy: not for the callers of the other functions

    return (
        name.startswith(DB_NAME)
        or name.endswith(".faiss")
        or vectorlog.is_log_name(name)
        or name in _LOCK_FILES
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def migrate_locked(path: str | os.PathLike[str]) -> int:
    """Bring the database at `path` to this code's schema; returns the schema version.

    The caller must hold the directory's `WriterLock` (reindex does, for its whole run).
    """
    path = Path(path)
    with contextlib.closing(metadata.connect(path / DB_NAME, readonly=False)) as conn:
        return metadata.migrate(conn, path)
