"""Shared fixtures: the bundled demo shops (started once per session, and on spare ports)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator

# OpenMP's threads (FAISS's IVF training and searches in this process, torch's kernels) sleep
# when idle instead of spinning. Read once, when the OpenMP runtime loads: so set before any test
# module imports faiss or torch, and inherited by the crawls and servers the tests start.
# Spinning made a 3,200-offer store's IVF upgrade cost 5.6 CPU s (28.7 s wall at load 16)
# against 1.4 (7.7 s) passive: the waiting threads took the cores the work needed. Results are
# the same either way; only waiting changes. An explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from cumpair.demo.catalog import SHOP_HOSTS
from cumpair.demo.server import DEFAULT_PORT, DemoServer, DemoServerError


@pytest.fixture(scope="session")
def demo_server() -> Iterator[DemoServer]:
    """The four demo shops with the default catalog on port 8070, for the whole session.

    CUMPAIR_DEMO_PORT picks another port, so two test sessions can run side by side.
    """
    port = int(os.environ.get("CUMPAIR_DEMO_PORT", DEFAULT_PORT))
    server = DemoServer(port=port)
    try:
        server.start()
    except DemoServerError as exc:
        pytest.fail(f"demo shops cannot start: {exc}", pytrace=False)
    yield server
    server.stop()


def _free_port() -> int:
    """A port currently free on every shop address (the kernel picks it on the first one)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((SHOP_HOSTS["northwind"], 0))
            port = probe.getsockname()[1]
        if port == DEFAULT_PORT:
            continue
        try:
            for host in SHOP_HOSTS.values():
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on all demo shop addresses")


@pytest.fixture
def demo_server_factory() -> Iterator[Callable[..., DemoServer]]:
    """Start demo shops with misbehaviour options on a spare port; stopped after the test."""
    started: list[DemoServer] = []

    def start(**options: object) -> DemoServer:
        options.setdefault("port", _free_port())
        server = DemoServer(**options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def probes(monkeypatch) -> list[int]:
    """The nprobe of every IVF search FAISS is given (through `ivf.search_parameters`)."""
    from cumpair.index import ivf

    seen: list[int] = []
    made = ivf.search_parameters

    def spy(index, nprobe, selector=None):
        seen.append(nprobe)
        return made(index, nprobe, selector)

    monkeypatch.setattr(ivf, "search_parameters", spy)
    return seen
