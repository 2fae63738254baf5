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

from cumpair.index.records import StoreLockedError


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers so it cannot starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._reading = _Reading(self)

    def read(self) -> _Reading:
        """A shared hold for a ``with`` block (one object, no generator: every search takes it)."""
        return self._reading

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


class _Reading:
    """`RWLock.read`'s context manager; it keeps no state of its own, so threads share it."""

    __slots__ = ("_rw",)

    def __init__(self, rw: RWLock) -> None:
        self._rw = rw

    def __enter__(self) -> None:
        rw = self._rw
        with rw._cond:
            while rw._writer or rw._writers_waiting:
                rw._cond.wait()
            rw._readers += 1

    def __exit__(self, *exc: object) -> None:
        rw = self._rw
        with rw._cond:
            rw._readers -= 1
            if not rw._readers and rw._writers_waiting:  # only a writer waits for no readers
                rw._cond.notify_all()


# The writer locks this process holds, by store directory: what `WriterLock.join` shares.
_held: dict[str, list] = {}
_held_lock = threading.Lock()


class WriterLock:
    """One writer process per store directory (spiders, scrapyd jobs, the CLI).

    `acquire` is exclusive even within a process (a second `ProductStore` writer is refused);
    `join` shares a lock this process already holds, for the product grouping that writes its
    tables beside the store writer of the same process.
    """

    def __init__(self, directory: Path) -> None:
        from filelock import FileLock  # a writer's: read-only opens (every query) take none

        self._key = str(Path(directory).resolve())
        self._lock = FileLock(directory / "store.lock", thread_local=False)
        self._owner = directory / "writer.json"
        self._holds = False

    def acquire(self, timeout: float) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreLockedError(
                f"{self._lock.lock_file} is held by another writer ({self.owner()}); "
                "open the store with readonly=True to search while it writes"
            ) from None
        self._owner.write_text(json.dumps({"pid": os.getpid()}))
        with _held_lock:
            _held.setdefault(self._key, [self._lock, 0])[1] += 1
        self._holds = True

    def join(self, timeout: float) -> None:
        """Share this directory's lock when this process holds it already, else `acquire`."""
        with _held_lock:
            entry = _held.get(self._key)
            if entry is not None:
                entry[1] += 1
                self._lock, self._holds = entry[0], True
                return
        self.acquire(timeout)

    def owner(self) -> str:
        try:
            return f"pid {json.loads(self._owner.read_text())['pid']}"
        except (OSError, ValueError, KeyError):
            return "unknown process"

    def release(self) -> None:
        if not self._holds:
            return
        self._holds = False
        with _held_lock:
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1]:
                return
            del _held[self._key]
        if entry[0].is_locked:
            entry[0].release()
