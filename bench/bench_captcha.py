"""Benchmark the OCR server: throughput and latency under N concurrent loopback clients, and
the server's per-image time against a direct call of the same OCR chain in the same run.

    python bench/bench_captcha.py                      # default: 40 tasks, 4 clients, local pool
    python bench/bench_captcha.py --tasks 400 --clients 16 --workers 2 --redis

Images are the demo shops' captchas (`cumpair.demo.captcha`). Every task must come back: lost
tasks (no final answer before the deadline) are counted and make the run exit non-zero.
Per-image overhead: one client, one task at a time, through `POST /v1/ocr` (sync), against
`captcha_server.solver.solve` called directly in this process on the same images; the target is
a ratio of at most 1.15.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captcha_server.redis_runner import RedisRunner, free_port  # noqa: E402
from captcha_server.solver import solve, warm_up  # noqa: E402
from cumpair.demo.captcha import answer_matches, captcha_png  # noqa: E402

KEY = "bench" + "0" * 27


def tokens(n: int) -> list[str]:
    return [f"{i * 7919 + 12345:016x}" for i in range(n)]


def start_stack(args: argparse.Namespace, tmp: Path) -> tuple[str, list[subprocess.Popen], object]:
    env = {**os.environ, "CAPTCHA_API_KEYS": KEY, "PYTHONPATH": str(ROOT)}
    engines = ["--engines", args.engines]
    procs: list[subprocess.Popen] = []
    redis_runner = None
    port = free_port()
    cmd = [sys.executable, "-m", "captcha_server", "--port", str(port), "--rate", "0", *engines]
    if args.redis:
        redis_runner = RedisRunner(tmp / "redis")
        redis_runner.start()
        cmd += ["--redis", redis_runner.url]
        for _ in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "captcha_server.worker",
                        "--redis",
                        redis_runner.url,
                        *engines,
                        "--log-level",
                        "WARNING",
                    ],
                    env=env,
                    cwd=ROOT,
                )
            )
    else:
        cmd += ["--workers", str(args.workers)]
    procs.append(
        subprocess.Popen([*cmd, "--log-level", "WARNING"], env=env, cwd=ROOT)  # server last
    )
    return f"http://127.0.0.1:{port}", procs, redis_runner


async def wait_healthy(session: aiohttp.ClientSession, base: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError("server not healthy")


async def ocr_once(session: aiohttp.ClientSession, base: str, png: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    async with session.post(
        f"{base}/v1/ocr",
        data=png,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "image/png"},
    ) as r:
        body = await r.json()
    return time.perf_counter() - started, body


async def v1_once(session: aiohttp.ClientSession, base: str, png: bytes) -> tuple[float, dict]:
    """The 2captcha path: in.php, then res.php polled every 50 ms."""
    import base64

    started = time.perf_counter()
    form = {"key": KEY, "method": "base64", "body": base64.b64encode(png).decode(), "json": "1"}
    async with session.post(f"{base}/in.php", data=form) as r:
        task_id = (await r.json(content_type=None))["request"]
    params = {"key": KEY, "action": "get", "id": task_id, "json": "1"}
    while True:
        async with session.get(f"{base}/res.php", params=params) as r:
            got = await r.json(content_type=None)
        if got["request"] != "CAPCHA_NOT_READY":
            text = got["request"] if got["status"] == 1 else ""
            return time.perf_counter() - started, {"text": text, "state": got["request"]}
        await asyncio.sleep(0.05)


async def load_test(base: str, pngs: list[tuple[str, bytes]], args: argparse.Namespace) -> dict:
    gate = asyncio.Semaphore(args.clients)
    latencies: list[float] = []
    correct = lost = 0
    call = v1_once if args.protocol == "v1" else ocr_once

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.deadline)) as s:

        async def one(token: str, png: bytes) -> None:
            nonlocal correct, lost
            async with gate:
                try:
                    seconds, body = await call(s, base, png)
                except (aiohttp.ClientError, TimeoutError):
                    lost += 1
                    return
            if "text" not in body and body.get("state") not in ("unsolvable",):
                lost += 1
                return
            latencies.append(seconds)
            correct += answer_matches(token, body.get("text", ""))

        started = time.perf_counter()
        await asyncio.gather(*(one(t, p) for t, p in pngs))
        wall = time.perf_counter() - started
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (0, 0)
    return {
        "tasks": len(pngs),
        "answered": len(latencies),
        "lost": lost,
        "correct": correct,
        "tasks_per_s": len(latencies) / wall,
        "p50_ms": p50,
        "p99_ms": p99,
    }


async def overhead(
    base: str, pngs: list[tuple[str, bytes]], engines: tuple[str, ...], rounds: int
) -> dict:
    """Median per-image time: direct solve() here vs the server, one request at a time.

    Direct and served calls alternate image by image, `rounds` times, so both see the same
    machine load (the cores are shared); a first direct pass warms this process's engines as
    the pool's are. The server reports its own OCR time per task (`solve_ms`), which splits the
    served time into OCR and everything else (HTTP, validation, queue, IPC).
    """
    warm_up(engines)
    options = {"engines": list(engines)}
    for _, png in pngs[:5]:
        solve(png, options)
    direct, served, served_ocr = [], [], []
    async with aiohttp.ClientSession() as s:
        for _ in range(rounds):
            for _, png in pngs:
                started = time.perf_counter()
                solve(png, options)
                direct.append(time.perf_counter() - started)
                seconds, body = await ocr_once(s, base, png)
                served.append(seconds)
                served_ocr.append(body.get("solve_ms", 0.0) / 1000)
    d, v = statistics.median(direct), statistics.median(served)
    rest = statistics.median(a - b for a, b in zip(served, served_ocr, strict=True))
    return {
        "direct_ms": d * 1000,
        "server_ms": v * 1000,
        "server_ocr_ms": statistics.median(served_ocr) * 1000,
        "server_rest_ms": rest * 1000,
        "ratio": v / d,
        "n": len(direct),
    }


async def main_async(args: argparse.Namespace) -> int:
    pngs = [(t, captcha_png(t)) for t in tokens(args.tasks)]
    with tempfile.TemporaryDirectory() as tmp:
        base, procs, redis_runner = start_stack(args, Path(tmp))
        try:
            async with aiohttp.ClientSession() as s:
                await wait_healthy(s, base)
            mode = f"redis + {args.workers} workers" if args.redis else f"{args.workers} local"
            print(
                f"server: {mode}, engines {args.engines}, {args.clients} clients, {args.protocol}"
            )
            sample = pngs[: args.overhead_images]
            ov = await overhead(base, sample, tuple(args.engines.split(",")), args.rounds)
            print(
                f"per-image (median of {ov['n']}): direct call {ov['direct_ms']:.1f} ms, "
                f"via server {ov['server_ms']:.1f} ms (OCR in worker {ov['server_ocr_ms']:.1f} ms"
                f" + HTTP/queue/IPC {ov['server_rest_ms']:.1f} ms), "
                f"ratio {ov['ratio']:.3f} (target <= 1.15)"
            )
            sequential = await load_test(
                base, pngs, argparse.Namespace(**{**vars(args), "clients": 1})
            )
            concurrent = await load_test(base, pngs, args)
            for name, r in (
                ("1 client (baseline)", sequential),
                (f"{args.clients} clients", concurrent),
            ):
                print(
                    f"{name:>22}: {r['tasks_per_s']:.2f} tasks/s, p50 {r['p50_ms']:.0f} ms, "
                    f"p99 {r['p99_ms']:.0f} ms, answered {r['answered']}/{r['tasks']}, "
                    f"lost {r['lost']}, correct {r['correct']}"
                )
            print(f"throughput ratio {args.clients} clients / 1 client: "
                  f"{concurrent['tasks_per_s'] / sequential['tasks_per_s']:.2f}")  # fmt: skip
            return 1 if sequential["lost"] or concurrent["lost"] else 0
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
            if redis_runner is not None:
                redis_runner.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (bounded)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", action="store_true", help="Redis queue + worker processes")
    parser.add_argument("--protocol", choices=("native", "v1"), default="native")
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--overhead-images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="passes of the overhead test")
    parser.add_argument("--deadline", type=float, default=300.0, help="per task, seconds")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
