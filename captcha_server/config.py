"""Server options in one typed record, each with the documented default.

`python -m captcha_server` and the Redis worker build it from the command line; tests build it
directly. Nothing else reads environment variables or constants.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9001
KEY_PATTERN = re.compile(r"^[A-Za-z0-9]{32}$")
"""2captcha keys are 32 alphanumerics; anything else is ERROR_WRONG_USER_KEY, as upstream."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Upload limits. 2captcha documents 100 bytes minimum and 100 kB maximum for v1 images.

    `body_timeout_s`: a request body not fully received this long after the handler starts
    reading it is cut (answered ERROR_UPLOAD); `max_uploads`: bodies read at the same time, a
    request beyond that is refused at once (ERROR_NO_SLOT_AVAILABLE) rather than held open.
    """

    min_bytes: int = 100
    max_bytes: int = 100 * 1024
    max_pixels: int = 4_000_000
    max_side: int = 4096
    body_timeout_s: float = 15.0
    max_uploads: int = 64

    def __post_init__(self) -> None:
        if not self.body_timeout_s > 0:
            raise ValueError("--body-timeout must be positive")
        if self.max_uploads < 1:
            raise ValueError("--max-uploads must be at least 1")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """How long things live and how hard the queue tries.

    `visibility_timeout_s`: a claimed task whose worker went silent this long is handed to another
    worker; after `max_attempts` claims it ends as ERROR_CAPTCHA_UNSOLVABLE.
    """

    task_ttl_s: int = 600
    result_ttl_s: int = 900
    visibility_timeout_s: float = 30.0
    max_attempts: int = 3
    max_pending: int = 1000
    solve_timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_keys: frozenset[str] = frozenset()
    admin_keys: frozenset[str] = frozenset()
    """Keys whose `/stats` shows the server's global counters (others see their own)."""
    no_auth: bool = False
    workers: int = 2
    redis_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    rate_per_s: float = 20.0
    rate_burst: int = 60
    sync_timeout_s: float = 30.0
    balance: float = 1000.0
    engines: tuple[str, ...] | None = None
    limits: Limits = field(default_factory=Limits)
    queue: QueueSettings = field(default_factory=QueueSettings)

    def __post_init__(self) -> None:
        bad = sorted(k for k in self.api_keys | self.admin_keys if not KEY_PATTERN.match(k))
        if bad:
            raise ValueError(
                f"{len(bad)} API key(s) are not 32 letters/digits as 2captcha clients expect"
            )
        if not self.api_keys and not self.no_auth:
            raise ValueError(
                "no API key configured: set CAPTCHA_API_KEYS, --keys-file or --no-auth"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")


def load_keys(
    env: str | None = None, keys_file: Path | None = None, variable: str = "CAPTCHA_API_KEYS"
) -> frozenset[str]:
    """Keys from a comma-separated string (default: the environment variable `variable`) and/or
    a file, one per line.

    Blank lines and `#` comments in the file are ignored.
    """
    keys: set[str] = set()
    if env is None:
        env = os.environ.get(variable, "")
    keys.update(k.strip() for k in env.split(",") if k.strip())
    if keys_file is not None:
        for line in keys_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.add(line)
    return frozenset(keys)


def parse_engines(text: str) -> tuple[str, ...]:
    """`tesseract,rapidocr` -> ("tesseract", "rapidocr") for --engines."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("name at least one OCR engine")
    return names
