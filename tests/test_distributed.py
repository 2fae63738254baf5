"""Redis mode: several crawl processes sharing one frontier and one host pace, one indexer.

Real components throughout: a private redis-server, the demo shops, `scrapy crawl` and
`cumpair indexer` as an operator runs them, and `kill -9` for the failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from scrapy import Request, Spider
from scrapy.http import HtmlResponse
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from captcha_server.redis_runner import RedisRunner
from cumpair.demo.catalog import SHOPS, build_catalog
from cumpair.index import ProductStore
from cumpair.index.records import StoreError
from cumpair.index.store.rows import OfferRows
from cumpair.indexer.messages import MessageError, decode_item, encode_item
from cumpair.indexer.stream import ItemStream
from cumpair_scraper.frontier import TOKEN_META, ReliablePriorityQueue
from cumpair_scraper.middlewares.challenge import ChallengeRules
from cumpair_scraper.middlewares.shared_throttle import SharedThrottleMiddleware
from cumpair_scraper.redis_mode import HANDOFF, SHARED_THROTTLE, RedisMode
from cumpair_scraper.shopconfig import bundled_configs_on_port
from tests.model_fixtures import with_installed_models

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
    # the shared throttle waits out a slot at its longest jitter: none, so the delay itself
    assert project_settings().getfloat("DOWNLOAD_DELAY_JITTER") > 0
    assert settings.getfloat("DOWNLOAD_DELAY_JITTER") == 0
    # the crawl stores no price: the indexer checks the watches once it has
    assert settings.getdict("EXTENSIONS")["cumpair_scraper.alerts.PriceAlerts"] is None


def test_redis_mode_refuses_jobdir():
    settings = project_settings()
    settings.set("JOBDIR", "/tmp/job")
    with pytest.raises(ValueError, match="JOBDIR"):
        RedisMode("redis://127.0.0.1:1/0").update_settings(settings)


def test_the_challenge_hold_posted_mark_lasts_one_answer():
    """The shared pace posts a challenge's hold itself and skips challenge.py's signal for it,
    but only for that answer: a middleware between them may send the request on again (a meta
    refresh on the challenge page copies its meta), and a later answer's back-off of the copy
    (here a captcha the crawler failed to solve) is a hold of its own."""
    project = project_settings()
    names = ["CRAWL_REDIS_PREFIX", "CRAWL_REDIS_HOST_INTERVAL", "CRAWL_REDIS_TURN_LOG"]
    names += ["RETRY_BACKOFF_HTTP_CODES", "RETRY_BACKOFF_BASE", "RETRY_AFTER_MAX"]
    settings = {
        **{name: project[name] for name in names},
        "CRAWL_REDIS_URL": "redis://127.0.0.1:1/0",
        "CAPTCHA_AUTHORIZED_HOSTS": ["shop.test"],
    }
    pace = SharedThrottleMiddleware(get_crawler(Spider, settings))
    holds = []

    async def hold(keys, args):
        holds.append((keys[0], args[0]))

    pace._hold = hold
    third_party = b'<html><body><div class="g-recaptcha"></div></body></html>'
    captcha = b'<html><body><form><img class="captcha" src="/c.png"></form></body></html>'
    first = Request("http://shop.test/p/1")
    wait = ChallengeRules.from_settings(pace.crawler.settings).backoff(first)

    async def answers():
        await pace.process_response(first, HtmlResponse(first.url, status=403, body=third_party))
        assert len(holds) == 1
        # sent on (a meta refresh) before challenge.py saw the page, so before its signal
        second = first.replace(url="http://shop.test/p/1?again")
        page = HtmlResponse(second.url, status=403, body=captcha)
        await pace.process_response(second, page)  # solved first: no hold yet
        await pace.host_backed_off(second, wait)  # the answer failed: back off

    asyncio.run(answers())
    assert holds == [("cumpair:host:shop.test", wait)] * 2


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


#: Turns kept per host in Redis (`shared_throttle.py`'s turn log), for the pace checks: more
#: than any test's crawl asks of one host.
TURN_LOG = 100_000
#: A request that reaches a host early in a hold (Retry-After, a challenge) may have been given
#: its turn before the hold was in Redis: while the answer asking for the hold went back to its
#: crawler, through its middlewares and one Redis round trip (a few ms on a quiet machine, room
#: here for a loaded one). Later in the hold no request of any crawler may reach the host.
BEFORE_THE_HOLD_S = 0.4


def scrapy_process(command: list[str], out: Path, name: str, *extra: str) -> subprocess.Popen:
    """`scrapy <command>` in Redis mode (the command names Redis and the data directory), as on
    one of several machines; its stats are written per spider to ``<name>.<spider>.stats.json``.
    A session of its own, so that what it started (a JavaScript shop's browser) ends with it."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "scrapy", *command,
            "-s", "CRAWL_REDIS_LEASE_S=2",
            "-s", f"CRAWL_REDIS_TURN_LOG={TURN_LOG}",
            "-s", f"LOG_FILE={out / f'{name}.log'}",
            "-s", "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s", f"STATS_DUMP_FILE={out / f'{name}.{{spider}}.stats.json'}",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def crawl_process(shop, server, redis_url, out: Path, name: str, *extra: str) -> subprocess.Popen:
    """`scrapy crawl <shop>` in Redis mode, its feed in ``<name>.jsonl``."""
    command = [
        "crawl", shop, "-a", f"base_url={server.base_url(shop)}", "-O", str(out / f"{name}.jsonl"),
        "-s", f"CRAWL_REDIS_URL={redis_url}", "-s", f"INDEX_DATA_DIR={out / 'data'}",
    ]  # fmt: skip
    return scrapy_process(command, out, name, *extra)


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
COMPOSE_REDIS = "redis://redis:6379/1"


def outside_docker(args: list[str], redis_url: str, out: Path) -> list[str]:
    """docker-compose arguments as run here: its Redis and catalog volume (/data) the test's."""
    return [a.replace(COMPOSE_REDIS, redis_url).replace("/data/", f"{out}/data/") for a in args]


def crawl_worker(configs: Path, redis_url, out: Path, name: str) -> subprocess.Popen:
    """docker-compose's crawl worker (`scrapy crawlall` of every shop in Redis mode), over the
    shop configs in `configs` (crawlall has no per-shop base_url), its feeds in ``<name>/``."""
    program, *command = outside_docker(COMPOSE["crawl-worker"]["command"], redis_url, out)
    assert program == "scrapy"
    command[command.index("--feeds-dir") + 1] = str(out / name)
    return scrapy_process(command, out, name, "-s", f"SHOP_CONFIG_DIRS={configs}")


def passes_health_check(service: str, redis_url: str, out: Path, *swap: tuple[str, str]) -> bool:
    """Whether a docker-compose service's health check, run here, says it is healthy."""
    kind, program, *args = COMPOSE[service]["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    args = outside_docker(args, redis_url, out)
    for old, new in swap:
        args = [a.replace(old, new) for a in args]
    return subprocess.run([sys.executable, *args], cwd=ROOT, timeout=60).returncode == 0


def finish(proc: subprocess.Popen, out: Path, name: str, timeout: float = 150) -> dict[str, dict]:
    """Wait for a crawl process to succeed; its stats by spider."""
    _, stderr = proc.communicate(timeout=timeout)
    log = (out / f"{name}.log").read_text() if (out / f"{name}.log").exists() else ""
    assert proc.returncode == 0, stderr[-3000:] + log[-3000:]
    # an error, not a warning: a JavaScript page's navigation timeout is logged with its
    # traceback, then retried
    assert "] ERROR: " not in log, log[-5000:]
    return {
        path.name.split(".")[1]: json.loads(path.read_text())
        for path in out.glob(f"{name}.*.stats.json")
    }


#: For tests where no crawler dies: a loaded machine can stall a crawler's heartbeat past the
#: 2 s lease, and the other then crawls its requests again (feeds would hold them twice).
LONG_LEASE = ("-s", "CRAWL_REDIS_LEASE_S=30")


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
    pace = ("-s", f"CRAWL_REDIS_HOST_INTERVAL={interval}", *LONG_LEASE)
    procs = {
        name: crawl_process("cornerstore", server, redis_url, tmp_path, name, *pace)
        for name in ("a", "b")
    }
    stats = {name: finish(proc, tmp_path, name)["cornerstore"] for name, proc in procs.items()}

    urls = feed_urls(tmp_path, "a") + feed_urls(tmp_path, "b")
    assert sorted(urls) == expected_urls(server, "cornerstore")  # each exactly once
    assert all(s["handoff/items"] > 0 for s in stats.values())  # both did part of it
    hits = [h for h in server.hits if h.shop == "cornerstore"]
    assert not [h for h in hits if h.path.startswith("/private/")]
    client = redis.Redis.from_url(redis_url)
    # every request the shop saw left on a turn of the shared pace, 0.1 s apart on Redis's
    # clock, and (a plain HTTP shop) reached it when it left: 20 a second by its own clock too
    assert len(assert_turns_paced(client, server, "cornerstore", interval)) == len(hits)
    assert_paced(hits, interval)
    # The back-off: after each 429 (Retry-After: 1) neither process asks again within the second.
    limited = [h.at for h in hits if h.status == 429]
    assert limited
    assert_no_turn_in_a_hold(client, server, "cornerstore")
    assert_held(hits, limited, 1.0)
    assert sum(s.get("retry_after/honoured", 0) for s in stats.values()) == len(limited)
    # The crawl run is over: its queue is gone, its dupefilter expires before the next run.
    assert_run_ended(client, "cornerstore")
    assert client.xlen("cumpair:items") == len(urls)


@pytest.mark.slow
@pytest.mark.integration
def test_a_challenge_page_one_crawler_sees_is_held_in_redis_for_both(
    demo_server_factory, redis_url, tmp_path
):
    """Every product page of the shop challenges its first request (403, a captcha we may not
    solve): each back-off, by whichever process saw it, is posted as a hold of the host in
    Redis, and both crawlers together still crawl every page once."""
    server = demo_server_factory(
        catalog=build_catalog(n_products=16), challenge="first", challenge_shops=("northwind",)
    )
    # two requests at a time each: one process would otherwise take the small shop's every
    # page into its downloader while the other finds the queue empty
    backoff = ("-s", "CHALLENGE_BACKOFF_BASE=1.0", "-s", "CONCURRENT_REQUESTS=2", *LONG_LEASE)
    procs = {
        name: crawl_process("northwind", server, redis_url, tmp_path, name, *backoff)
        for name in ("a", "b")
    }
    stats = {name: finish(proc, tmp_path, name, 300)["northwind"] for name, proc in procs.items()}

    urls = feed_urls(tmp_path, "a") + feed_urls(tmp_path, "b")
    assert sorted(urls) == expected_urls(server, "northwind")
    hits = [h for h in server.hits if h.shop == "northwind"]
    challenged = [h.at for h in hits if h.status == 403]
    pages = len(server.catalog.offers_by_shop("northwind"))  # each challenged once
    seen = [s.get("challenge/backoff", 0) for s in stats.values()]
    assert len(challenged) == pages == sum(seen) and min(seen) > 0  # both were challenged
    # every challenge holds the host in Redis for both crawlers, posted before the challenged
    # request lets another of its crawler take a turn, and no request of either reaches the shop
    # in the hold's second (CHALLENGE_BACKOFF_BASE; each page is challenged once)
    assert sum(s.get("shared_throttle/holds", 0) for s in stats.values()) == pages
    assert_no_turn_in_a_hold(redis.Redis.from_url(redis_url), server, "northwind")
    assert_held(hits, challenged, 1.0)


def assert_held(hits: list, starts: list[float], hold: float) -> None:
    """No request reached the host in a hold of `hold` seconds that each answer at `starts`
    asked for, once BEFORE_THE_HOLD_S had passed (the hold itself starts later, once in Redis).
    """
    for t in starts:
        early = [h for h in hits if t + BEFORE_THE_HOLD_S < h.at < t + hold]
        assert not early, f"{early[0]} came {early[0].at - t:.2f} s into the hold at {t:.2f}"


def assert_no_turn_in_a_hold(client: redis.Redis, server, shop: str) -> None:
    """No request left on a turn inside a hold, from its posting in Redis to its end (both
    logs on the Redis server's clock): exact, where the arrivals at the shop need slack."""
    host = urlsplit(server.base_url(shop)).hostname
    holds = [
        tuple(map(float, h.split())) for h in client.lrange(f"cumpair:host:{host}:holds", 0, -1)
    ]
    assert holds, shop
    turns = [float(t) for t in client.lrange(f"cumpair:host:{host}:turns", 0, -1)]
    inside = [(t, start, end) for start, end in holds for t in turns if start < t < end]
    assert not inside, (shop, inside[:3])


def assert_turns_paced(client: redis.Redis, server, shop: str, interval: float) -> list[float]:
    """The turns the shared pace gave the shop's requests (its turn log in Redis, on the Redis
    server's clock) were `interval` apart, all crawlers together; the turns, in order."""
    host = urlsplit(server.base_url(shop)).hostname
    turns = sorted(float(t) for t in client.lrange(f"cumpair:host:{host}:turns", 0, -1))
    assert turns, shop
    assert len(turns) < TURN_LOG, shop  # none dropped from the log
    # Lua writes the times with 14 digits: 0.1 ms at today's epoch seconds
    closest = min((b - a for a, b in itertools.pairwise(turns)), default=interval)
    assert closest >= interval - 1e-3, (shop, closest)
    return turns


def assert_paced(hits: list, interval: float) -> None:
    """One host's requests reached it at most 1 / interval a second, all crawlers together.

    Turns are 1 / interval a second on Redis's clock (`assert_turns_paced`); a plain HTTP
    request reaches the host when it leaves on its turn, but arrivals bunch by the jitter of
    each process's event loop, so any 2 s may hold up to half as many again. Not for a browser
    shop: its page requests reach the host when the browser navigates, up to seconds after the
    turn.
    """
    times = sorted(h.at for h in hits)
    busiest = max(sum(1 for t in times[i:] if t < start + 2.0) for i, start in enumerate(times))
    assert busiest <= 1.5 * 2.0 / interval, (hits[0].shop, busiest)
    assert (len(times) - 1) / (times[-1] - times[0]) <= 1.1 / interval, hits[0].shop


def assert_run_ended(client: redis.Redis, shop: str) -> None:
    assert not client.exists(f"cumpair:{shop}:requests", f"cumpair:{shop}:requests:inflight")
    assert 0 < client.ttl(f"cumpair:{shop}:dupefilter") <= 3600


def indexer_process(redis_url, out: Path, name: str) -> subprocess.Popen:
    """docker-compose's indexer, without OCR (time), its output in ``<name>.out``."""
    program, *command = outside_docker(COMPOSE["indexer"]["command"], redis_url, out)
    assert program == "cumpair"
    with_installed_models(command[command.index("--index") + 1])
    return subprocess.Popen(
        [sys.executable, "-m", "cumpair.cli", *command, "--no-ocr"],
        cwd=ROOT,
        stdout=(out / f"{name}.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """The crawl and indexer processes a test starts: whatever is left of them (a killed
    crawler's browser, a failed test's processes) is killed at its end."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def kill_while_holding_requests(proc: subprocess.Popen, client: redis.Redis, log: Path) -> None:
    """SIGKILL a crawler at a moment it holds requests in flight, so the requeue path is exercised.

    The crawler is stopped first (it can then neither finish nor acknowledge anything) and killed
    once one of the frontier ids it logged (one per shop) owns an in-flight entry of its shop.
    Otherwise it runs on a bit.
    """
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "the crawler finished before it could be killed"
        os.kill(proc.pid, signal.SIGSTOP)
        mine = set(re.findall(r"this crawler (\w+)", log.read_text()))
        owners = (client.hvals(f"cumpair:{shop}:requests:owners") for shop in SHOPS)
        holding = {value.split()[0].decode() for values in owners for value in values} & mine
        if holding or time.monotonic() > deadline:
            break
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    assert holding, "never caught the crawler holding requests"
    os.kill(proc.pid, signal.SIGKILL)


#: The JavaScript shops: their browser asks for scripts and data while it renders a page it
#: was given its turn for (subrequests the pace, a Scrapy downloader middleware, never sees),
#: and the page's own request reaches the shop when the browser gets to it.
BROWSER_SHOPS = {"nebula"}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_three_crawlers_and_an_indexer_killed_midway_lose_and_double_nothing(
    demo_server_factory, redis_url, tmp_path, processes
):
    """Three crawl workers (`scrapy crawlall`, as docker-compose runs them) and one indexer
    crawl the four demo shops, the JavaScript one through its browser. One worker is killed -9
    while it holds requests, the indexer while it holds entries, both are restarted: every offer
    of every shop lands once, no worker asked for a robots.txt-disallowed page, and each host
    was paced for all workers together."""
    server = demo_server_factory()
    configs = bundled_configs_on_port(tmp_path / "shops", server.port)
    for shop in SHOPS:  # every demo shop crawled on the test's server, none on the default port
        assert f":{server.port}/" in (configs / f"{shop}.toml").read_text(), shop
    client = redis.Redis.from_url(redis_url)
    interval = project_settings().getfloat("CRAWL_REDIS_HOST_INTERVAL")  # the default pace

    def start(proc: subprocess.Popen) -> subprocess.Popen:
        processes.append(proc)
        return proc

    indexer = start(indexer_process(redis_url, tmp_path, "indexer1"))
    workers = {name: start(crawl_worker(configs, redis_url, tmp_path, name)) for name in "abc"}

    def handed_over() -> int:
        try:
            return int(client.xinfo_stream("cumpair:items")["entries-added"])
        except redis.ResponseError:  # no stream yet
            return 0

    def delivered() -> int:
        groups = client.xinfo_groups("cumpair:items") if handed_over() else []
        return int(groups[0]["entries-read"] or 0) if groups else 0

    def stored() -> int:
        try:
            with OfferRows.open(tmp_path / "data" / "index") as rows:
                return len(rows.get_offers(range(1, 10_000)))
        except StoreError:  # not created yet
            return 0

    def holding() -> bool:
        """The indexer stored some offers and holds entries it has not stored (by the store,
        not by its acknowledgements: one sent before the upsert returned would lose them)."""
        done = stored()
        return done >= 5 and delivered() > done

    wait_for(lambda: handed_over() >= 30, 600, "items handed over")
    kill_while_holding_requests(workers["a"], client, tmp_path / "a.log")
    workers["a"].wait(timeout=30)
    workers["a2"] = start(crawl_worker(configs, redis_url, tmp_path, "a2"))
    wait_for(holding, 600, "the indexer to store some, hold others")
    os.kill(indexer.pid, signal.SIGKILL)
    indexer.wait(timeout=30)
    indexer = start(indexer_process(redis_url, tmp_path, "indexer2"))
    wait_for(lambda: passes_health_check("indexer", redis_url, tmp_path), 300, "indexer health")
    assert passes_health_check("crawl-worker", redis_url, tmp_path)
    stats = {name: finish(workers[name], tmp_path, name, 900) for name in ("b", "c", "a2")}
    # the dead worker's requests in flight came back to the queue
    assert sum(s.get("frontier/requeued", 0) for run in stats.values() for s in run.values())
    wait_for(lambda: client.xlen("cumpair:items") == 0, 900, "the indexer to catch up")
    indexer.send_signal(signal.SIGTERM)
    assert indexer.wait(timeout=120) == 0, (tmp_path / "indexer2.out").read_text()[-3000:]

    with ProductStore.open(tmp_path / "data" / "index", readonly=True) as store:
        offers = store.get_offers(range(1, 10_000))
        for shop in SHOPS:
            urls = sorted(r.url for r in offers.values() if r.shop == shop)
            assert urls == expected_urls(server, shop), shop
        assert len(offers) == sum(len(expected_urls(server, shop)) for shop in SHOPS)
        # indexed once: one price point each, also for pages a dead worker had in hand
        assert {len(store.price_history(i)) for i in offers} == {1}
    hits = server.hits
    assert {h.shop for h in hits} == set(SHOPS)
    assert not [h for h in hits if h.path.startswith("/private/")]
    for shop in SHOPS:
        # every host's turns were paced on Redis's clock; arrivals are the pace for the HTTP
        # shops, not for the JavaScript one (its browser's navigation latency bunches them: 31
        # page requests in 2 s on a loaded machine, where 30 is the pace's most)
        assert_turns_paced(client, server, shop, interval)
        if shop not in BROWSER_SHOPS:
            assert_paced([h for h in hits if h.shop == shop], interval)
        assert_run_ended(client, shop)
    # docker-compose's search page over that store, healthy by its own check
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    _, *command = outside_docker(COMPOSE["serve"]["command"], redis_url, tmp_path)
    command = [{"0.0.0.0": "127.0.0.1", "8080": port}.get(a, a) for a in command]
    serve = start(
        subprocess.Popen([sys.executable, "-m", "cumpair.cli", *command], cwd=ROOT,
                         stdout=(tmp_path / "serve.out").open("w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    )  # fmt: skip
    swap = (":8080/", f":{port}/")
    wait_for(lambda: passes_health_check("serve", redis_url, tmp_path, swap), 300, "serve health")
    serve.terminate()


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
    """docker-compose's crawl workers, indexer and serve take flags that exist (the slow test
    above runs them and their health checks)."""
    from cumpair.cli import build_parser

    for name in ("indexer", "serve"):
        command = COMPOSE[name]["command"]
        assert command[0] == "cumpair"
        build_parser(command[1:]).parse_args(command[1:])  # exits on an unknown flag
    worker = COMPOSE["crawl-worker"]["command"]
    assert worker[:2] == ["scrapy", "crawlall"]
    settings = dict(arg.split("=", 1) for flag, arg in itertools.pairwise(worker) if flag == "-s")
    assert settings["CRAWL_REDIS_URL"] == COMPOSE["indexer"]["command"][-1] == COMPOSE_REDIS
    assert "CRAWL_REDIS_URL" in project_settings()
