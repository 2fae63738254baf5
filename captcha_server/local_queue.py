"""Default backend: tasks held in this process, solved by a bounded pool of worker processes.

Needs nothing but Python, so `python -m captcha_server` works on its own. Tasks are lost if the
server itself stops (use `--redis` for durability); a crashed pool process is replaced and its
task retried up to `max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from captcha_server import solver
from captcha_server.config import QueueSettings
from captcha_server.stats import Stats
from captcha_server.tasks import QueueFull, Report, State, TaskRecord

log = logging.getLogger(__name__)


def _pid() -> int:
    return os.getpid()


class LocalQueue:
    def __init__(
        self, settings: QueueSettings, workers: int, engines: tuple[str, ...] | None = None
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.workers = workers
        self.stats_ = Stats()
        self._records: dict[str, TaskRecord] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self._engines_loaded = False
        self._started = time.time()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process runs an event loop and threads.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=solver.warm_up,
            initargs=(self.engines,),
        )

    async def start(self) -> None:
        self._pool = self._new_pool()
        loop = asyncio.get_running_loop()
        # One call per process forces them all to start and load engines before serving.
        await asyncio.gather(*(loop.run_in_executor(self._pool, _pid) for _ in range(self.workers)))
        self._engines_loaded = True
        self._janitor = asyncio.create_task(self._expire_loop())

    async def close(self) -> None:
        if self._janitor:
            self._janitor.cancel()
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    async def submit(self, record: TaskRecord, image: bytes) -> None:
        pending = sum(1 for r in self._records.values() if not r.final)
        if pending >= self.settings.max_pending:
            raise QueueFull
        self._records[record.id] = record
        self._done[record.id] = asyncio.Event()
        self.stats_.incr("submitted", record.key)
        job = asyncio.create_task(self._run(record, image))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, record: TaskRecord, image: bytes) -> None:
        loop = asyncio.get_running_loop()
        while True:
            record.attempts += 1
            record.state = State.PROCESSING
            pool = self._pool
            assert pool is not None
            try:
                future = loop.run_in_executor(
                    pool, solver.solve, image, record.options, record.want_specs
                )
                data = await asyncio.wait_for(future, self.settings.solve_timeout_s)
            except BrokenProcessPool:
                log.warning(
                    "worker process died on task %s (attempt %d)", record.id, record.attempts
                )
                if pool is self._pool:
                    self._pool = self._new_pool()
                if record.attempts < self.settings.max_attempts:
                    self.stats_.incr("retried", record.key)
                    continue
                data = solver.Solution(error=solver.UNSOLVABLE).to_dict()
            except TimeoutError:
                data = solver.Solution(error=solver.UNSOLVABLE, engine="timeout").to_dict()
            break
        self._finish(record, solver.Solution.from_dict(data))

    def _finish(self, record: TaskRecord, solution: solver.Solution) -> None:
        record.solution = solution
        record.finished = time.time()
        record.state = State.UNSOLVABLE if solution.error else State.DONE
        self._done.pop(record.id, asyncio.Event()).set()
        self.stats_.incr("unsolvable" if solution.error else "solved", record.key)
        if solution.solve_s:
            self.stats_.observe(solution.engine, solution.solve_s)

    async def get(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    async def wait(self, task_id: str, timeout_s: float) -> None:
        event = self._done.get(task_id)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout_s)

    async def report(self, task_id: str, report: Report) -> str:
        record = self._records[task_id]
        if not record.final:
            return "not_finished"
        if record.report is not Report.NONE:
            return "duplicate"
        record.report = report
        self.stats_.incr(f"reported_{report.value}", record.key)
        return "recorded"

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.time()
            for task_id, r in list(self._records.items()):
                ttl = self.settings.result_ttl_s if r.final else self.settings.task_ttl_s
                since = r.finished if r.final and r.finished else r.created
                if now - since > ttl:
                    del self._records[task_id]
                    self._done.pop(task_id, None)

    def _alive(self) -> int:
        # ProcessPoolExecutor has no public view of its processes; this is read-only.
        procs = getattr(self._pool, "_processes", None) or {}
        return sum(1 for p in procs.values() if p.is_alive())

    async def health(self) -> dict[str, Any]:
        alive = self._alive()
        return {
            "ok": self._engines_loaded and alive > 0,
            "backend": "local",
            "queue_reachable": True,
            "engines_loaded": self._engines_loaded,
            "workers_alive": alive,
        }

    async def key_stats(self, key: str) -> dict[str, int]:
        return self.stats_.for_key(key)

    async def stats(self) -> dict[str, Any]:
        depth = sum(1 for r in self._records.values() if r.state is State.PENDING)
        depth += sum(1 for r in self._records.values() if r.state is State.PROCESSING)
        return {
            **self.stats_.counts,
            "queue_depth": depth,
            "latency": self.stats_.latency(),
        }
