"""Scheduled crawls: deploy the project to a real scrapyd and see a scheduled crawl finish."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from captcha_server.redis_runner import free_port
from cumpair.indexer.spool import OfferSpool
from tests.model_fixtures import with_installed_models

ROOT = Path(__file__).resolve().parents[1]
SCRAPYD_PORT = 6800  # the deploy target in scrapy.cfg


def _get(path: str, port: int = SCRAPYD_PORT) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.load(resp)


def _post(path: str, data: list[tuple[str, str]], port: int = SCRAPYD_PORT) -> dict:
    body = urllib.parse.urlencode(data).encode()
    url = f"http://127.0.0.1:{port}{path}"
    with urllib.request.urlopen(url, data=body, timeout=10) as resp:
        return json.load(resp)


@contextmanager
def running_scrapyd(directory: Path, port: int) -> Iterator[Path]:
    """A real scrapyd on `port` with its eggs, logs and item feeds under `directory`, running
    two jobs at once (the shipped matcher model read from inside the deployed egg)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.fail(f"port {port} is taken: stop the scrapyd running there")
    (directory / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {port}\n"
        "eggs_dir = eggs\nlogs_dir = logs\nitems_dir = items\ndbs_dir = dbs\n"
        "max_proc = 2\npoll_interval = 0.5\n"
    )
    log = (directory / "scrapyd.out").open("w")
    proc = subprocess.Popen(
        [shutil.which("scrapyd") or "scrapyd"],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CUMPAIR_MATCHER_MODEL"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get("/daemonstatus.json", port)["status"] == "ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("scrapyd did not start:\n" + (directory / "scrapyd.out").read_text())
            time.sleep(0.3)
        yield directory
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def scrapyd(tmp_path: Path):
    """scrapyd on the port of scrapy.cfg's deploy target, so `scrapyd-deploy local` reaches it."""
    with running_scrapyd(tmp_path, SCRAPYD_PORT) as directory:
        yield directory


def wait_finished(jobs: list[str], port: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = _get("/listjobs.json?project=cumpair", port)
        if set(jobs) <= {j["id"] for j in listed["finished"]}:
            return
        time.sleep(1)
    pytest.fail(f"scheduled crawls did not finish: {listed}")


@pytest.mark.slow
@pytest.mark.integration
def test_scrapyd_deploys_and_runs_a_scheduled_demo_crawl(demo_server, scrapyd, tmp_path):
    deploy = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapyd_client.deploy",
            "local",
            "-p",
            "cumpair",
            "--version",
            "test1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "cornerstore" in _get("/listspiders.json?project=cumpair")["spiders"]

    job = _post(
        "/schedule.json",
        [
            ("project", "cumpair"),
            ("spider", "cornerstore"),
            ("base_url", demo_server.base_url("cornerstore")),  # CUMPAIR_DEMO_PORT may move it
            ("setting", f"INDEX_DATA_DIR={with_installed_models(tmp_path / 'data')}"),
        ],
    )
    assert job["status"] == "ok", job
    wait_finished([job["jobid"]], SCRAPYD_PORT, timeout=600)  # OCR on: minutes on 2 busy cores

    feed = scrapyd / "items" / "cumpair" / "cornerstore" / f"{job['jobid']}.jl"
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    expected = demo_server.catalog.expected_items("cornerstore")
    assert len(items) == len(expected) > 0
    assert {item["url"] for item in items} == {
        demo_server.base_url("cornerstore") + offer.url_path for offer in expected
    }


@pytest.mark.slow
@pytest.mark.integration
def test_two_scheduled_crawls_of_different_shops_on_one_store_both_index_everything(
    demo_server_factory, tmp_path
):
    """Two scrapyd jobs share one INDEX_DATA_DIR: the one that finds the store held spools its
    offers, the holder drains them, and every offer of both shops ends up indexed once."""
    from cumpair.index import ProductStore

    server = demo_server_factory()
    port = free_port()
    egg = tmp_path / "cumpair.egg"
    build = subprocess.run(
        [sys.executable, "-m", "scrapyd_client.deploy", "--build-egg", str(egg)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    data = with_installed_models(tmp_path / "data")
    shops = ("northwind", "cornerstore")
    with running_scrapyd(tmp_path, port):
        with egg.open("rb") as body:
            added = requests.post(
                f"http://127.0.0.1:{port}/addversion.json",
                data={"project": "cumpair", "version": "turns1"},
                files={"egg": body},
                timeout=60,
            ).json()
        assert added["status"] == "ok", added
        settings = [f"INDEX_DATA_DIR={data}", "SPECS_ENABLED=False", "INDEX_SPOOL_RETRY_S=1",
                    "INDEX_SPOOL_DRAIN_S=1", "CUMPAIR_INDEX_LOCK_TIMEOUT_S=0"]  # fmt: skip
        jobs = {
            shop: _post(
                "/schedule.json",
                [("project", "cumpair"), ("spider", shop),
                 ("base_url", server.base_url(shop)),
                 *(("setting", value) for value in settings)],
                port,
            )["jobid"]
            for shop in shops
        }  # fmt: skip
        wait_finished(list(jobs.values()), port, timeout=600)
        logs = {shop: (tmp_path / "logs" / "cumpair" / shop / f"{job}.log").read_text()
                for shop, job in jobs.items()}  # fmt: skip
    for log in logs.values():
        assert "StoreLockedError" not in log and "Traceback" not in log, log[-4000:]
        assert "'finish_reason': 'finished'" in log, log[-4000:]
    # the two crawls overlapped: one of them spooled while the other held the store
    tails = [log[-3000:] for log in logs.values()]
    assert any("'index/spooled'" in log for log in logs.values()), tails
    with ProductStore.open(data, readonly=True) as store:
        offers = store.get_offers(range(1, 10_000)).values()
        for shop in shops:
            expected = {server.base_url(shop) + o.url_path
                        for o in server.catalog.expected_items(shop)}  # fmt: skip
            assert sorted(r.url for r in offers if r.shop == shop) == sorted(expected)
        assert {len(store.price_history(r.id)) for r in offers} == {1}  # each indexed once
    assert OfferSpool(data / "spool" / "offers.sqlite").count() == 0
