"""Price-drop alerts: watches on a product, GTIN or offer URL, checked after every crawl and
ingest, delivered once per drop by webhook or e-mail.

`book` owns ``alerts.sqlite`` in the store directory (watches, what was told, the outbox);
`check` turns the store's current prices into notices; `notify` delivers them; `run` ties the
three together for the Scrapy extension (`cumpair_scraper.alerts`), `cumpair ingest` and
`cumpair watch check`. Nothing here writes the product store: prices are read through its API.
"""

from typing import TYPE_CHECKING

from cumpair.alerts.options import AlertOptions
from cumpair.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from cumpair.alerts.book import AlertError, Notice, Watch, WatchBook
    from cumpair.alerts.run import AlertRun, run_alerts

# Loaded on first use (PEP 562): Scrapy's settings import `AlertOptions` in every `scrapy`
# command, and `run` pulls in the ranking, the views, SQLite and smtplib (a third of the
# project's imports in `scrapy list`).
_LAZY = {
    "AlertError": "cumpair.alerts.book",
    "Notice": "cumpair.alerts.book",
    "Watch": "cumpair.alerts.book",
    "WatchBook": "cumpair.alerts.book",
    "AlertRun": "cumpair.alerts.run",
    "run_alerts": "cumpair.alerts.run",
}

__getattr__ = lazy_getattr(globals(), _LAZY)


__all__ = [
    "AlertError",
    "AlertOptions",
    "AlertRun",
    "Notice",
    "Watch",
    "WatchBook",
    "run_alerts",
]
