"""Counters and latency percentiles for `/stats`; plain in-memory, one per backend instance.

Every counter is kept twice: for the whole server (what an admin key sees) and for the API key
whose task it was (what that key sees).
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping

import numpy as np

COUNTERS = ("submitted", "solved", "unsolvable", "reported_bad", "reported_good", "retried")


def percentiles(samples: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99 and count of latency samples, in milliseconds."""
    arr = np.fromiter(samples, dtype=float)
    if arr.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(arr, [50, 90, 99]) * 1000
    return {
        "count": int(arr.size),
        "p50_ms": round(float(p50), 2),
        "p90_ms": round(float(p90), 2),
        "p99_ms": round(float(p99), 2),
    }


def key_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Every counter name, 0 where `counts` has none."""
    return {name: int(counts.get(name, 0)) for name in COUNTERS}


class Stats:
    """Counters (global and per key) plus the last `window` solve times per engine."""

    def __init__(self, window: int = 2000) -> None:
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._by_key: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._latency: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

    def incr(self, name: str, key: str, by: int = 1) -> None:
        """Count `name` for the server and for `key`, the API key that owns the task."""
        self.counts[name] += by
        self._by_key[key][name] += by

    def for_key(self, key: str) -> dict[str, int]:
        return key_counts(self._by_key.get(key, Counter()))

    def observe(self, engine: str, seconds: float) -> None:
        self._latency[engine or "none"].append(seconds)

    def latency(self) -> dict[str, dict[str, float]]:
        return {engine: percentiles(s) for engine, s in self._latency.items()}
