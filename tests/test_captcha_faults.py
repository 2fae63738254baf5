"""Redis mode under faults: a worker killed mid-task, and Redis killed and restarted mid-run.

Bounded: visibility timeout 2 s, every wait has a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from captcha_server.redis_queue import Keys
from tests.captcha_fixtures import (
    ENGINES,
    KEY,
    ROOT,
    _env,
    b64,
    captcha_server,
    start_worker,
    stop,
    text_png,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FAST = ("--visibility-timeout", "2")
WORDS = ["7KX4P", "40721", "HMRTA", "93KXE", "PLUMB", "38164", "WVXRN", "AHEJD"]

# A real worker process whose OCR never returns: it claims a task and holds it until killed.
HANGING_WORKER = (
    "import sys, time\n"
    "from captcha_server import solver, worker\n"
    "solver.solve = lambda *a, **k: time.sleep(3600)\n"
    "worker.main(sys.argv[1:])\n"
)


def submit(server, text: str) -> str:
    r = server.post("/in.php", data={"key": KEY, "method": "base64", "body": b64(text_png(text))})
    assert r.text.startswith("OK|"), r.text
    return r.text[3:]


def answers(server, ids: list[str], deadline_s: float) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            joined = server.get(
                "/res.php", params={"key": KEY, "action": "get", "ids": ",".join(ids)}
            )
            got = joined.text.split("|")
        except Exception:
            got = ["CAPCHA_NOT_READY"]
        if "CAPCHA_NOT_READY" not in got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def submit_to_a_worker_killed_mid_task(server, worker_args: tuple[str, ...]) -> str:
    """Submit a task, let a worker that never finishes claim it, SIGKILL that worker."""
    hanging = subprocess.Popen(
        [sys.executable, "-c", HANGING_WORKER, "--redis", server.redis.url, *ENGINES, *worker_args],
        cwd=ROOT,
        env=_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        task_id = submit(server, "7KX4P")
        client = redis.Redis(port=server.redis.port)
        deadline = time.monotonic() + 60
        while client.hget(Keys().task(task_id), "state") != b"processing":
            assert time.monotonic() < deadline, "hanging worker never claimed the task"
            time.sleep(0.05)
        assert f"-{hanging.pid}-".encode() in client.hget(Keys().task(task_id), "worker")
        hanging.send_signal(signal.SIGKILL)
        hanging.wait(timeout=10)
    finally:
        stop(hanging)
    return task_id


def test_task_held_by_a_killed_worker_is_solved_by_another(tmp_path):
    with captcha_server(tmp_path, backend="redis", n_workers=0, server_args=FAST) as server:
        task_id = submit_to_a_worker_killed_mid_task(server, FAST)
        client = redis.Redis(port=server.redis.port)
        server.workers += [start_worker(server.redis.url, *FAST) for _ in range(2)]
        assert answers(server, [task_id], 90) == ["7KX4P"]
        result = server.post("/getTaskResult", json={"clientKey": KEY, "taskId": int(task_id)})
        assert result.json()["solveCount"] == 2  # claimed twice: the dead worker, then a live one
        assert server.get("/stats", params={"key": KEY}).json()["retried"] >= 1
        ttl = client.ttl(Keys().task(task_id))
        assert 0 < ttl <= 900  # finished tasks expire after the result TTL


def test_task_whose_workers_keep_dying_ends_unsolvable_after_max_attempts(tmp_path):
    limits = ("--visibility-timeout", "1", "--max-attempts", "1")
    with captcha_server(tmp_path, backend="redis", n_workers=0, server_args=limits) as server:
        task_id = submit_to_a_worker_killed_mid_task(server, limits)
        client = redis.Redis(port=server.redis.port)
        server.workers.append(start_worker(server.redis.url, *limits))
        assert answers(server, [task_id], 90) == ["ERROR_CAPTCHA_UNSOLVABLE"]
        assert client.hget(Keys().task(task_id), "image") is None  # image dropped once final


def test_killing_one_of_two_workers_mid_run_loses_no_task(tmp_path):
    with captcha_server(tmp_path, backend="redis", server_args=FAST, worker_args=FAST) as server:
        ids = [submit(server, w) for w in WORDS]
        client = redis.Redis(port=server.redis.port)
        deadline = time.monotonic() + 60
        while client.llen(Keys().processing) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.workers[0].send_signal(signal.SIGKILL)
        server.workers[0].wait(timeout=10)
        assert answers(server, ids, 120) == WORDS


def test_redis_killed_and_restarted_mid_run_loses_no_acknowledged_task(tmp_path):
    with captcha_server(tmp_path, backend="redis", server_args=FAST, worker_args=FAST) as server:
        ids = [submit(server, w) for w in WORDS]
        server.redis.kill()  # SIGKILL: only what appendfsync wrote survives
        down = server.post(
            "/in.php", data={"key": KEY, "method": "base64", "body": b64(text_png("ABCDE"))}
        )
        assert down.text == "ERROR_NO_SLOT_AVAILABLE"
        polled = server.get("/res.php", params={"key": KEY, "action": "get", "id": ids[0]})
        assert polled.text == "CAPCHA_NOT_READY"
        assert server.get("/health").status_code == 503
        time.sleep(1.0)
        server.redis.start()
        assert answers(server, ids, 120) == WORDS
        assert server.get("/health").status_code == 200


def _pool_processes(pid: int) -> list[int]:
    """Children of the server started by multiprocessing's spawn (the OCR pool)."""
    children = (Path(f"/proc/{pid}/task/{pid}/children").read_text()).split()
    return [
        int(c)
        for c in children
        if b"multiprocessing.spawn" in Path(f"/proc/{c}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


def test_local_pool_process_killed_mid_task_is_replaced_and_the_task_retried(tmp_path):
    with captcha_server(tmp_path, backend="local") as server:
        # An impossible min_len keeps the chain busy long enough to kill it mid-task.
        slow = {"key": KEY, "method": "base64", "body": b64(text_png("7KX4P")), "min_len": "20"}
        task_id = server.post("/in.php", data=slow).text[3:]
        [pool_pid] = _pool_processes(server.proc.pid)
        time.sleep(0.2)
        os.kill(pool_pid, signal.SIGKILL)
        assert answers(server, [task_id], 120) == ["ERROR_CAPTCHA_UNSOLVABLE"]
        result = server.post("/getTaskResult", json={"clientKey": KEY, "taskId": int(task_id)})
        assert result.json()["errorId"] == 12
        assert server.get("/stats", params={"key": KEY}).json()["retried"] == 1
        # The pool was replaced: a new task is solved and health is green again.
        assert answers(server, [submit(server, "40721")], 120) == ["40721"]
        assert server.get("/health").json()["workers_alive"] == 1


def test_per_key_rate_limit_answers_max_user_turn(tmp_path):
    limited = ("--rate", "0.01", "--burst", "2")
    with captcha_server(tmp_path, backend="local", server_args=limited) as server:
        form = {"key": KEY, "method": "base64", "body": b64(text_png("7KX4P"))}
        answers_ = [server.post("/in.php", data=form).text for _ in range(3)]
        assert [a.startswith("OK|") for a in answers_] == [True, True, False]
        assert answers_[2] == "MAX_USER_TURN"
        other = server.post("/in.php", data={**form, "key": "B" * 32})
        assert other.text.startswith("OK|")  # the limit is per key
