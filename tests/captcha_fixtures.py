"""Shared helpers for the captcha server tests: keys, images, and real server processes.

Servers run as `python -m captcha_server` subprocesses (the same command as production and
docker-compose), with the in-process pool or with a private redis-server and two
`python -m captcha_server.worker` processes.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from PIL import Image, ImageDraw, ImageFont

from captcha_server.redis_runner import RedisRunner, free_port

KEY = "A" * 16 + "0123456789abcdef"
OTHER_KEY = "B" * 32
ADMIN_KEY = "Adm1n" + "7" * 27
"""Sees the server's global `/stats` (CAPTCHA_ADMIN_KEYS); not an API key."""
ROOT = Path(__file__).resolve().parents[1]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
ENGINES = ("--engines", "tesseract,rapidocr")
"""EasyOCR (torch) takes ~20 s to load per process on these 2 shared cores; the tests use the
two fast engines of the same chain."""


def text_png(text: str, size: tuple[int, int] = (260, 80)) -> bytes:
    """A clean captcha-like PNG showing `text`."""
    image = Image.new("RGB", size, (250, 250, 246))
    ImageDraw.Draw(image).text((18, 12), text, font=ImageFont.truetype(FONT, 44), fill=(20, 30, 40))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int = 30000, height: int = 30000, rows: int = 2000) -> bytes:
    """A decompression bomb: a 1-bit PNG whose header claims `width`x`height` pixels, with the
    first `rows` rows of zeros compressed (~7 KB for the defaults). Decoding it whole would take
    width*height bytes of memory; only its header may be read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * rows, 9))
        + chunk(b"IEND", b"")
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def wait_http(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0, healthy: bool = True, **kw
) -> None:
    """Wait until /health answers 200 (or, with healthy=False, until the server answers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = requests.get(url, timeout=2, **kw)
            if r.status_code == 200 or (not healthy and r.json()["queue_reachable"]):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout_s}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_worker(redis_url: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "captcha_server.worker", "--redis", redis_url, *ENGINES, *extra],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class RunningServer:
    base: str
    proc: subprocess.Popen[bytes]
    redis: RedisRunner | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    verify: str | bool = True

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.base + path, timeout=30, verify=self.verify, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.base + path, timeout=30, verify=self.verify, **kw)


@contextmanager
def captcha_server(
    tmp: Path,
    backend: str = "local",
    n_workers: int = 2,
    server_args: tuple[str, ...] = (),
    worker_args: tuple[str, ...] = (),
    keys: str = f"{KEY},{OTHER_KEY}",
    scheme: str = "http",
    verify: str | bool = True,
) -> Iterator[RunningServer]:
    """A real server (and for `backend="redis"` a redis-server and `n_workers` workers)."""
    port = free_port()
    redis_runner = None
    workers: list[subprocess.Popen[bytes]] = []
    proc = None
    args = [sys.executable, "-m", "captcha_server", "--port", str(port), *ENGINES, *server_args]
    try:
        if backend == "redis":
            redis_runner = RedisRunner(tmp / "redis")
            redis_runner.start()
            args += ["--redis", redis_runner.url]
            workers = [start_worker(redis_runner.url, *worker_args) for _ in range(n_workers)]
        else:
            args += ["--workers", "1"]
        env = _env()
        env["CAPTCHA_API_KEYS"] = keys
        env["CAPTCHA_ADMIN_KEYS"] = ADMIN_KEY
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        base = f"{scheme}://127.0.0.1:{port}"
        wait_http(
            base + "/health", proc, healthy=backend == "local" or n_workers > 0, verify=verify
        )
        yield RunningServer(base, proc, redis_runner, workers, verify)
    finally:
        stop(proc)
        for w in workers:
            stop(w)
        if redis_runner is not None:
            redis_runner.stop()


def solve_v1(server: RunningServer, image: bytes, timeout_s: float = 120.0, **fields) -> str:
    """Submit via in.php (base64) and poll res.php; returns the final res.php body."""
    r = server.post("/in.php", data={"key": KEY, "method": "base64", "body": b64(image), **fields})
    assert r.text.startswith("OK|"), r.text
    task_id = r.text[3:]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = server.get("/res.php", params={"key": KEY, "action": "get", "id": task_id}).text
        if answer != "CAPCHA_NOT_READY":
            return answer
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not solved in {timeout_s}s")
