"""Price-drop alerts: watches on a product, GTIN or offer URL, checked after every crawl and
ingest, delivered once per drop by webhook or e-mail.

`book` owns ``alerts.sqlite`` in the store directory (watches, what was told, the outbox);
`check` turns the store's current prices into notices; `notify` delivers them; `run` ties the
three together for the Scrapy extension (`cumpair_scraper.alerts`), `cumpair ingest` and
`cumpair watch check`. Nothing here writes the product store: prices are read through its API.
"""

from cumpair.alerts.book import AlertError, Notice, Watch, WatchBook
from cumpair.alerts.options import AlertOptions
from cumpair.alerts.run import AlertRun, run_alerts

__all__ = [
    "AlertError",
    "AlertOptions",
    "AlertRun",
    "Notice",
    "Watch",
    "WatchBook",
    "run_alerts",
]
