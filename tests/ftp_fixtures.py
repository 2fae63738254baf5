"""A real FTP server for tests of photos stored on FTP (pyftpdlib, in a thread, on a free port)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from captcha_server.redis_runner import free_port

USER, PASSWORD = "crawler", "secret"


@contextmanager
def ftp_server(root: Path) -> Iterator[int]:
    """Serve `root` to USER/PASSWORD on 127.0.0.1; yields the port. Skips without pyftpdlib."""
    authorizers = pytest.importorskip("pyftpdlib.authorizers")
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    root.mkdir(parents=True, exist_ok=True)
    authorizer = authorizers.DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.address[1]
    finally:
        server.close_all()
        thread.join(timeout=10)
