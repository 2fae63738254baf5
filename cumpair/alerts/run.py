"""One alerts pass over a store directory: check every watch, then deliver the outbox.

What the crawl's extension, `cumpair ingest` and `cumpair watch check` call; opens the store
and the grouping read-only, so it runs beside (or right after) the writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cumpair.alerts.book import WatchBook
from cumpair.alerts.check import check_watches, open_groups
from cumpair.alerts.notify import deliver
from cumpair.alerts.options import AlertOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertRun:
    queued: int
    sent: int
    failed: int
    pending: int


def run_alerts(index_dir: str | Path, options: AlertOptions | None = None) -> AlertRun | None:
    """Check and deliver; None when nothing is watched in `index_dir` (no watch book)."""
    from cumpair.index import ProductStore, store_exists

    options = options or AlertOptions()
    index_dir = Path(index_dir)
    if not WatchBook.exists(index_dir) or not store_exists(index_dir):
        return None
    with WatchBook.open(index_dir) as book, ProductStore.open(index_dir, readonly=True) as store:
        with open_groups(index_dir) as groups:  # closed before delivery, which may take long
            queued = check_watches(book, store, groups)
        delivery = deliver(book, options)
    run = AlertRun(queued, delivery.sent, delivery.failed, delivery.pending)
    if queued or delivery.pending or delivery.failed:
        logger.info("price alerts: %s", run)
    return run


def after_update(index_dir: str | Path) -> AlertRun | None:
    """The pass `cumpair ingest` runs at its end, with options from the environment
    (``CUMPAIR_ALERTS_*``). A failure is logged and never raised: the offers are stored and
    undelivered notices wait in the outbox for the next pass."""
    try:
        options = AlertOptions.from_environ()
        if not options.enabled:
            return None
        return run_alerts(index_dir, options)
    except Exception:  # alerts must not turn a good ingest into a failed one
        logger.exception("price alerts failed after the update of %s", index_dir)
        return None
