"""Redis mode: several crawl processes sharing one frontier and one host pace, one indexer.

Real components throughout: a private redis-server, the demo shops, `scrapy crawl` and
`cumpair indexer` as an operator runs them, and `kill -9` for the failures.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from scrapy import Request, Spider
from scrapy.settings import Settings

from captcha_server.redis_runner import RedisRunner
from cumpair.index import ProductStore
from cumpair.indexer.messages import MessageError, decode_item, encode_item
from cumpair.indexer.stream import ItemStream
from cumpair_scraper.frontier import TOKEN_META, ReliablePriorityQueue
from cumpair_scraper.redis_mode import HANDOFF, SHARED_THROTTLE, RedisMode

ROOT = Path(__file__).resolve().parents[1]
DROPPING_DEFECTS = {"missing_price", "bad_price"}


# -- fast: the message format and the add-on's settings ---------------------------------------


def test_item_message_round_trip_keeps_decimals_and_nesting():
    item = {"shop": "s", "url": "u", "price": Decimal("9.90"), "images": [{"path": "full/a.jpg"}]}
    assert decode_item(encode_item(item)) == item


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"shop": "s"}', b"\xff"])
def test_a_message_that_is_no_item_is_refused(text):
    with pytest.raises(MessageError):
        decode_item(text)


def project_settings() -> Settings:
    settings = Settings()
    settings.setmodule("cumpair_scraper.settings", priority="project")
    return settings


def test_redis_mode_swaps_the_scheduler_and_hands_items_to_the_indexer():
    settings = project_settings()
    RedisMode("redis://127.0.0.1:1/0").update_settings(settings)
    assert settings["SCHEDULER"] == "cumpair_scraper.frontier.ReliableScheduler"
    assert settings["DUPEFILTER_CLASS"] == "scrapy_redis.dupefilter.RFPDupeFilter"
    assert settings.getbool("SCHEDULER_PERSIST")
    pipelines = settings.getdict("ITEM_PIPELINES")
    assert pipelines[HANDOFF] == 400
    assert pipelines["cumpair_scraper.pipelines.index.IndexPipeline"] is None
    assert pipelines["cumpair_scraper.pipelines.specs.SpecsPipeline"] is None
    assert settings.getdict("DOWNLOADER_MIDDLEWARES")[SHARED_THROTTLE] == 950
    # the crawl stores no price: the indexer checks the watches once it has
    assert settings.getdict("EXTENSIONS")["cumpair_scraper.alerts.PriceAlerts"] is None


def test_redis_mode_refuses_jobdir():
    settings = project_settings()
    settings.set("JOBDIR", "/tmp/job")
    with pytest.raises(ValueError, match="JOBDIR"):
        RedisMode("redis://127.0.0.1:1/0").update_settings(settings)


# -- with a real Redis --------------------------------------------------------------------


@pytest.fixture
def redis_url(tmp_path):
    runner = RedisRunner(tmp_path / "redis")
    runner.start()
    yield runner.url
    runner.stop()


@pytest.mark.slow
@pytest.mark.integration
def test_unacknowledged_entries_come_back_first_and_bad_ones_are_kept_aside(redis_url):
    stream = ItemStream.from_url(redis_url, "t:items")
    stream.ensure_group()
    ids = [stream.add({"shop": "s", "url": f"u{i}"}, run="r1") for i in range(3)]
    stream.client.xadd("t:items", {"item": "{broken"})
    first = stream.read(2, 0.1)
    assert [e.id for e in first] == ids[:2]
    stream.indexed(first[0], 7)  # the second is in hand when the indexer dies
    assert stream.awaiting_regroup() == {7}  # offer 7 was stored, its regroup not done yet

    restarted = ItemStream.from_url(redis_url, "t:items")
    again = restarted.read(10, 0.1)
    assert [e.id for e in again] == [ids[1]]  # pending first
    rest = restarted.read(10, 0.1)
    assert [e.id for e in rest[:1]] == [ids[2]] and rest[1].item is None
    restarted.reject(rest[1], "not an item")
    assert restarted.client.xlen("t:items:dead") == 1
    # the same offer again in the same run was indexed already; in a new run it was not
    assert restarted.already_indexed(first[0])
    repeat = ItemStream.from_url(redis_url, "t:items")
    repeat.add({"shop": "s", "url": "u0"}, run="r2")
    assert not any(repeat.already_indexed(e) for e in repeat.read(10, 0.1) if e.run == "r2")


@pytest.mark.slow
@pytest.mark.integration
def test_requests_in_flight_of_a_crawler_without_heartbeat_go_back_to_the_queue(redis_url):
    class Shop(Spider):
        name = "shop"

    server = redis.Redis.from_url(redis_url)

    def queue(owner: str) -> ReliablePriorityQueue:
        q = ReliablePriorityQueue(server, Shop(), "f:%(spider)s:requests")
        q.owner, q.heartbeat_prefix = owner, "f:crawler:"
        return q

    server.set("f:crawler:alive", "1")
    alive, dead = queue("alive"), queue("dead")
    for n in range(3):
        alive.push(Request(f"http://shop.example/{n}"))
    lost, kept = dead.pop(), alive.pop()
    assert len(alive) == 1 and alive.in_flight() == 2
    assert alive.requeue_orphans() == 1  # "dead" keeps no heartbeat
    alive.ack([kept.meta[TOKEN_META]])
    assert alive.in_flight() == 0 and len(alive) == 2
    assert lost.url in {alive.pop().url, alive.pop().url}


def crawl_process(shop, server, redis_url, out: Path, name: str, *extra: str) -> subprocess.Popen:
    """`scrapy crawl <shop>` in Redis mode, as on one of several machines."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "scrapy", "crawl", shop,
            "-a", f"base_url={server.base_url(shop)}",
            "-O", str(out / f"{name}.jsonl"),
            "-s", f"CRAWL_REDIS_URL={redis_url}",
            "-s", "CRAWL_REDIS_LEASE_S=2",
            "-s", f"INDEX_DATA_DIR={out / 'data'}",
            "-s", f"LOG_FILE={out / f'{name}.log'}",
            "-s", "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s", f"STATS_DUMP_FILE={out / f'{name}.stats.json'}",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen, out: Path, name: str, timeout: float = 150) -> dict:
    _, stderr = proc.communicate(timeout=timeout)
    log = (out / f"{name}.log").read_text() if (out / f"{name}.log").exists() else ""
    assert proc.returncode == 0, stderr[-3000:] + log[-3000:]
    assert "Traceback" not in log, log[-5000:]
    return json.loads((out / f"{name}.stats.json").read_text())


