"""Politeness: robots.txt is obeyed even by a greedy config, and 429s back the host off."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cumpair_scraper.middlewares.retry_after import retry_after_seconds
from tests.model_fixtures import with_installed_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(b"3", 3.0), ("120", 120.0), (None, None), (b"soon", None), (b"", None)],
)
def test_retry_after_delta_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_http_date_is_relative_to_now():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(later, now=now) == 90.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0


def crawl(shop: str, tmp_path: Path, *args: str) -> tuple[list[dict], dict]:
    """Run `scrapy crawl` as an operator would; return the items and the final stats."""
    feed, stats_file = tmp_path / "items.jsonl", tmp_path / "stats.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            shop,
            "-O",
            str(feed),
            "-s",
            f"INDEX_DATA_DIR={with_installed_models(tmp_path / 'data')}",
            "-s",
            f"LOG_FILE={tmp_path / 'log'}",
            "-s",
            "STATS_CLASS=tests.stats_dump.JsonDumpStatsCollector",
            "-s",
            f"STATS_DUMP_FILE={stats_file}",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + (tmp_path / "log").read_text()[-3000:]
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    return items, json.loads(stats_file.read_text())


@pytest.mark.integration
def test_greedy_config_is_stopped_by_robots_txt(demo_server, tmp_path):
    """A config that follows every link still never fetches what robots.txt disallows."""
    configs = tmp_path / "shops"
    configs.mkdir()
    (configs / "greedy.toml").write_text(
        f'name = "greedy"\nstart_urls = ["{demo_server.base_url("cornerstore")}/"]\n'
        '[links]\ncategory = "a"\nproduct = "div.item h3 a"\n'
        '[fields]\ntitle = "h1.prod-title::text"\nprice = "span.prod-price::text"\n'
    )
    demo_server.reset_hits()
    items, stats = crawl("greedy", tmp_path, "-s", f"SHOP_CONFIG_DIRS={configs}")
    assert stats["robotstxt/forbidden"] > 0  # it tried, the middleware refused
    assert not [hit for hit in demo_server.hits if hit.path.startswith("/private/")]
    assert len(items) == len(demo_server.catalog.valid_offers("cornerstore")) + sum(
        1 for o in demo_server.catalog.offers_by_shop("cornerstore") if o.defect == "bad_gtin"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_429_with_retry_after_backs_the_host_off_and_loses_nothing(demo_server_factory, tmp_path):
    server = demo_server_factory(rate_limit_every=25, retry_after=1)
    started = time.monotonic()
    items, stats = crawl(
        "cornerstore", tmp_path, "-a", f"base_url={server.base_url('cornerstore')}"
    )
    elapsed = time.monotonic() - started
    rate_limited = [hit for hit in server.hits if hit.status == 429]
    assert rate_limited
    assert stats["retry_after/honoured"] == len(rate_limited)
    assert stats["retry_after/max_delay"] == 1.0
    # every 429 holds the host for the Retry-After second before its next request
    assert elapsed >= len(rate_limited) * 1.0
    expected = [
        o
        for o in server.catalog.offers_by_shop("cornerstore")
        if o.defect not in {"missing_price", "bad_price"}
    ]
    assert sorted(i["url"] for i in items) == sorted(
        server.base_url("cornerstore") + o.url_path for o in expected
    )
