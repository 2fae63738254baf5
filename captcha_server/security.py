"""API-key checks and the per-key submission rate limit (token bucket).

Keys are secrets: they are only ever compared with `same_key` (`hmac.compare_digest`), so the
time an answer takes says nothing about how much of a guessed key was right.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from captcha_server.config import KEY_PATTERN
from captcha_server.errors import CaptchaError

ANONYMOUS = "anonymous"


def same_key(given: str, known: str) -> bool:
    """Constant-time equality of two keys."""
    return hmac.compare_digest(given.encode(), known.encode())


def _one_of(given: str, known: Iterable[str]) -> bool:
    """Whether `given` is in `known`, comparing against every key (no early exit)."""
    found = False
    for key in known:
        found |= same_key(given, key)
    return found


@dataclass(slots=True)
class KeyRing:
    """Which keys may call the API, and which see the server's global `/stats`. With `no_auth`
    any caller is accepted; a key it sends is recorded on its tasks but not checked."""

    keys: frozenset[str]
    no_auth: bool = False
    admin_keys: frozenset[str] = frozenset()

    def is_admin(self, key: str | None) -> bool:
        return bool(key) and _one_of(key.strip(), self.admin_keys)

    def check(self, key: str | None) -> str:
        """The caller's key, or ERROR_WRONG_USER_KEY / ERROR_KEY_DOES_NOT_EXIST."""
        key = (key or "").strip()
        if self.no_auth:
            return key or ANONYMOUS
        if not KEY_PATTERN.match(key):
            raise CaptchaError("ERROR_WRONG_USER_KEY")
        if not _one_of(key, self.keys):
            raise CaptchaError("ERROR_KEY_DOES_NOT_EXIST")
        return key


@dataclass(slots=True)
class RateLimiter:
    """`rate` submissions per second per key, with bursts up to `burst`; 0 disables it."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True