def expected_urls(server, shop: str) -> list[str]:
    offers = server.catalog.offers_by_shop(shop)
    return sorted(
        server.base_url(shop) + o.url_path for o in offers if o.defect not in DROPPING_DEFECTS
    )


def feed_urls(out: Path, name: str) -> list[str]:
    return [json.loads(line)["url"] for line in (out / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.integration
def test_two_crawlers_share_the_frontier_the_host_pace_and_the_back_off(
    demo_server_factory, redis_url, tmp_path
):
    """Two processes crawl one shop: every offer once between them, robots.txt obeyed, the
    host never asked faster than the shared interval allows, a 429 holds both processes."""
    interval = 0.1
    server = demo_server_factory(rate_limit_every=40, retry_after=1)
    pace = ("-s", f"CRAWL_REDIS_HOST_INTERVAL={interval}")
    procs = {
        name: crawl_process("cornerstore", server, redis_url, tmp_path, name, *pace)
        for name in ("a", "b")
    }
    stats = {name: finish(proc, tmp_path, name) for name, proc in procs.items()}

    urls = feed_urls(tmp_path, "a") + feed_urls(tmp_path, "b")
    assert sorted(urls) == expected_urls(server, "cornerstore")  # each exactly once
    assert all(s["handoff/items"] > 0 for s in stats.values())  # both did part of it
    hits = [h for h in server.hits if h.shop == "cornerstore"]
    assert not [h for h in hits if h.path.startswith("/private/")]
    # The pace: turns are 1 / interval a second on Redis's clock; arrivals bunch by the jitter
    # of each process's event loop, so any 2 s may hold up to half as many again. Two processes
    # pacing themselves apart would reach twice the rate (40 in 2 s).
    times = sorted(h.at for h in hits)
    busiest = max(sum(1 for t in times[i:] if t < start + 2.0) for i, start in enumerate(times))
    assert busiest <= 1.5 * 2.0 / interval
    assert (len(times) - 1) / (times[-1] - times[0]) <= 1.1 / interval
    # The back-off: after each 429 (Retry-After: 1) neither process asks again within the second
    # (0.4 s of slack for the answer to reach the crawler and the hold to reach Redis).
    limited = [h.at for h in hits if h.status == 429]
    assert limited
    for t in limited:
        assert not [h for h in hits if t + 0.4 < h.at < t + 0.9], f"request during hold at {t}"
    assert sum(s.get("retry_after/honoured", 0) for s in stats.values()) == len(limited)
    # The crawl run is over: its queue is gone, its dupefilter expires before the next run.
    client = redis.Redis.from_url(redis_url)
    assert_run_ended(client, "cornerstore")
    assert client.xlen("cumpair:items") == len(urls)


def assert_run_ended(client: redis.Redis, shop: str) -> None:
    assert not client.exists(f"cumpair:{shop}:requests", f"cumpair:{shop}:requests:inflight")
    assert 0 < client.ttl(f"cumpair:{shop}:dupefilter") <= 3600


def indexer_process(redis_url, out: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cumpair.cli", "indexer", "--index", str(out / "data"),
         "--redis", redis_url, "--no-ocr"],
        cwd=ROOT,
        stdout=(out / f"{name}.out").open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def kill_while_holding_requests(proc: subprocess.Popen, client: redis.Redis, owners: str) -> None:
    """SIGKILL a crawler at a moment it holds requests in flight, so the requeue path is exercised.

    The crawler is stopped first (it can then neither finish nor acknowledge anything); with both
    crawlers of the shop owning entries, one of them is the stopped one. Otherwise it runs on a bit.
    """
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the crawler finished before it could be killed"
        os.kill(proc.pid, signal.SIGSTOP)
        holders = {value.split()[0] for value in client.hvals(owners)}
        if len(holders) >= 2 or time.monotonic() > deadline:
            break
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    assert len(holders) >= 2, "never caught both crawlers holding requests"
    os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.integration
def test_three_crawlers_and_an_indexer_killed_midway_lose_and_double_nothing(
    demo_server_factory, redis_url, tmp_path
):
    server = demo_server_factory()
    client = redis.Redis.from_url(redis_url)
    fast = ("-s", "CRAWL_REDIS_HOST_INTERVAL=0.05")
    indexer = indexer_process(redis_url, tmp_path, "indexer1")
    crawlers = {
        "a": crawl_process("northwind", server, redis_url, tmp_path, "a", *fast),
        "b": crawl_process("northwind", server, redis_url, tmp_path, "b", *fast),
        "c": crawl_process("cornerstore", server, redis_url, tmp_path, "c", *fast),
    }

    def handed_over() -> int:
        try:
            return int(client.xinfo_stream("cumpair:items")["entries-added"])
        except redis.ResponseError:  # no stream yet
            return 0

    def indexed() -> int:
        groups = client.xinfo_groups("cumpair:items") if handed_over() else []
        return int(groups[0]["entries-read"] or 0) if groups else 0

    wait_for(lambda: handed_over() >= 15, 120, "items handed over")
    kill_while_holding_requests(crawlers["a"], client, "cumpair:northwind:requests:owners")
    crawlers["a"].wait(timeout=30)
    crawlers["a2"] = crawl_process("northwind", server, redis_url, tmp_path, "a2", *fast)
    wait_for(lambda: indexed() >= 5, 120, "items indexed")
    os.kill(indexer.pid, signal.SIGKILL)
    indexer.wait(timeout=30)
    indexer = indexer_process(redis_url, tmp_path, "indexer2")
    stats = {name: finish(crawlers[name], tmp_path, name) for name in ("b", "c", "a2")}
    # the dead crawler's requests in flight came back to the queue
    assert stats["b"].get("frontier/requeued", 0) + stats["a2"].get("frontier/requeued", 0) > 0
    wait_for(lambda: client.xlen("cumpair:items") == 0, 120, "the indexer to catch up")
    indexer.send_signal(signal.SIGTERM)
    assert indexer.wait(timeout=60) == 0, (tmp_path / "indexer2.out").read_text()[-3000:]

    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        offers = store.get_offers(range(1, 10_000))
        by_shop = {
            shop: sorted(r.url for r in offers.values() if r.shop == shop)
            for shop in ("northwind", "cornerstore")
        }
        assert by_shop["northwind"] == expected_urls(server, "northwind")
        assert by_shop["cornerstore"] == expected_urls(server, "cornerstore")
        assert len(offers) == sum(len(urls) for urls in by_shop.values())
        # indexed once: one price point each, also for pages a dead crawler had in hand
        assert {len(store.price_history(i)) for i in offers} == {1}
    assert_run_ended(client, "northwind")
    assert_run_ended(client, "cornerstore")


@pytest.mark.slow
@pytest.mark.integration
def test_jobdir_resumes_a_single_process_crawl(demo_server_factory, tmp_path):
    """Without Redis, Scrapy's JOBDIR resumes a stopped crawl where it left off."""
    server = demo_server_factory()
    base = [
        sys.executable, "-m", "scrapy", "crawl", "cornerstore",
        "-a", f"base_url={server.base_url('cornerstore')}",
        "-s", f"JOBDIR={tmp_path / 'job'}",
        "-s", f"INDEX_DATA_DIR={tmp_path / 'data'}",
        "-s", "INDEX_ENABLED=False", "-s", "SPECS_ENABLED=False",
    ]  # fmt: skip
    runs = []
    for n, extra in enumerate((["-s", "CLOSESPIDER_ITEMCOUNT=15"], [])):
        feed = tmp_path / f"run{n}.jsonl"
        done = subprocess.run(
            [*base, *extra, "-O", str(feed), "-s", f"LOG_FILE={tmp_path / f'run{n}.log'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append([json.loads(line)["url"] for line in feed.read_text().splitlines()])
    assert 15 <= len(runs[0]) < len(expected_urls(server, "cornerstore"))
    assert "Resuming crawl" in (tmp_path / "run1.log").read_text()
    assert sorted(runs[0] + runs[1]) == expected_urls(server, "cornerstore")


def test_compose_runs_the_commands_tested_here():
    """docker-compose's crawl workers, indexer and serve run commands these tests run."""
    import yaml

    from cumpair.cli import build_parser

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("indexer", "serve"):
        command = services[name]["command"]
        assert command[0] == "cumpair"
        build_parser(command[1:]).parse_args(command[1:])  # exits on an unknown flag
    worker = services["crawl-worker"]["command"]
    assert worker[:2] == ["scrapy", "crawlall"]
    settings = dict(arg.split("=", 1) for flag, arg in itertools.pairwise(worker) if flag == "-s")
    assert settings["CRAWL_REDIS_URL"] == services["indexer"]["command"][-1]
    assert "CRAWL_REDIS_URL" in project_settings()
