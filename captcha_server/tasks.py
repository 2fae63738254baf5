"""The task record both queue backends store, and the interface they share.

A task is acknowledged (its id returned to the client) only after the backend holds it; from
then on it ends `done` or `unsolvable`, or expires after its TTL, never silently vanishes.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from captcha_server.solver import Solution


class State(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    UNSOLVABLE = "unsolvable"


class Report(StrEnum):
    NONE = ""
    GOOD = "good"
    BAD = "bad"


def new_task_id() -> str:
    """A numeric id, as 2captcha clients require (`ERROR_WRONG_ID_FORMAT` otherwise); random so
    one key cannot enumerate another's tasks."""
    return str(10**14 + secrets.randbelow(9 * 10**14))


@dataclass(slots=True)
class TaskRecord:
    id: str
    key: str
    state: State = State.PENDING
    options: dict[str, Any] = field(default_factory=dict)
    want_specs: bool = False
    created: float = field(default_factory=time.time)
    finished: float | None = None
    attempts: int = 0
    report: Report = Report.NONE
    solution: Solution | None = None

    @property
    def finished_ok(self) -> bool:
        return self.state is State.DONE

    @property
    def final(self) -> bool:
        return self.state in (State.DONE, State.UNSOLVABLE)


class QueueFull(Exception):
    """The backend holds `max_pending` tasks already (answered as ERROR_NO_SLOT_AVAILABLE)."""


class QueueUnavailable(Exception):
    """The backend cannot be reached right now (Redis down); clients may retry."""


class TaskQueue(Protocol):
    """What the HTTP layer needs from a backend."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, record: TaskRecord, image: bytes) -> None:
        """Store the task durably; raise QueueFull / QueueUnavailable instead."""

    async def get(self, task_id: str) -> TaskRecord | None: ...

    async def wait(self, task_id: str, timeout_s: float) -> None:
        """Return when the task is final or after `timeout_s`, whichever comes first."""

    async def report(self, task_id: str, report: Report) -> str:
        """Record a good/bad report: "recorded", "duplicate" or "not_finished"."""

    async def health(self) -> dict[str, Any]:
        """`ok`, `queue_reachable`, `engines_loaded`, `workers_alive` and backend details."""

    async def stats(self) -> dict[str, Any]:
        """Counters, queue depth and per-engine latency samples (seconds)."""

    async def key_stats(self, key: str) -> dict[str, int]:
        """The counters of `stats()` for the tasks of one API key."""
