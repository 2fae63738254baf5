"""Locks of the product store: a readers-writer lock (threads) and the writer file lock (processes).

Searches share a space's lock; only the brief in-memory mutations (add, remove, swap) take it
exclusively, so slow work (training, file writes) never runs under it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from cumpair.index.records import StoreLockedError


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers so it cannot starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class WriterLock:
    """One writer process per store directory (spiders, scrapyd jobs, the CLI)."""

    def __init__(self, directory: Path) -> None:
        self._lock = FileLock(directory / "store.lock", thread_local=False)
        self._owner = directory / "writer.json"

    def acquire(self, timeout: float) -> None:
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreLockedError(
                f"{self._lock.lock_file} is held by another writer ({self.owner()}); "
                "open the store with readonly=True to search while it writes"
            ) from None
        self._owner.write_text(json.dumps({"pid": os.getpid()}))

    def owner(self) -> str:
        try:
            return f"pid {json.loads(self._owner.read_text())['pid']}"
        except (OSError, ValueError, KeyError):
            return "unknown process"

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
