"""Keep the C allocator of a crawl process from holding freed memory: few arenas, big blocks mapped.

glibc's malloc gives threads that contend for the heap arenas of their own (up to eight per
core), and after the first big block is freed it raises its mmap threshold to that block's size
(up to 32 MiB), so later big blocks (photo batches, a model run's activations, decoded photos)
come out of those arenas. Freed, they stay resident there, cut up by the small objects
allocated around them, and a crawl's resident set creeps up with every batch; the model
threads, specs workers and index workers of `scrapy crawlall` give it many arenas to spread
over. `MallocLimits` (an extension, so it runs before the pipelines start their threads) caps
the arenas at MALLOC_ARENA_MAX and fixes the mmap threshold at MALLOC_MMAP_THRESHOLD bytes
(a block that big is mapped, and unmapped when freed), once per process. Not on glibc: off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

logger = logging.getLogger(__name__)

# mallopt parameter numbers (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_applied: set[tuple[int, int]] = set()
_lock = threading.Lock()


def limit_malloc(arena_max: int, mmap_threshold: int) -> bool:
    """Apply both limits to this process's glibc malloc (0 leaves one at glibc's default).
    False when the C library is not glibc or refuses a value."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    if not hasattr(libc, "mallopt"):
        return False
    done = True
    if arena_max:
        done &= libc.mallopt(_M_ARENA_MAX, arena_max) == 1
    if mmap_threshold:
        done &= libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    return done


class MallocLimits:
    """Set the process's malloc limits from MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD."""

    def __init__(self, arena_max: int, mmap_threshold: int) -> None:
        self.arena_max = arena_max
        self.mmap_threshold = mmap_threshold

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        arena_max = settings.getint("MALLOC_ARENA_MAX")
        mmap_threshold = settings.getint("MALLOC_MMAP_THRESHOLD")
        if arena_max < 0 or mmap_threshold < 0:
            raise ValueError("MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD must not be negative")
        if not arena_max and not mmap_threshold:
            raise NotConfigured("MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD are 0")
        with _lock:  # `crawlall` builds one per shop: the process is set up once
            if (arena_max, mmap_threshold) not in _applied:
                if not limit_malloc(arena_max, mmap_threshold):
                    raise NotConfigured("not glibc's malloc: MALLOC_* limits not applied")
                _applied.add((arena_max, mmap_threshold))
                logger.info("malloc: at most %d arenas, blocks of %d bytes and more mapped",
                            arena_max, mmap_threshold)  # fmt: skip
        return cls(arena_max, mmap_threshold)
