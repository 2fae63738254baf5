"""Progress bars for long operator work (reindex, ingest, regroup, index optimize/compact).

One place decides how a bar looks and when it shows: on stderr, only when stderr is a terminal
(tqdm's ``disable=None``), so logs, pipes, cron jobs and tests stay free of bar noise. Library
code wraps its loops in `progress`; work that reports no steps gets an elapsed-time ticker from
`working`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

TICK_S = 0.5  # how often `working` redraws its elapsed time


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
) -> tqdm:
    """A bar over `iterable` (or one to `update` by hand when None); silent off a terminal."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        disable=None,  # None: only when the stream is a terminal
        dynamic_ncols=True,
        leave=False,  # the command's own summary line says how it ended
    )


@contextlib.contextmanager
def working(desc: str) -> Iterator[None]:
    """Show `desc` with the time elapsed while the block runs (work with no steps to count)."""
    bar = tqdm(
        desc=desc, total=None, bar_format="{desc}: {elapsed}", file=sys.stderr,
        disable=None, leave=False,
    )  # fmt: skip
    if bar.disable:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_S):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="cumpair-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()
