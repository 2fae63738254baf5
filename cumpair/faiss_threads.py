"""How many OpenMP threads FAISS uses on a thread of ours (``CUMPAIR_SEARCH_THREADS``).

Why one place: every process of ours that searches one vector at a time wants FAISS on one
thread. A single query gains nothing from more (10^4 x 1280 flat: 3.5-4 ms with one or two
threads on an idle machine), but OpenMP's thread team spins on every core for each call: on this
2-core machine at load 9, one 10^4 x 512 flat search of one vector cost 12.8 ms of CPU (39 ms
wall) with FAISS's default team, 3.4 ms with ``OMP_WAIT_POLICY=PASSIVE`` and 1.0 ms on one
thread. 0 = FAISS's choice (one thread per core), which pays for large batched searches and an
IVF upgrade's training on a many-core machine.

The count is the calling thread's only: OpenMP keeps it per thread (the nthreads-var ICV that
``omp_set_num_threads`` sets), so a thread started later, or any other, still gets FAISS's
default. Each thread that searches sets it for itself: one-query commands and the indexer on
their main thread, the crawl on its index writer thread (`indexer.turns.BatchedWrites`'s
``on_start``, where its near-duplicate and grouping searches run) and on the thread that opens
its pipeline (where the store is closed and regrouped); `serve` leaves FAISS its own choice.
The store's own searches of a few queries run on one thread whatever is set here
(`cumpair.index.ivf.SERIAL_QUERIES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cumpair.flags import parse_count

T = TypeVar("T")

SETTING = "CUMPAIR_SEARCH_THREADS"


def search_threads(value: Any, default: int) -> int:
    """The thread count a setting's `value` asks for (None or blank: `default`); ValueError,
    naming the setting, for anything but a whole number of 0 or more."""
    return parse_count(SETTING, value, default)


def set_faiss_threads(threads: int) -> None:
    """Run FAISS's searches made from the calling thread, from now on, on `threads` OpenMP
    threads (0: leave its choice); other threads keep their own count (see the module)."""
    if threads:
        import faiss

        faiss.omp_set_num_threads(threads)


def on_one_thread(run: Callable[..., T], *args: Any) -> T:
    """`run(*args)` with FAISS on one OpenMP thread for the calling thread, whose own count is
    restored after (also when `run` raises): the store's searches of a few queries
    (`cumpair.index.ivf.SERIAL_QUERIES`) and bench_index's raw FAISS beside them."""
    import faiss

    threads = faiss.omp_get_max_threads()  # this thread's setting (OpenMP keeps one each)
    faiss.omp_set_num_threads(1)
    try:
        return run(*args)
    finally:
        faiss.omp_set_num_threads(threads)
