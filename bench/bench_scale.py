"""Benchmark crawling with several processes in Redis mode against one process, in one run.

On the four demo shops (nebula through its browser; served in this process on a spare port)
each configuration crawls all of them, every crawl process of a configuration running
`scrapy crawl <shop>` for each shop in turn, all started together (so they share each shop's
frontier while it lasts: a process that came to a shop after its crawl run ended would start a
new run of it). The baseline is today's single process without Redis, then 1, 2 and 3
processes in Redis mode (one frontier per shop, items handed to the stream). Pages, photos and
the hand-off are measured; specs and embedding are the indexer's, measured apart: `cumpair
indexer --no-ocr` over the stream the largest run left, its items/s being the ceiling the
crawlers feed. The shared host pace is off here (CRAWL_REDIS_HOST_INTERVAL=0: our own demo
server; a real crawl keeps it) so the figures show what the processes add, not the politeness
limit. Printed: items, seconds, items/s, and the ratio to the baseline. CPU-bound on a small
machine: on 2 cores more processes mostly share the same CPU (say so when quoting the figures).
Grouping cost per offer at 10^4 to 10^6 offers is `bench/bench_grouping.py`'s (a 10^6 store
takes half an hour to build).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from captcha_server.redis_runner import RedisRunner
from cumpair.demo.catalog import SHOP_HOSTS, SHOPS
from cumpair.demo.server import DemoServer

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((SHOP_HOSTS["northwind"], 0))
        return int(probe.getsockname()[1])


def crawl_commands(
    server: DemoServer, out: Path, name: str, shops: list[str], redis_url: str | None
) -> str:
    """One shell line: `scrapy crawl` of each shop in turn, as one crawl machine would."""
    lines = []
    for shop in shops:
        args = [
            sys.executable, "-m", "scrapy", "crawl", shop,
            "-a", f"base_url={server.base_url(shop)}",
            "-s", f"INDEX_DATA_DIR={out / 'data'}", "-s", f"LOG_FILE={out / f'{name}-{shop}.log'}",
            "-s", "SPECS_ENABLED=False", "-s", "INDEX_ENABLED=False",
            "-s", "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s", f"STATS_DUMP_FILE={out / f'{name}-{shop}.json'}",
        ]  # fmt: skip
        if redis_url:
            args += ["-s", f"CRAWL_REDIS_URL={redis_url}", "-s", "CRAWL_REDIS_HOST_INTERVAL=0"]
        lines.append(" ".join(f"'{a}'" for a in args))
    return " && ".join(lines)


def run_config(
    server: DemoServer, out: Path, processes: int, redis_url: str | None
) -> tuple[int, float]:
    """Items scraped and wall seconds of `processes` crawl processes over all shops."""
    out.mkdir(parents=True)
    started = time.monotonic()
    procs = []
    for n in range(processes):
        command = crawl_commands(server, out, f"p{n}", list(SHOPS), redis_url)
        procs.append(subprocess.Popen(["sh", "-c", command], cwd=ROOT))
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a crawl failed: see the logs in {out}")
    seconds = time.monotonic() - started
    items = sum(json.loads(p.read_text()).get("item_scraped_count", 0) for p in out.glob("p*.json"))
    return items, seconds


def indexer_ceiling(out: Path, redis_url: str) -> tuple[int, float]:
    """Items/s of `cumpair indexer --no-ocr` over the stream, model loading excluded."""
    client = redis.Redis.from_url(redis_url)
    backlog = client.xlen("cumpair:items")
    proc = subprocess.run(
        [sys.executable, "-m", "cumpair.cli", "indexer", "--index", str(out / "index"),
         "--images", str(out / "data" / "images"), "--redis", redis_url, "--no-ocr",
         "--exit-when-idle", "2"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    summary = proc.stdout.strip().splitlines()[-1]  # "indexed N offers in S s (...)"
    seconds = float(summary.split(" in ", 1)[1].split(" s", 1)[0])
    return backlog, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp,
        DemoServer(port=free_port()) as server,
    ):
        root = Path(tmp)
        base_items, base_s = run_config(server, root / "baseline", 1, None)
        print(f"baseline, 1 process, no Redis: {base_items} items in {base_s:.1f} s = "
              f"{base_items / base_s:.2f} items/s")  # fmt: skip
        for processes in args.processes:
            runner = RedisRunner(root / f"redis{processes}")
            runner.start()
            try:
                out = root / f"redis{processes}"
                items, seconds = run_config(server, out / "crawl", processes, runner.url)
                rate, ratio = items / seconds, items / seconds / (base_items / base_s)
                print(f"Redis mode, {processes} process(es): {items} items in {seconds:.1f} s = "
                      f"{rate:.2f} items/s ({ratio:.2f}x baseline)")  # fmt: skip
                if processes == max(args.processes):
                    backlog, index_s = indexer_ceiling(out / "crawl", runner.url)
                    print(f"indexer ceiling (--no-ocr): {backlog} items in {index_s:.1f} s = "
                          f"{backlog / index_s:.2f} items/s")  # fmt: skip
            finally:
                runner.stop()


if __name__ == "__main__":
    main()
