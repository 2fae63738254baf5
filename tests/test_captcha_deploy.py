"""docker-compose.yml runs the same commands the tests run (no Docker engine here): the compose
file is checked against them, and its server/worker commands are run as written outside Docker."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import yaml

from captcha_server.redis_runner import PERSISTENCE_ARGS, RedisRunner, free_port
from tests.captcha_fixtures import ENGINES, KEY, ROOT, _env, stop, wait_http

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_runs_redis_with_the_persistence_the_queue_relies_on():
    assert SERVICES["redis"]["command"] == ["redis-server", *PERSISTENCE_ARGS]
    assert any(v.endswith(":/data") for v in SERVICES["redis"]["volumes"])


def test_every_compose_service_has_a_health_check():
    assert {"redis", "captcha-server", "captcha-worker", "scrapyd"} <= set(SERVICES)
    assert all("healthcheck" in service for service in SERVICES.values())
    assert SERVICES["captcha-worker"]["deploy"]["replicas"] >= 2


def test_compose_server_requires_keys_and_listens_on_9001():
    server = SERVICES["captcha-server"]
    assert server["environment"]["CAPTCHA_API_KEYS"].startswith("${CAPTCHA_API_KEYS:?")
    assert server["command"][:3] == ["python", "-m", "captcha_server"]
    assert "127.0.0.1:9001:9001" in server["ports"]


def _outside_docker(command: list[str], redis_url: str, port: int | None = None) -> list[str]:
    """The compose command with the compose-network addresses swapped for local ones."""
    args = [sys.executable if a == "python" else a for a in command]
    args = [redis_url if a == "redis://redis:6379/0" else a for a in args]
    if port is not None:
        args = ["127.0.0.1" if a == "0.0.0.0" else a for a in args]
        args[args.index("--port") + 1] = str(port)
    return args


@pytest.mark.slow
@pytest.mark.integration
def test_compose_commands_serve_and_pass_their_health_checks_outside_docker(tmp_path):
    port = free_port()
    env = {**_env(), "CAPTCHA_API_KEYS": KEY}
    with RedisRunner(tmp_path / "redis") as redis_server:
        worker_cmd = SERVICES["captcha-worker"]["command"]
        check = _outside_docker(
            SERVICES["captcha-worker"]["healthcheck"]["test"][1:], redis_server.url
        )
        assert subprocess.run(check, cwd=ROOT, env=env, timeout=60).returncode == 1  # no worker yet
        worker = subprocess.Popen(
            [*_outside_docker(worker_cmd, redis_server.url), *ENGINES], cwd=ROOT, env=env,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server_cmd = _outside_docker(SERVICES["captcha-server"]["command"], redis_server.url, port)
        server = subprocess.Popen(
            [*server_cmd, *ENGINES], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health", server)
            assert (
                requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["workers_alive"]
                == 1
            )
            assert subprocess.run(check, cwd=ROOT, env=env, timeout=60).returncode == 0
        finally:
            stop(server)
            stop(worker)
