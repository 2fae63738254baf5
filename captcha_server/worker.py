"""`python -m captcha_server.worker --redis URL`: solve tasks from the Redis queue.

Run any number, on any machine that reaches Redis. Each loads the OCR engines once, takes one
task at a time (BLMOVE pending -> processing), renews its lease from a heartbeat thread while it
solves, and requeues tasks of dead peers (see `redis_scripts.REAP`). It survives Redis restarts
by retrying with backoff; an unfinished result write is retried until it lands or the lease
is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid

import redis

from captcha_server import redis_scripts, solver
from captcha_server.config import QueueSettings, parse_engines
from captcha_server.redis_queue import LATENCY_WINDOW, Keys, reap

log = logging.getLogger("captcha_server.worker")


class Worker:
    def __init__(
        self,
        url: str,
        settings: QueueSettings,
        prefix: str = "captcha",
        engines: tuple[str, ...] | None = None,
    ) -> None:
        self.engines = engines
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.settings = settings
        self.keys = Keys(prefix)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.current: str | None = None
        self.engines_loaded = False
        self.stopping = threading.Event()
        self._last_reap = 0.0

    # -- heartbeat: liveness for /health and lease renewal for the task in hand --------------
    def _beat_once(self) -> None:
        ttl = max(2, int(self.settings.visibility_timeout_s))
        info = {"id": self.id, "pid": os.getpid(), "engines_loaded": self.engines_loaded}
        self.client.set(self.keys.worker(self.id), json.dumps(info), ex=ttl)
        if self.current is not None:
            lease = time.time() + self.settings.visibility_timeout_s
            self.client.eval(redis_scripts.RENEW, 1, self.keys.task(self.current), self.id, lease)

    def _heartbeat(self) -> None:
        interval = max(0.2, self.settings.visibility_timeout_s / 4)
        while not self.stopping.wait(interval):
            try:
                self._beat_once()
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        solver.warm_up(self.engines)
        self.engines_loaded = True
        try:
            self._beat_once()  # visible in /health before the first heartbeat interval
        except redis.RedisError as exc:
            log.warning("redis unavailable at start: %s", exc)
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        backoff = 0.1
        while not self.stopping.is_set():
            try:
                self._maybe_reap()
                self._step()
                backoff = 0.1
            except redis.RedisError as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self.keys.worker(self.id))

    def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= max(0.2, self.settings.visibility_timeout_s / 4):
            self._last_reap = now
            requeued, failed = reap(self.client, self.keys, self.settings)
            if requeued or failed:
                log.info("reaped: %d requeued, %d failed", requeued, failed)

    def _step(self) -> None:
        raw = self.client.blmove(self.keys.pending, self.keys.processing, 1.0, "RIGHT", "LEFT")
        if raw is None:
            return
        task_id = raw.decode()
        lease = time.time() + self.settings.visibility_timeout_s
        attempt = int(
            self.client.eval(
                redis_scripts.CLAIM,
                2,
                self.keys.task(task_id),
                self.keys.processing,
                task_id,
                lease,
                self.id,
            )
        )
        if attempt < 0:
            return
        self.current = task_id
        try:
            fields = self.client.hmget(self.keys.task(task_id), ["image", "options", "want_specs"])
            image, options, want_specs = fields
            if image is None:
                result = solver.Solution(error=solver.UNSOLVABLE, engine="no-image").to_dict()
            else:
                result = solver.solve(image, json.loads(options), want_specs == b"1")
            self._finish(task_id, result)
        finally:
            self.current = None

    def _finish(self, task_id: str, result: dict) -> None:
        state = "unsolvable" if result.get("error") else "done"
        deadline = time.monotonic() + max(5.0, self.settings.visibility_timeout_s)
        delay = 0.1
        while True:
            try:
                recorded = self.client.eval(
                    redis_scripts.FINISH,
                    5,
                    self.keys.task(task_id),
                    self.keys.processing,
                    self.keys.pending,
                    self.keys.stats,
                    self.keys.done,
                    task_id,
                    state,
                    json.dumps(result),
                    time.time(),
                    self.settings.result_ttl_s,
                )
                if recorded and result.get("solve_s"):
                    lat = self.keys.latency(result.get("engine") or "none")
                    with self.client.pipeline() as pipe:
                        pipe.lpush(lat, result["solve_s"]).ltrim(lat, 0, LATENCY_WINDOW - 1)
                        pipe.execute()
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    # Give up: the reaper hands the task to another worker.
                    log.error("could not record result of %s: %s", task_id, exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


def healthy_here(url: str, prefix: str = "captcha") -> bool:
    """Whether a worker on this host has a live heartbeat in Redis."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        pattern = Keys(prefix).worker(f"{socket.gethostname()}-*")
        return any(True for _ in client.scan_iter(match=pattern, count=100))
    except redis.RedisError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m captcha_server.worker", description=__doc__)
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--prefix", default="captcha", help="key prefix shared with the server")
    parser.add_argument("--visibility-timeout", type=float, default=30.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--result-ttl", type=int, default=900)
    parser.add_argument(
        "--engines", type=parse_engines, help="engines to load at start (tasks name their own)"
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 if a worker on this host is heartbeating, else 1 (container health checks)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.healthcheck:
        sys.exit(0 if healthy_here(args.redis, args.prefix) else 1)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    settings = QueueSettings(
        visibility_timeout_s=args.visibility_timeout,
        max_attempts=args.max_attempts,
        result_ttl_s=args.result_ttl,
    )
    worker = Worker(args.redis, settings, args.prefix, args.engines)
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: worker.stopping.set())
    log.info("worker %s serving %s", worker.id, args.redis)
    worker.run()


if __name__ == "__main__":
    main()
