"""Request bodies are read under a deadline and a bound on how many are read at once.

aiohttp waits for a body as long as the client takes to send it, so clients that send half a
body would each hold a connection (and a parser) forever. Every handler reads its body through
`BodyGate.read`: beyond `Limits.max_uploads` bodies in flight a request is refused at once
(ERROR_NO_SLOT_AVAILABLE), and a body not complete within `Limits.body_timeout_s` is cut
(ERROR_UPLOAD). Both are counted (admin `/stats`, under `uploads`) and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from captcha_server.config import Limits
from captcha_server.errors import CaptchaError

log = logging.getLogger(__name__)
T = TypeVar("T")


class BodyGate:
    """Counts what it cut: `timed_out` (body too slow) and `refused_busy` (too many at once)."""

    def __init__(self, limits: Limits) -> None:
        self.timeout_s = limits.body_timeout_s
        self.max_uploads = limits.max_uploads
        self.in_flight = 0
        self.counts: Counter[str] = Counter(timed_out=0, refused_busy=0)

    async def read(self, request: web.Request, reader: Callable[[], Awaitable[T]]) -> T:
        """Run `reader` (`request.read`, `request.post`, ...) within the limits.

        An oversize body is ERROR_TOO_BIG_CAPTCHA_FILESIZE, as aiohttp stops reading it.
        """
        if self.in_flight >= self.max_uploads:
            self.counts["refused_busy"] += 1
            log.warning(
                "refused %s %s from %s: %d request bodies already being read",
                request.method, request.path, request.remote, self.in_flight,
            )  # fmt: skip
            raise CaptchaError("ERROR_NO_SLOT_AVAILABLE", "too many uploads in progress, retry")
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                return await reader()
        except TimeoutError as exc:
            self.counts["timed_out"] += 1
            log.warning(
                "cut %s %s from %s: body not complete after %.1f s (%d bytes arrived)",
                request.method, request.path, request.remote, self.timeout_s,
                request.content.total_bytes,
            )  # fmt: skip
            raise CaptchaError(
                "ERROR_UPLOAD", f"request body not received within {self.timeout_s:g} s"
            ) from exc
        except web.HTTPRequestEntityTooLarge as exc:
            raise CaptchaError("ERROR_TOO_BIG_CAPTCHA_FILESIZE") from exc
        finally:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts,
            "in_flight": self.in_flight,
            "max_uploads": self.max_uploads,
            "body_timeout_s": self.timeout_s,
        }
