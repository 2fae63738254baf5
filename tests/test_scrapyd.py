"""Scheduled crawls: deploy the project to a real scrapyd and see a scheduled crawl finish."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRAPYD_PORT = 6800  # the deploy target in scrapy.cfg


def _get(path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{SCRAPYD_PORT}{path}", timeout=10) as resp:
        return json.load(resp)


def _post(path: str, data: list[tuple[str, str]]) -> dict:
    body = urllib.parse.urlencode(data).encode()
    url = f"http://127.0.0.1:{SCRAPYD_PORT}{path}"
    with urllib.request.urlopen(url, data=body, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture
def scrapyd(tmp_path: Path):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", SCRAPYD_PORT)) == 0:
            pytest.fail(f"port {SCRAPYD_PORT} is taken: stop the scrapyd running there")
    (tmp_path / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {SCRAPYD_PORT}\n"
        "eggs_dir = eggs\nlogs_dir = logs\nitems_dir = items\ndbs_dir = dbs\n"
        "max_proc = 2\npoll_interval = 0.5\n"
    )
    log = (tmp_path / "scrapyd.out").open("w")
    proc = subprocess.Popen(
        [shutil.which("scrapyd") or "scrapyd"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get("/daemonstatus.json")["status"] == "ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("scrapyd did not start:\n" + (tmp_path / "scrapyd.out").read_text())
            time.sleep(0.3)
        yield tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


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
            ("setting", f"INDEX_DATA_DIR={tmp_path / 'data'}"),
        ],
    )
    assert job["status"] == "ok", job
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        jobs = _get("/listjobs.json?project=cumpair")
        if any(j["id"] == job["jobid"] for j in jobs["finished"]):
            break
        time.sleep(1)
    else:
        pytest.fail(f"scheduled crawl did not finish: {jobs}")

    feed = scrapyd / "items" / "cumpair" / "cornerstore" / f"{job['jobid']}.jl"
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    expected = demo_server.catalog.expected_items("cornerstore")
    assert len(items) == len(expected) > 0
    assert {item["url"] for item in items} == {
        demo_server.base_url("cornerstore") + offer.url_path for offer in expected
    }
